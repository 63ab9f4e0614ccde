"""Typed log entries: one frozen dataclass per operation, encoded and decoded here and nowhere else.

A log entry is input from whoever could write the store, so `decode` checks every field of every
operation (JSON type, range, SQLite's signed 64-bit limit, names, digests, nesting depth) before anything
reaches the rules or SQL. An entry that breaks a check raises `EntryError`; the index records it as
rejected under its sequence number, so every reader (and ``verify``) names it the same way and nobody
gets a traceback. Writers decode what they are about to commit first, so they never write an entry that
readers would refuse.

Wire format (log format 1, unchanged since the first store): one canonical JSON object with ``format``,
``seq``, ``op``, ``user``, ``ts`` and the operation's fields at the top level (``run_started`` keeps its
run under ``"run"``). Fields this library does not know are ignored, so an entry with an extra optional
field (written by a newer library of the same format) still decodes; a missing optional field takes its
default, so older entries decode too.

How to add an operation (or a field):

1. Define a frozen, ``kw_only`` dataclass deriving from `Entry`, decorated with ``@operation``, with
   ``OP: ClassVar[str] = "<op>"``. Declare each field with ``spec(<check>)`` (required) or
   ``spec(<check>, default=...)`` (optional: entries written before the field existed lack it). Checks
   are the small functions below (``name_field``, ``int_field``, ``opt(...)``, ``json_object``...);
   write a new one if none fits, raising `EntryError` with the field's name.
2. Add ``_apply_<op>(self, c, entry)`` to `artifacts.catalog.rules.Rules`; read fields by attribute.
3. Build the entry in the facade (``Entry(user=..., ts=..., field=...)``) and commit it; the commit
   fills in ``seq``.
4. Add a valid example to ``EXAMPLES`` in tests/test_entries.py: the property test then throws random
   JSON at the new decoder and replays it through the index.

A new field that older readers can ignore is optional and needs nothing else. An operation that makes
blobs referenced (so ``gc`` must see it) cannot be ignored by older readers: bump `LOG_FORMAT` for it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from storage import check_digest

from .. import bounds
from ..errors import ArtifactsError
from ..manifest import Manifest, canonical_json
from ..names import check_alias, check_name
from ..untrusted import check_depth
from ..values import check_notes, check_tags
from .log import log_path

__all__ = [
    "INT64_MAX",
    "LOG_FORMAT",
    "MAX_JSON_DEPTH",
    "OPERATIONS",
    "RUN_STATUSES",
    "AdminAdded",
    "AliasRemoved",
    "AliasSet",
    "ArtifactUsed",
    "Entry",
    "EntryError",
    "QuotaSet",
    "RunFinished",
    "RunStarted",
    "RunUpdated",
    "VersionDeleted",
    "VersionLogged",
    "build",
    "decode",
    "encode",
    "entry_format",
    "from_dict",
    "operation",
    "spec",
]

LOG_FORMAT = 1
#: SQLite integers are signed 64-bit: anything larger raises OverflowError when bound to a statement.
INT64_MAX = 2**63 - 1
#: Deepest nesting of arrays/objects accepted in a JSON field (config, summary, metadata, ...).
MAX_JSON_DEPTH = 64
#: How a run may end; ``crashed`` is also what a reader calls a silent one.
RUN_STATUSES = ("finished", "failed", "killed", "crashed")
_MAX_TEXT = 1024  # host names, git commits, run names: generous, but not a megabyte

T = TypeVar("T")
Check = Callable[[Any, str], Any]


class EntryError(ValueError):
    """A log entry that cannot be used: the message says which field breaks which rule."""


# -- field checks: (value, field name) -> value to keep; raise EntryError ---------------------------
def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def str_field(value: Any, where: str, *, max_len: int = _MAX_TEXT, empty: bool = True) -> str:
    if not isinstance(value, str):
        raise EntryError(f"{where} must be a string, not {_type_name(value)}")
    if len(value) > max_len or (not empty and not value):
        raise EntryError(f"{where} must be a string of {int(not empty)}-{max_len} characters")
    return value


def text_field(value: Any, where: str) -> str:
    """Free text of any length (a description); its size is bounded by the entry's."""
    return str_field(value, where, max_len=2**31)


