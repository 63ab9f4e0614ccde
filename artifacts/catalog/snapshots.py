"""Index snapshots: the log-derived index at one sequence number, so a cold open replays only the tail.

    snapshots/<seq:020d>-<digest:16>.json   descriptor: covered seq, formats, schema, data digest, rows
    snapshot-data/<digest>.sqlite.z         the index database (zlib), named by the BLAKE3 of its bytes
    snapshots/hint.json                     the newest descriptor's name when written; only a hint

A snapshot copies every table of the index as the index's own schema defines it (whatever later schema
versions add comes along), and is only used by an index whose schema is the same text. The data is
written before its descriptor, so a writer killed halfway leaves at worst an orphan that gc removes. A
maker skips a seq that already has a descriptor, unless it found that one unusable; two writers racing
on one seq may both succeed, and either snapshot serves (gc keeps the newest). Loading checks the
descriptor, the digest, the inflated size (`bounds.max_snapshot_bytes`: a zlib bomb stops there, written
to disk in pieces), ``PRAGMA integrity_check``, the schema and every table's row count before the
index becomes a page-for-page copy of the checked file; any doubt raises `SnapshotError` naming the
object, and the caller falls back to an older snapshot, then packs, then the entries.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import re
import sqlite3
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3

from storage import Root, hash_bytes

from .. import bounds
from ..errors import ArtifactsError, ConflictError, NotFoundError
from ..manifest import canonical_json
from ..untrusted import load_json

__all__ = [
    "DATA_DIR",
    "SNAPSHOT_DIR",
    "SNAPSHOT_FORMAT",
    "Snapshot",
    "SnapshotError",
    "all_snapshots",
    "check_snapshot",
    "descriptor_path",
    "list_snapshots",
    "load_snapshot",
    "names_at",
    "parse_descriptor_name",
    "pin",
    "read_descriptor",
    "schema_digest",
    "write_snapshot",
]

SNAPSHOT_DIR = "snapshots"
DATA_DIR = "snapshot-data"
HINT = f"{SNAPSHOT_DIR}/hint.json"
SNAPSHOT_FORMAT = 1
_NAME = re.compile(r"(\d{20})-([0-9a-f]{16})\.json")


class SnapshotError(ValueError):
    """A snapshot that must not be used; the message names the object and the doubt."""


@dataclass(frozen=True)
class Snapshot:
    """A descriptor: what a snapshot covers and how to check it."""

    seq: int
    index_format: int
    schema: str
    digest: str
    size: int
    rows: dict[str, int]
    store_id: str
    created_at: str
    format: int = SNAPSHOT_FORMAT

    @property
    def path(self) -> str:
        return descriptor_path(self.seq, self.digest)

    @property
    def data_path(self) -> str:
        return f"{DATA_DIR}/{self.digest}.sqlite.z"

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "seq": self.seq,
            "index_format": self.index_format,
            "schema": self.schema,
            "digest": self.digest,
            "size": self.size,
            "rows": dict(self.rows),
            "store_id": self.store_id,
            "created_at": self.created_at,
        }

    def to_json(self) -> str:
        return canonical_json(self.to_dict()).decode()


def descriptor_path(seq: int, digest: str) -> str:
    return f"{SNAPSHOT_DIR}/{seq:020d}-{digest[:16]}.json"


def parse_descriptor_name(name: str) -> int | None:
    m = _NAME.fullmatch(name.rsplit("/", 1)[-1])
    return int(m.group(1)) if m else None


def schema_digest(conn: sqlite3.Connection) -> str:
    """A digest of the database's schema text: a snapshot fits an index only if the two are equal."""
    rows = conn.execute(
        "SELECT type, name, tbl_name, COALESCE(sql, '') FROM sqlite_master"
        " WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
    ).fetchall()
    return hash_bytes(canonical_json([list(r) for r in rows]))


def _tables(conn: sqlite3.Connection, schema: str = "main") -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            f"SELECT name FROM {schema}.sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
            " ORDER BY name"
        )
    ]


def _rows(conn: sqlite3.Connection, schema: str = "main") -> dict[str, int]:
    return {
        t: int(conn.execute(f'SELECT COUNT(*) FROM {schema}."{t}"').fetchone()[0])
        for t in _tables(conn, schema)
    }


