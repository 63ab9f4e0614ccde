"""`Artifact`: a version being assembled in memory before it is logged.

Nothing is uploaded until the artifact is logged (`Store.log_artifact` / `Run.log_artifact`), so adding
files is cheap and a quota can be checked before the first byte moves.
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from storage.gcpause import gc_paused
from storage.statcache import stat_key

from . import bounds
from .errors import InvalidPathError, InvalidValueError, NotFoundError
from .manifest import canonical_json
from .names import MAX_PATH_DEPTH, check_depth, check_name, check_path, is_plain_name, is_plain_path

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["Artifact", "check_json", "refuse_special"]

MAX_METADATA = 1024 * 1024


def check_json(obj: Any, what: str, limit: int = MAX_METADATA) -> Any:
    """Raise `InvalidValueError` unless ``obj`` is plain JSON (NaN/inf allowed) within ``limit`` bytes."""
    try:
        data = canonical_json(obj)
    except (TypeError, ValueError, RecursionError) as e:  # RecursionError: nested too deeply
        raise InvalidValueError(f"{what} must be JSON-serializable: {e}") from None
    if len(data) > limit:
        raise InvalidValueError(f"{what} is {len(data)} bytes of JSON; the limit is {limit}")
    return json.loads(data)


_NO_META: Mapping[str, Any] = MappingProxyType({})


def _entry_name(e: os.DirEntry[str]) -> str:
    return e.name


@dataclass(frozen=True, slots=True)
class Staged:
    """One file waiting to be uploaded: from a local path or from memory. Slotted: 200k staged
    files held 240 bytes less each (48 MiB) than with an instance dict."""

    path: str
    size: int
    source: str | None = None
    data: bytes | memoryview | None = None
    #: with ``source``: the file's bytes ``[offset, offset + size)`` only (one tensor of a file)
    offset: int | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    #: the stat key taken when the file was added (storage.StatKey), so the put need not stat again
    key: tuple[int, int, int, int] | None = None

    @classmethod
    def walked(cls, path: str, size: int, source: str, key: tuple[int, int, int, int]) -> Staged:
        """A file found by a directory walk, made without the dataclass ``__init__``: the frozen
        ``__init__`` (one ``object.__setattr__`` per field) cost 40 ms of a 20k-file walk; the slots'
        own setters cost less. The same fields and values as ``Staged(path, size, source=source,
        key=key)``, with an empty meta that is read-only (one shared instance)."""
        s = object.__new__(cls)
        set_path, set_size, set_source, set_data, set_offset, set_meta, set_key = _STAGED_SET
        set_path(s, path)
        set_size(s, size)
        set_source(s, source)
        set_data(s, None)
        set_offset(s, None)
        set_meta(s, _NO_META)
        set_key(s, key)
        return s


_STAGED_SET = tuple(
    getattr(Staged, f).__set__
    for f in ("path", "size", "source", "data", "offset", "meta", "key")
)


_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def refuse_special(path: Path, st: os.stat_result) -> None:
    """Only regular files are content: a FIFO would hang the put, ``/dev/zero`` would fill the disk.

    Decided from a stat, before anything opens the file.
    """
    if stat.S_ISREG(st.st_mode):
        return
    kind = next((what for test, what in _KINDS if test(st.st_mode)), "a special file")
    raise InvalidPathError(
        f"cannot add {path}: it is {kind}, not a regular file; copy its content into a file first"
    )


class Artifact:
    """A named, typed set of files (and tensors) to log as the next version of ``name``."""

    def __init__(
        self,
        name: str,
        type: str,
        *,
        description: str = "",
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.name = check_name(name)
        self.type = check_name(type, "artifact type")
        if not isinstance(description, str):
            raise InvalidValueError("description must be a string")
        check_json(description, "description")  # the same size limit as metadata
        self.description = description
        self.metadata: dict[str, Any] = check_json(dict(metadata or {}), "metadata")
        self._staged: dict[str, Staged] = {}

    def __repr__(self) -> str:
        return f"Artifact({self.name!r}, type={self.type!r}, files={len(self._staged)})"

    def __len__(self) -> int:
        return len(self._staged)

    def __iter__(self) -> Iterator[Staged]:
        return iter(self._staged.values())

    @property
    def size(self) -> int:
        return sum(s.size for s in self._staged.values())

    def _stage(self, staged: Staged) -> None:
        check_depth(check_path(staged.path), f"artifact {self.name!r}")
        if len(self._staged) >= bounds.MAX_FILES and staged.path not in self._staged:
            raise InvalidValueError(
                f"artifact {self.name!r} would hold more than {bounds.MAX_FILES} files; split it "
                "into several artifacts or archive the small files"
            )
        if staged.path in self._staged:
            raise InvalidPathError(f"{staged.path!r} was already added to artifact {self.name!r}")
        self._staged[staged.path] = staged

    def add_file(self, path: str | os.PathLike[str], name: str | None = None) -> Artifact:
        """Add a local file, stored as ``name`` (default: its base name)."""
        p = Path(os.fsdecode(path))
        try:
            st = os.stat(p)
        except FileNotFoundError:
            raise NotFoundError(f"cannot add {p}: no such file") from None
        if stat.S_ISDIR(st.st_mode):
            raise InvalidPathError(f"cannot add {p}: it is a directory; use add_dir")
        refuse_special(p, st)
        self._stage(Staged(name or p.name, st.st_size, source=str(p.resolve()), key=stat_key(st)))
        return self

    def add_dir(self, path: str | os.PathLike[str], prefix: str = "") -> Artifact:
        """Add every file below a directory, stored under ``prefix`` with '/'-separated paths.

        Symlinks are followed only when they stay inside the directory; one pointing outside is refused
        (it would silently copy unrelated files into the artifact), and so is anything that is not a
        regular file (a FIFO would hang the put, a device never ends) or a symlink loop. The walk stats each file once and
        hands that stat to the put, which therefore does not stat again (20k small files: one
        ``scandir`` per directory and one ``stat`` per file). Its per-file cost is kept to that stat
        and a few operations (an unchanged re-put of 20k files is mostly this walk): a plain ASCII name
        in a plain directory needs no full `check_path`, and the depth is checked per directory.
        """
        with gc_paused():  # 20k staged files: see storage.gcpause
            return self._add_dir(path, prefix)

    def _add_dir(self, path: str | os.PathLike[str], prefix: str) -> Artifact:
        top = Path(path)
        if not top.is_dir():
            raise NotFoundError(
                f"cannot add directory {top}: "
                + ("it is a file; use add_file" if top.exists() else "no such directory")
            )
        real_top = top.resolve()
        base = str(real_top).rstrip("/") + "/"
        prefix = prefix.strip("/")
        lead = f"{prefix}/" if prefix else ""
        plain_lead = not prefix or is_plain_path(prefix)
        found: list[Staged] = []
        checked: list[Staged] = []  # names that need the full check_path
        new = Staged.walked
        stack = [(os.fspath(top), "", plain_lead, lead.count("/"))]
        while stack:
            here, rel_dir, plain_dir, depth = stack.pop()
            with os.scandir(here) as it:
                entries = sorted(it, key=_entry_name)
            subdirs = []
            for e in entries:
                name = e.name
                rel = rel_dir + name
                if e.is_symlink():
                    real = self._inside(Path(e.path), real_top)
                    try:
                        st = os.stat(real)
                    except OSError:  # a dangling link: nothing to add
                        continue
                    if stat.S_ISDIR(st.st_mode):  # a linked directory is reached as itself
                        continue
                    refuse_special(Path(e.path), st)
                    source = str(real)
                elif e.is_dir(follow_symlinks=False):
                    subdirs.append((e.path, rel + "/", plain_dir and is_plain_name(name), depth + 1))
                    continue
                elif e.is_file(follow_symlinks=False):
                    st = e.stat(follow_symlinks=False)
                    source = base + rel  # no link on the way: this is its real path
                else:  # sockets, fifos, devices: never opened (a FIFO would block, a device never ends)
                    refuse_special(Path(e.path), e.stat(follow_symlinks=False))
                staged = new(
                    lead + rel,
                    st.st_size,
                    source,
                    (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns),  # stat_key, inlined
                )
                if plain_dir and depth < MAX_PATH_DEPTH and is_plain_name(name):
                    found.append(staged)
                    continue
                try:
                    rel.encode("utf-8")
                except UnicodeEncodeError:
                    raise InvalidPathError(
                        f"cannot add {e.path!r}: its name is not valid UTF-8; rename it"
                    ) from None
                checked.append(staged)
            stack.extend(reversed(subdirs))
        for s in checked:
            check_depth(check_path(s.path), f"artifact {self.name!r}")
        self._stage_many(found + checked if checked else found)
        return self

    def _stage_many(self, staged: list[Staged]) -> None:
        """Stage checked files at once: all or none (a duplicate path refuses the whole call)."""
        new = {s.path: s for s in staged}
        if len(self._staged) + len(new) > bounds.MAX_FILES:
            raise InvalidValueError(
                f"artifact {self.name!r} would hold {len(self._staged) + len(new)} files, more than "
                f"{bounds.MAX_FILES}; split it into several artifacts or archive the small files"
            )
        if new and max(map(len, new)) > bounds.MAX_PATH_CHARS:  # a walk's plain names skip check_path
            check_path(max(new, key=len))
        if len(new) < len(staged) or not self._staged.keys().isdisjoint(new):
            seen = set(self._staged)
            for s in staged:
                if s.path in seen:
                    raise InvalidPathError(f"{s.path!r} was already added to artifact {self.name!r}")
                seen.add(s.path)
        self._staged.update(new)

    @staticmethod
    def _inside(link: Path, real_top: Path) -> Path:
        try:
            real = link.resolve()
        except (RuntimeError, OSError) as e:  # 3.11 raises RuntimeError on a loop, 3.13 OSError
            raise InvalidPathError(
                f"cannot add {link}: it is a symlink loop ({e}); remove or fix the link"
            ) from None
        if real != real_top and real_top not in real.parents:
            raise InvalidPathError(
                f"cannot add {link}: it is a symlink to {real}, outside {real_top}; copy the file in "
                "or add it with add_file"
            )
        return real

    def add_bytes(
        self,
        name: str,
        data: bytes | bytearray | memoryview,
        *,
        meta: Mapping[str, Any] | None = None,
    ) -> Artifact:
        """Add an in-memory buffer. It is kept by reference (not copied) until the artifact is logged."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidValueError(f"add_bytes({name!r}) needs bytes, got {type(data).__name__}")
        view = data if isinstance(data, bytes) else memoryview(data).cast("B")
        extra = check_json(dict(meta or {}), f"meta of {name!r}")
        if {"digest", "size"} & set(extra):
            raise InvalidValueError("meta may not override 'digest' or 'size'")
        self._stage(Staged(name, len(view), data=view, meta=extra))
        return self

    def add_json(self, name: str, obj: Any) -> Artifact:
        """Add ``obj`` as canonical JSON, so equal objects give equal digests."""
        if isinstance(obj, float) and not math.isfinite(obj):
            raise InvalidValueError(f"{name!r}: NaN and infinity are not JSON")
        try:
            data = canonical_json(obj)
        except (TypeError, ValueError) as e:
            raise InvalidValueError(f"add_json({name!r}): not JSON-serializable: {e}") from None
        return self.add_bytes(name, data)

    def add_safetensors(self, path: str | os.PathLike[str], prefix: str = "") -> Artifact:
        """Add a ``.safetensors`` file tensor by tensor, as `add_state_dict` would store its tensors
        (one blob each, shared with other checkpoints); see `artifacts.safetensors`."""
        from .safetensors import add_safetensors

        return add_safetensors(self, path, prefix)

    def add_state_dict(self, state_dict: Mapping[str, Any], prefix: str = "") -> Artifact:
        """Add a PyTorch state_dict tensor by tensor (see `artifacts.torch`)."""
        from . import torch as _torch

        _torch.add_state_dict(self, state_dict, prefix)
        return self