def int_field(value: Any, where: str, *, low: int = 0, high: int = INT64_MAX) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise EntryError(f"{where} must be an integer, not {_type_name(value)}")
    if not low <= value <= high:
        raise EntryError(f"{where} is {_short(value)}, outside {low}..{high}")
    return value


def name_field(what: str) -> Check:
    """A name checked as the API checks it (artifact, project, user, run id)."""

    def check(value: Any, where: str) -> str:
        try:
            return check_name(value, what)
        except ArtifactsError as e:
            raise EntryError(f"{where}: {e}") from None

    return check


def alias_field(value: Any, where: str) -> str:
    try:
        return check_alias(value)
    except ArtifactsError as e:
        raise EntryError(f"{where}: {e}") from None


def digest_field(value: Any, where: str) -> str:
    try:
        return check_digest(value)
    except (ArtifactsError, TypeError) as e:
        raise EntryError(f"{where}: {e}") from None


def _commit_id(value: Any, where: str) -> str:
    if not isinstance(value, str) or not 8 <= len(value) <= 64 or not value.isalnum():
        raise EntryError(f"{where} must be 8-64 letters and digits, not {_short(value)}")
    return value


def json_value(value: Any, where: str) -> Any:
    """Any JSON value nested at most `MAX_JSON_DEPTH` deep (deeper would overflow the stack later)."""
    try:
        return check_depth(value, where, MAX_JSON_DEPTH)
    except ValueError as e:
        raise EntryError(str(e)) from None


def json_object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise EntryError(f"{where} must be a JSON object, not {_type_name(value)}")
    return json_value(value, where)


def opt(check: Check) -> Check:
    """``check`` or null."""

    def checked(value: Any, where: str) -> Any:
        return None if value is None else check(value, where)

    return checked


def or_empty(check: Check, empty: Any) -> Check:
    """``check``, with null read as ``empty`` (older writers sent null for an empty object or text)."""

    def checked(value: Any, where: str) -> Any:
        return empty() if value is None else check(value, where)

    return checked


def list_of(check: Check, *, max_items: int = 10_000) -> Check:
    def checked(value: Any, where: str) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise EntryError(f"{where} must be a list, not {_type_name(value)}")
        if len(value) > max_items:
            raise EntryError(f"{where} has {len(value)} items; at most {max_items}")
        return tuple(check(v, f"{where}[{i}]") for i, v in enumerate(value))

    return checked


def manifest_field(value: Any, where: str) -> Manifest:
    """A manifest object: valid paths and digests, sizes and their sum within SQLite's integers."""
    if not isinstance(value, dict) or not isinstance(value.get("files"), dict):
        raise EntryError(f"{where} must be an object with a 'files' object")
    if len(value["files"]) > bounds.MAX_FILES:
        raise EntryError(
            f"{where} lists {len(value['files'])} files; a version holds at most {bounds.MAX_FILES}"
        )
    total = 0
    for path, f in value["files"].items():
        # the common entry, {digest, size} (the digest is checked by `Manifest.from_json`): no
        # message built and nothing nested to walk (0.2 s of a 20k-file commit)
        size = f.get("size") if type(f) is dict and len(f) == 2 else None
        if type(size) is int and type(f.get("digest")) is str and 0 <= size <= INT64_MAX:
            total += size
            continue
        if not isinstance(f, dict):
            raise EntryError(f"{where}: file {_short(path)} must be an object")
        total += int_field(f.get("size"), f"{where}: size of {_short(path)}")
        json_value(f, f"{where}: file {_short(path)}")
    if total > INT64_MAX:
        raise EntryError(f"{where}: the file sizes add up to {total}, more than {INT64_MAX}")
    try:
        return Manifest.from_json(value, where)
    except ArtifactsError as e:
        raise EntryError(str(e)) from None


def tags_field(value: Any, where: str) -> tuple[str, ...]:
    """Run tags, checked as the API checks them (`artifacts.values.check_tags`)."""
    if not isinstance(value, list):
        raise EntryError(f"{where} must be a list, not {_type_name(value)}")
    try:
        return tuple(check_tags(value))
    except ArtifactsError as e:
        raise EntryError(f"{where}: {e}") from None