def _meta(conn: sqlite3.Connection, key: str, schema: str = "main") -> str | None:
    row = conn.execute(f"SELECT value FROM {schema}.meta WHERE key=?", (key,)).fetchone()
    return None if row is None else str(row[0])


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# -- making ----------------------------------------------------------------------------------------
def pin(index_path: str | os.PathLike[str]) -> tuple[sqlite3.Connection, int]:
    """A read transaction on the index file, fixing its state now; returns it with its last_seq.

    Held open (WAL keeps that state readable) while a background thread copies it, so the writer may
    go on applying entries at once.
    """
    conn = sqlite3.connect(index_path, isolation_level=None, check_same_thread=False, timeout=60)
    conn.execute("BEGIN")
    seq = int(_meta(conn, "last_seq") or 0)
    return conn, seq


def write_snapshot(
    root: Root,
    pinned: sqlite3.Connection,
    *,
    index_format: int,
    store_id: str,
    unusable: frozenset[str] = frozenset(),
) -> Snapshot | None:
    """Copy the pinned state to the store (data, then descriptor, then hint); closes ``pinned``.

    None when a descriptor for that seq exists already (and is not among the ``unusable`` names), or
    when the data inflates past `bounds.max_snapshot_bytes`, which readers would refuse.
    """
    try:
        seq = int(_meta(pinned, "last_seq") or 0)
        if seq <= 0 or any(n not in unusable for n in names_at(root, seq)):
            return None
        with tempfile.TemporaryDirectory(prefix="artifacts-snap-") as tmp:
            path = Path(tmp) / "index.sqlite"
            dest = sqlite3.connect(path)
            try:
                pinned.backup(dest)
                dest.execute("PRAGMA journal_mode=DELETE")
                schema, rows = schema_digest(dest), _rows(dest)
            finally:
                dest.close()
            data, size = zlib.compress(path.read_bytes(), 1), path.stat().st_size
    finally:
        pinned.close()
    if size > bounds.max_snapshot_bytes(len(data)):
        return None  # no reader would take it (see bounds.SNAPSHOT_INFLATE_RATIO): packs serve
    snap = Snapshot(seq, index_format, schema, hash_bytes(data), len(data), rows, store_id, _now())
    with contextlib.suppress(ConflictError):  # the same bytes, written by someone else
        root.create_exclusive(snap.data_path, data)
    try:
        root.create_exclusive(snap.path, canonical_json(snap.to_dict()))
    except ConflictError:
        return None
    with contextlib.suppress(ArtifactsError):  # a hint not written is only a slower cold open
        root.write(HINT, canonical_json({"seq": seq}))
    return snap


# -- finding and loading ---------------------------------------------------------------------------
def _small_json(root: Root, rel: str, where: str) -> Any:
    """A small document of the store (the hint, a descriptor), read up to one byte past
    `bounds.MAX_SMALL_BYTES` and refused past it (`ValueError`, as `load_json` refuses)."""
    small = bounds.MAX_SMALL_BYTES
    return load_json(root.read(rel, limit=small), where, limit=small)


def list_snapshots(root: Root, *, before: int | None = None) -> list[str]:
    """Descriptor names, newest first. The hint narrows the listing to the hinted seq and newer; a
    stale hint (nothing there any more) costs one more listing. ``before``: only older than that seq."""
    after = ""
    if before is None:
        with contextlib.suppress(ArtifactsError, ValueError, KeyError, TypeError):
            hinted = _small_json(root, HINT, HINT)["seq"]
            if isinstance(hinted, int) and not isinstance(hinted, bool) and hinted > 0:
                after = f"{hinted - 1:020d}-~"  # the hinted seq and anything newer
    names = _listed(root, after)
    if not names and after:
        names = _listed(root, "")
    if before is not None:
        names = [n for n in names if (parse_descriptor_name(n) or 0) < before]
    return sorted(names, reverse=True)


def all_snapshots(root: Root) -> list[str]:
    """Every descriptor name, newest first, ignoring the hint (verify, gc)."""
    return sorted(_listed(root, ""), reverse=True)


def names_at(root: Root, seq: int) -> list[str]:
    """Descriptor names for exactly ``seq`` (one short listing)."""
    return [n for n in _listed(root, f"{seq - 1:020d}-~") if parse_descriptor_name(n) == seq]