def notes_field(value: Any, where: str) -> str:
    try:
        return check_notes(value)
    except ArtifactsError as e:
        raise EntryError(f"{where}: {e}") from None


RUN_ID = name_field("run id")
USER = name_field("user name")
NAME = name_field("artifact name")
VERSION: Check = int_field


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}...({len(text)} chars)"


# -- entries ---------------------------------------------------------------------------------------
def spec(
    check: Check,
    *,
    default: Any = dataclasses.MISSING,
    wire: str | None = None,
    required: bool | None = None,
    omit_empty: bool = False,
) -> Any:
    """Declare an entry field: how to check it on decode, its default when absent, its wire name.

    A field without a default is required on decode; ``required=True`` also requires one that has a
    default (the base fields, which the commit fills in).
    """
    # omit_empty: an empty value is left out of the stored entry (a field added later, so entries
    # without it keep the bytes earlier writers produced)
    meta = {"check": check, "wire": wire, "required": required, "omit_empty": omit_empty}
    if isinstance(default, type):  # dict, tuple: a fresh empty one each time
        return field(default_factory=default, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True, kw_only=True)
class Entry:
    """Fields every entry has; the commit fills them in (``seq`` is 0 until it numbers the entry)."""

    OP: ClassVar[str] = ""
    #: wire key under which the operation's own fields live (``run_started`` keeps ``{"run": {...}}``)
    NEST: ClassVar[str | None] = None

    user: str = spec(USER, default="", required=True)
    ts: str = spec(lambda v, w: str_field(v, w, max_len=64), default="", required=True)
    seq: int = spec(lambda v, w: int_field(v, w, low=1), default=0, required=True)
    #: where a copied entry came from (`artifacts.transfer`): source store id, seq and user
    source: dict[str, Any] | None = spec(opt(json_object), default=None)
    #: a random id the writer gives this commit, so that a retried create whose first reply was lost
    #: (HTTP 412 on the retry) recognises its own entry instead of committing the change twice
    commit: str | None = spec(opt(lambda v, w: _commit_id(v, w)), default=None)
    #: BLAKE3 digest of the bytes of entry ``seq - 1`` as the writer applied them: the log is a hash
    #: chain, so ``verify`` names any entry that changed after its successor was written
    prev: str | None = spec(opt(lambda v, w: digest_field(v, w)), default=None)

    def to_dict(self) -> dict[str, Any]:
        """The entry as stored: a JSON-ready dict."""
        body: dict[str, Any] = {}
        for f in _own_fields(type(self)):
            value = getattr(self, f.name)
            if f.metadata["omit_empty"] and not value:
                continue
            body[f.metadata["wire"] or f.name] = _dump(value)
        head: dict[str, Any] = {
            "format": LOG_FORMAT,
            "seq": self.seq,
            "op": self.OP,
            "user": self.user,
            "ts": self.ts,
        }
        if self.source is not None:  # absent, not null, in entries that are no copies
            head["source"] = self.source
        for key in ("commit", "prev"):  # absent, not null, as in entries written before them
            if getattr(self, key) is not None:
                head[key] = getattr(self, key)
        return {**head, self.NEST: body} if self.NEST else {**head, **body}

    def to_json(self) -> str:
        return canonical_json(self.to_dict()).decode("utf-8")


def _dump(value: Any) -> Any:
    if isinstance(value, Manifest):
        return value.to_json()
    if isinstance(value, tuple):
        return [_dump(v) for v in value]
    return value


_BASE = {f.name for f in dataclasses.fields(Entry)}


def _own_fields(cls: type[Entry]) -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(cls) if f.name not in _BASE]


OPERATIONS: dict[str, type[Entry]] = {}
E = TypeVar("E", bound=type[Entry])


def operation(cls: E) -> E:
    """Register an entry class under its ``OP`` so that `decode` knows it."""
    if not cls.OP or cls.OP in OPERATIONS:
        raise TypeError(f"{cls.__name__} needs a unique OP, not {cls.OP!r}")
    OPERATIONS[cls.OP] = cls
    return cls


@operation
@dataclass(frozen=True, kw_only=True)
class RunStarted(Entry):
    OP: ClassVar[str] = "run_started"
    NEST: ClassVar[str | None] = "run"

    id: str = spec(RUN_ID)
    project: str = spec(name_field("project name"))
    name: str | None = spec(
        opt(lambda v, w: str_field(v, w, max_len=128, empty=False)), default=None
    )
    group: str | None = spec(
        opt(lambda v, w: str_field(v, w, max_len=128, empty=False)), default=None
    )
    job_type: str | None = spec(
        opt(lambda v, w: str_field(v, w, max_len=128, empty=False)), default=None
    )
    config: dict[str, Any] = spec(or_empty(json_object, dict), default=dict)
    host: str | None = spec(opt(str_field), default=None)
    command: tuple[str, ...] | None = spec(opt(list_of(text_field)), default=None)
    git: str | None = spec(opt(str_field), default=None)
    env: dict[str, Any] = spec(or_empty(json_object, dict), default=dict)
    tags: tuple[str, ...] = spec(
        or_empty(
            list_of(lambda v, w: str_field(v, w, max_len=128, empty=False), max_items=1000), tuple
        ),
        default=tuple,
        omit_empty=True,
    )
    notes: str = spec(or_empty(notes_field, str), default="", omit_empty=True)


@operation
@dataclass(frozen=True, kw_only=True)
class RunFinished(Entry):
    """A run's end. ``history`` is the blob of every row; ``chunks`` how many live chunks the run
    had flushed under ``runs/<id>/`` (`artifacts.chunks`); ``config`` the config if it changed after
    the start. Older entries have neither (null). ``series``: the blob of its metric series as arrays
    (`artifacts.series`), for runs with many rows; left out where there is none."""

    OP: ClassVar[str] = "run_finished"

    run_id: str = spec(RUN_ID)
    status: str = spec(lambda v, w: _one_of(v, w, RUN_STATUSES))
    summary: dict[str, Any] = spec(or_empty(json_object, dict), default=dict)
    history: str | None = spec(opt(digest_field), default=None)
    chunks: int | None = spec(opt(int_field), default=None)
    config: dict[str, Any] | None = spec(opt(json_object), default=None)
    series: str | None = spec(opt(digest_field), default=None, omit_empty=True)


@operation
@dataclass(frozen=True, kw_only=True)
class RunUpdated(Entry):
    """A run renamed, or its tags or notes replaced (null: unchanged), during the run or after."""

    OP: ClassVar[str] = "run_updated"

    run_id: str = spec(RUN_ID)
    name: str | None = spec(
        opt(lambda v, w: str_field(v, w, max_len=128, empty=False)), default=None
    )
    tags: tuple[str, ...] | None = spec(opt(tags_field), default=None)
    notes: str | None = spec(opt(notes_field), default=None)


@operation
@dataclass(frozen=True, kw_only=True)
class VersionLogged(Entry):
    OP: ClassVar[str] = "version_logged"

    name: str = spec(NAME)
    type: str = spec(name_field("artifact type"))
    digest: str = spec(digest_field)
    manifest: Manifest = spec(manifest_field)
    metadata: dict[str, Any] = spec(or_empty(json_object, dict), default=dict)
    description: str = spec(or_empty(text_field, str), default="")
    aliases: tuple[str, ...] = spec(or_empty(list_of(alias_field), tuple), default=tuple)
    run_id: str | None = spec(opt(RUN_ID), default=None)


@operation
@dataclass(frozen=True, kw_only=True)
class ArtifactUsed(Entry):
    OP: ClassVar[str] = "artifact_used"

    run_id: str = spec(RUN_ID)
    name: str = spec(NAME)
    version: int = spec(VERSION)


@operation
@dataclass(frozen=True, kw_only=True)
class AliasSet(Entry):
    OP: ClassVar[str] = "alias_set"

    name: str = spec(NAME)
    version: int = spec(VERSION)
    alias: str = spec(alias_field)


@operation
@dataclass(frozen=True, kw_only=True)
class AliasRemoved(Entry):
    OP: ClassVar[str] = "alias_removed"

    name: str = spec(NAME)
    alias: str = spec(alias_field)


@operation
@dataclass(frozen=True, kw_only=True)
class VersionDeleted(Entry):
    OP: ClassVar[str] = "version_deleted"

    name: str = spec(NAME)
    version: int = spec(VERSION)