def _listed(root: Root, after: str) -> list[str]:
    return [
        f"{SNAPSHOT_DIR}/{n}"
        for n in root.list_after(SNAPSHOT_DIR, after)
        if parse_descriptor_name(n)
    ]


def read_descriptor(root: Root, where: str) -> Snapshot:
    seq = parse_descriptor_name(where)
    try:
        obj = _small_json(root, where, f"snapshot {where}")
        snap = Snapshot(
            seq=obj["seq"],
            index_format=obj["index_format"],
            schema=obj["schema"],
            digest=obj["digest"],
            size=obj["size"],
            rows=dict(obj["rows"]),
            store_id=obj["store_id"],
            created_at=obj["created_at"],
            format=obj["format"],
        )
    except NotFoundError:
        raise SnapshotError(f"snapshot {where} disappeared") from None
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise SnapshotError(f"snapshot {where} is unparsable ({e})") from None
    if snap.format != SNAPSHOT_FORMAT or isinstance(snap.format, bool):
        raise SnapshotError(f"snapshot {where} has unknown snapshot format {snap.format!r}")
    if not isinstance(snap.digest, str) or not re.fullmatch(r"[0-9a-f]{64}", snap.digest):
        raise SnapshotError(f"snapshot {where} names no valid data digest")
    if snap.seq != seq or snap.path != where:
        raise SnapshotError(f"snapshot {where} claims to be {snap.path}")
    return snap


def check_snapshot(
    root: Root, where: str, *, index_format: int, schema: str, store_id: str, workdir: Path
) -> tuple[Snapshot, Path]:
    """Download and check one snapshot; returns its descriptor and the path of the checked database."""
    snap = read_descriptor(root, where)
    seq = snap.seq
    if snap.index_format != index_format or snap.schema != schema:
        raise SnapshotError(
            f"snapshot {where} was made for index format {snap.index_format}, another schema than"
            f" this library's (index format {index_format})"
        )
    if snap.store_id != store_id:
        raise SnapshotError(f"snapshot {where} belongs to another store ({snap.store_id})")
    size = snap.size if isinstance(snap.size, int) and not isinstance(snap.size, bool) else -1
    if size < 0:
        raise SnapshotError(f"snapshot {where} names no valid data size")
    path = workdir / f"snapshot-{seq}-{snap.digest[:16]}.sqlite"
    try:  # streamed: its size is checked before any byte is read, its bytes never held whole
        with root.read_pieces(snap.data_path, _PIECE) as (length, pieces):
            if length > size:
                raise SnapshotError(
                    f"snapshot {where}: its data {snap.data_path} is longer than the {size} bytes "
                    "its descriptor gives"
                )
            hasher = blake3.blake3()
            _inflate(_hashed(pieces, hasher), length, path, where)
    except NotFoundError:
        raise SnapshotError(f"snapshot {where}: its data {snap.data_path} is missing") from None
    if hasher.hexdigest() != snap.digest:
        path.unlink(missing_ok=True)
        raise SnapshotError(f"snapshot {where}: its data {snap.data_path} is corrupt (digest)")
    conn = sqlite3.connect(path)
    try:
        ok = conn.execute("PRAGMA integrity_check").fetchall()
        if [tuple(r) for r in ok] != [("ok",)]:
            raise SnapshotError(f"snapshot {where} fails SQLite's integrity check: {ok[0][0]}")
        if schema_digest(conn) != schema:
            raise SnapshotError(f"snapshot {where}: its database has another schema")
        if _rows(conn) != snap.rows:
            raise SnapshotError(f"snapshot {where}: its row counts differ from its descriptor")
        last, sid = _meta(conn, "last_seq"), _meta(conn, "store_id")
        if last != str(seq) or sid != store_id:
            raise SnapshotError(f"snapshot {where}: its database covers seq {last} of store {sid}")
        for table, column, kinds in _JSON_COLUMNS:
            if conn.execute(_bad_json(table, column, kinds)).fetchone() is not None:
                raise SnapshotError(
                    f"snapshot {where}: {table}.{column} holds a value that is not a JSON {kinds[0]}"
                )
    except sqlite3.DatabaseError as e:
        raise SnapshotError(f"snapshot {where} is not a usable database ({e})") from None
    finally:
        conn.close()
    return snap, path


#: Bytes fed to and taken from the inflater at a time: the memory a snapshot's inflating costs.
_PIECE = 1024 * 1024


def _hashed(pieces: Iterator[bytes], hasher: blake3.blake3) -> Iterator[bytes]:
    for piece in pieces:
        hasher.update(piece)
        yield piece


def _inflate(pieces: Iterator[bytes], length: int, path: Path, where: str) -> None:
    """Inflate the ``length`` compressed bytes ``pieces`` bring into the file ``path``, a piece at a
    time, refusing them (and removing the file) once past `bounds.max_snapshot_bytes` or when the
    stream is damaged, cut short, or followed by more bytes (refused at the first such piece, unread
    beyond it). The caller checks the digest of what was read once this returns."""
    limit = bounds.max_snapshot_bytes(length)
    inflater, written = zlib.decompressobj(), 0
    source = iter(pieces)
    try:
        with open(path, "wb") as out:
            tail: bytes = b""
            while not inflater.eof:
                if not tail:  # the next piece of input (none at the end: what the inflater holds)
                    tail = next(source, b"")
                    ended = not tail
                piece = inflater.decompress(tail, _PIECE)
                tail = inflater.unconsumed_tail
                written += len(piece)
                if written > limit:
                    raise SnapshotError(
                        f"snapshot {where}: its data inflates to more than {limit} bytes, the most"
                        f" {length} compressed bytes may (bounds.max_snapshot_bytes)"
                    )
                out.write(piece)
                if not piece and not tail and ended:
                    raise SnapshotError(
                        f"snapshot {where}: its data is corrupt: it does not decompress (incomplete"
                        " or truncated stream)"
                    )
            if inflater.unused_data or any(source):  # the stream ended before its data did
                raise SnapshotError(
                    f"snapshot {where}: its data is corrupt: it goes on past the end of its "
                    "compressed stream"
                )
    except zlib.error as e:
        path.unlink(missing_ok=True)
        raise SnapshotError(
            f"snapshot {where}: its data is corrupt: it does not decompress ({e})"
        ) from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise


#: The index's JSON columns and the JSON types their readers expect (NULL or '' read as empty).
#: A snapshot is store content: its rows are checked, as a log entry's fields are, before any use.
_JSON_COLUMNS = (
    ("versions", "metadata", ("object",)),
    ("files", "meta", ("object",)),
    ("runs", "config", ("object",)),
    ("runs", "summary", ("object",)),
    ("runs", "env", ("object",)),
    ("runs", "tags", ("array",)),
    ("runs", "command", ("array", "null")),
)


def _bad_json(table: str, column: str, kinds: tuple[str, ...]) -> str:
    c, allowed = f'"{column}"', ", ".join(f"'{k}'" for k in kinds)
    return (
        f'SELECT 1 FROM "{table}" WHERE {c} IS NOT NULL AND {c} != \'\' AND '
        f"(NOT json_valid({c}) OR json_type({c}) NOT IN ({allowed})) LIMIT 1"
    )


def load_snapshot(conn: sqlite3.Connection, path: Path, where: str) -> bool:
    """Make an empty index (last_seq 0) the checked snapshot, page for page, in one write transaction.

    SQLite's online backup copies the checked file's pages as they are (the index stays in WAL mode,
    and other connections to it reload their schema), so a cold open pays for copying the file, not
    for inserting every row again and rebuilding every index (10x slower at 100k entries). False
    (nothing changed) if the index moved before the copy, e.g. another process on this machine synced.
    Checking that and copying are not one transaction: a process that applied entries in between is
    set back to the snapshot's seq, a state of the same log, and applies them again (every write
    re-reads last_seq inside its transaction). A copy SQLite refuses (a snapshot with another page
    size) raises `SnapshotError` and leaves the index as it was.
    """
    if _meta(conn, "last_seq") != "0":
        return False
    src = sqlite3.connect(path)
    try:
        src.backup(conn)
    except sqlite3.DatabaseError as e:
        raise SnapshotError(f"snapshot {where} cannot be copied into the index ({e})") from None
    finally:
        src.close()
    return True