@operation
@dataclass(frozen=True, kw_only=True)
class QuotaSet(Entry):
    OP: ClassVar[str] = "quota_set"

    target: str = spec(USER)
    bytes: int | None = spec(opt(int_field))  # required: null (no quota) must be explicit


@operation
@dataclass(frozen=True, kw_only=True)
class AdminAdded(Entry):
    OP: ClassVar[str] = "admin_added"

    target: str = spec(USER)


def _one_of(value: Any, where: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise EntryError(f"{where} must be one of {', '.join(allowed)}, not {_short(value)}")
    return value


# -- encode / decode -------------------------------------------------------------------------------
def encode(entry: Entry) -> bytes:
    """The bytes stored for ``entry`` (canonical JSON)."""
    return canonical_json(entry.to_dict())


def entry_format(data: bytes) -> int | None:
    """The log format an entry claims, or None when it is not an object with an integer format."""
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        return None
    fmt = obj.get("format") if isinstance(obj, dict) else None
    return fmt if isinstance(fmt, int) and not isinstance(fmt, bool) else None


def decode(seq: int, data: bytes) -> Entry:
    """The typed entry stored as ``seq``; `EntryError` naming the first field that breaks a rule."""
    if len(data) > bounds.MAX_ENTRY_BYTES:  # readers read one byte past the bound, no further
        raise EntryError(
            f"{log_path(seq)} holds more than {bounds.MAX_ENTRY_BYTES} bytes; "
            f"a log entry may have at most {bounds.MAX_ENTRY_BYTES}"
        )
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise EntryError(f"not valid JSON ({e})") from None
    except (ValueError, RecursionError) as e:  # a 5000-digit number, [[[...]]] too deep
        raise EntryError(f"not usable JSON ({e})") from None
    if not isinstance(obj, dict):
        raise EntryError("not a JSON object")
    fmt = obj.get("format")
    if fmt != LOG_FORMAT or isinstance(fmt, bool):  # true == 1 in Python, not in the format
        if isinstance(fmt, int) and not isinstance(fmt, bool) and fmt > LOG_FORMAT:
            raise EntryError(
                f"written in log format {fmt}, newer than this library's {LOG_FORMAT}; upgrade"
            )
        raise EntryError(f"unknown log format {_short(fmt)}")
    if obj.get("seq") != seq or isinstance(obj.get("seq"), bool):
        raise EntryError(f"claims sequence {_short(obj.get('seq'))} but is stored as {seq}")
    op = obj.get("op")
    if not isinstance(op, str):
        raise EntryError("has no operation")
    cls = OPERATIONS.get(op)
    if cls is None:
        raise EntryError(f"unknown operation {_short(op)}")
    return from_dict(cls, obj)


def build(op: str, fields: Mapping[str, Any]) -> Entry:
    """An entry of ``op`` from wire-shaped ``fields`` (say, a copy of another store's entry), checked
    as `decode` checks them; ``seq``, ``user`` and ``ts`` are left for the commit to fill in."""
    cls = OPERATIONS.get(op)
    if cls is None:
        raise EntryError(f"unknown operation {_short(op)}")
    return from_dict(cls, fields, with_head=False)


def from_dict(cls: type[Entry], obj: Mapping[str, Any], *, with_head: bool = True) -> Entry:
    """Check every field of ``obj`` (a decoded entry of operation ``cls``) and build the entry.

    ``with_head=False``: ``obj`` has no ``seq``/``user``/``ts`` (yet); they keep their defaults.
    """
    body = obj
    if cls.NEST:
        body = obj.get(cls.NEST)  # type: ignore[assignment]
        if not isinstance(body, dict):
            raise EntryError(f"{cls.OP}: {cls.NEST!r} must be an object, not {_type_name(body)}")
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not with_head and f.name in ("seq", "user", "ts"):
            continue
        src = obj if f.name in _BASE else body
        key = f.metadata["wire"] or f.name
        where = f"{cls.OP}: {cls.NEST + '.' if cls.NEST and src is body else ''}{key}"
        if key not in src:
            if f.metadata["required"] or (
                f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            ):
                raise EntryError(f"{where} is missing")
            continue
        values[f.name] = f.metadata["check"](src[key], where)
    return cls(**values)
