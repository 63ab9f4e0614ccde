"""The index: a local SQLite replay of the commit log, for fast queries. Deleting it loses nothing.

Entries are applied in order, one transaction per sync; several processes may share one index. The rules
that decide what an entry does (or why it is refused) are in `artifacts.catalog.rules`; an entry that breaks one
is recorded as rejected with its sequence number and the reason, and has no effect.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from storage import hash_bytes
from storage.statcache import init_lock

from ..errors import ArtifactsError, NotFoundError
from ..runquery import resolve_run_id
from ..runvalues import DDL as VALUES_DDL
from ..runvalues import Writer, fill
from . import jsoncol
from .entries import Entry, EntryError, decode
from .full import index_write_errors, is_disk_full
from .log import RawEntry
from .records import RunRecord, VersionRecord
from .rules import Applied, Rules, run_node

__all__ = ["INDEX_FORMAT", "Index", "IndexMoved"]

#: 4: entries are decoded with full field validation (an index built before may hold entries that
#: are now rejected, so it is rebuilt from the log) and meta keeps the store's total size.
#: 5: runs.tags, notes, live history chunks; the query engine's indexes and run_keys table.
#: 6: copies (which source entries a copy committed).
#: 7: run_values and run_value_keys (`artifacts.runvalues`): filled from the runs of a format 6 index
#: when it is opened (no replay of the log), any other format is rebuilt.
#: 8: runs.series (`artifacts.series`): added in place to a format 6 or 7 index (its runs have none:
#: no earlier writer made series blobs).
INDEX_FORMAT = 8
_MIGRATES = {6: "add run_values, runs.series", 7: "add runs.series"}
#: added after the table's creation in a new index too, so both have the same schema text (snapshots)
_SERIES_DDL = "ALTER TABLE runs ADD COLUMN series TEXT"


#: What entry 1 names as its predecessor: nothing (an entry 1 with a ``prev`` is forged or misplaced).
_FIRST = ""


def _check_prev(entry: Entry, known: str | None) -> None:
    """The hash chain, checked on replay: an entry that names a predecessor other than the bytes
    applied before it is rejected, by every reader alike (all hash the same bytes). ``known`` is None
    only where the digest of the previous entry was never recorded (an index or snapshot written
    before the chain existed); entries without ``prev`` (written before it) are not checked."""
    if entry.prev is None or known is None or entry.prev == known:
        return
    if known == _FIRST:
        raise EntryError("it names a previous entry (prev) but it is the first entry of the log")
    raise EntryError(
        f"its prev ({entry.prev[:16]}...) is not the digest of log entry {entry.seq - 1} "
        f"({known[:16]}...): entry {entry.seq - 1} was changed after this one was written, or this "
        "one was written for another log"
    )


class IndexMoved(Exception):
    """Internal to the commit loop: another process applied entries while a change was validated."""


class Index(Rules):
    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        store_id: str,
        admins: list[str],
        fresh: bool = False,
    ) -> None:
        """Open (or create) the index at ``path``; ``fresh``: drop what it holds and start empty."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.store_id = store_id
        self._values = Writer()
        # one process at a time creates (or rebuilds) the file: concurrent first opens would otherwise
        # delete each other's half-made index ("disk I/O error") or race on WAL ("database is locked")
        with init_lock(self.path), index_write_errors(self.path, "open the local index"):
            try:
                self._conn = self._connect()
                fmt = self._format()
            except sqlite3.DatabaseError as e:  # "file is not a database": a damaged cache, rebuilt
                if is_disk_full(e):  # not damaged: keep it for when there is space again
                    raise
                fmt = None
            if not fresh and fmt in _MIGRATES:
                fmt = self._migrate(fmt)
            if fresh or fmt != INDEX_FORMAT:
                with contextlib.suppress(AttributeError):
                    self._conn.close()
                for suffix in ("", "-wal", "-shm"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(f"{self.path}{suffix}")
                self._conn = self._connect()
            self._create_schema(admins)
            self._repair_json()

    # -- setup -----------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA cache_size=-32768")  # KiB: pages read again and again in a rebuild
        conn.row_factory = sqlite3.Row
        return conn

    def _format(self) -> int | None:
        try:
            row = self._conn.execute("SELECT value FROM meta WHERE key='format'").fetchone()
        except sqlite3.DatabaseError:  # no meta table yet, or not a database at all: rebuild
            return None
        return int(row[0]) if row else None

    def _migrate(self, fmt: int) -> int | None:
        """Bring an index of format ``fmt`` to `INDEX_FORMAT` in one transaction; returns the format
        it has after (None when it is not an index after all: rebuilt then)."""
        try:
            with self.transaction() as c:
                if self._format() != fmt:
                    return self._format()  # another process migrated it meanwhile
                if fmt < 7:
                    for ddl in VALUES_DDL:
                        c.execute(ddl)
                    fill(c)
                c.execute(_SERIES_DDL)
                c.execute("UPDATE meta SET value=? WHERE key='format'", (str(INDEX_FORMAT),))
        except sqlite3.DatabaseError as e:
            if is_disk_full(e):
                raise
            return None
        return INDEX_FORMAT

    def _create_schema(self, admins: list[str]) -> None:
        if self._has_meta(self._conn):
            return  # the common case: no sqlite_utils import (0.5 s with pandas installed) per open
        import sqlite_utils

        db = sqlite_utils.Database(self._conn)
        with self.transaction() as c:
            if self._has_meta(c):
                return
            db.table("meta").create({"key": str, "value": str}, pk="key")
            db.table("runs").create(
                {
                    "id": str,
                    "project": str,
                    "name": str,
                    "group_": str,
                    "job_type": str,
                    "user": str,
                    "host": str,
                    "status": str,
                    "config": str,
                    "summary": str,
                    "history": str,
                    "command": str,
                    "git": str,
                    "env": str,
                    "started_at": str,
                    "finished_at": str,
                    "seq": int,
                    "tags": str,
                    "notes": str,
                    "chunks": int,
                },
                pk="id",
            )
            c.execute(_SERIES_DDL)
            # the query engine's fixed fields (artifacts.runquery): filters, orders and group-bys
            db.table("runs").create_index(["seq"], unique=True)
            for cols in (["project", "seq"], ["group_", "job_type"], ["job_type"], ["user"]):
                db.table("runs").create_index(cols)
            db.table("runs").create_index(["status"])
            db.table("runs").create_index(["started_at"])
            # every (config|summary, key path, JSON type) seen: type checks in queries, column pickers
            db.table("run_keys").create(
                {"source": str, "path": str, "type": str}, pk=("source", "path", "type")
            )
            for ddl in VALUES_DDL:  # config and summary values, typed (`artifacts.runvalues`)
                c.execute(ddl)
            db.table("artifacts").create({"name": str, "type": str, "next_version": int}, pk="name")
            db.table("versions").create(
                {
                    "id": int,
                    "name": str,
                    "version": int,
                    "node": str,
                    "type": str,
                    "digest": str,
                    "size": int,
                    "metadata": str,
                    "description": str,
                    "user": str,
                    "created_at": str,
                    "run_id": str,
                    "deleted": int,
                    "seq": int,
                },
                pk="id",
            )
            db.table("versions").create_index(["name", "version"], unique=True)
            db.table("versions").create_index(["node"], unique=True)
            db.table("versions").create_index(["user", "deleted"])
            db.table("files").create(
                {"version_id": int, "path": str, "digest": str, "size": int, "meta": str},
                pk=("version_id", "path"),
            )
            db.table("files").create_index(["digest"])
            db.table("aliases").create(
                {"name": str, "alias": str, "version": int}, pk=("name", "alias")
            )
            db.table("edges").create(
                {"src": str, "dst": str, "kind": str, "seq": int}, pk=("src", "dst", "kind")
            )
            db.table("edges").create_index(["dst"])
            db.table("quotas").create({"user": str, "bytes": int}, pk="user")
            db.table("admins").create({"user": str}, pk="user")
            db.table("rejected").create({"seq": int, "reason": str}, pk="seq")
            # source store id + source entry -> the entry that copied it (`artifacts.transfer`)
            db.table("copies").create(
                {"store": str, "src_seq": int, "seq": int}, pk=("store", "src_seq")
            )
            c.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [
                    ("format", str(INDEX_FORMAT)),
                    ("last_seq", "0"),
                    ("store_id", self.store_id),
                    ("total_size", "0"),
                    (jsoncol.MARK, "1"),  # every JSON column written by jsoncol.dumps
                ],
            )
            c.executemany("INSERT OR IGNORE INTO admins VALUES (?)", [(a,) for a in admins])

    def _repair_json(self) -> None:
        """Rewrite, once per index, the rows an earlier writer left unreadable to SQLite's JSON
        functions (a bare NaN: see `jsoncol`); one lookup in meta on every later open."""
        if self._conn.execute("SELECT 1 FROM meta WHERE key=?", (jsoncol.MARK,)).fetchone():
            return
        with self.transaction() as c:
            jsoncol.repair(c)

    @staticmethod
    def _has_meta(c: sqlite3.Connection) -> bool:
        q = "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
        return c.execute(q).fetchone() is not None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All or nothing, also when the COMMIT is what fails (a full disk): the connection is never
        left inside a transaction that would make every later write fail."""
        c = self._conn
        self._values.forget()  # ids another transaction made may have been rolled back
        with index_write_errors(self.path):
            c.execute("BEGIN IMMEDIATE")
            try:
                yield c
                c.execute("COMMIT")
            except BaseException:
                if c.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        c.execute("ROLLBACK")
                raise

    def close(self) -> None:
        self._conn.close()

    @property
    def connection(self) -> sqlite3.Connection:
        """The SQLite connection, for read-only queries compiled elsewhere (`artifacts.querysql`).
        Writes go through `apply` only: the index must stay a replay of the log."""
        return self._conn

    # -- applying the log ------------------------------------------------------------------------
    @property
    def last_seq(self) -> int:
        return self._last_seq(self._conn)

    def last_digest(self, seq: int) -> str | None:
        """The digest of the bytes of applied entry ``seq``, when it is the last one applied (and the
        index was written by a library that records it)."""
        row = self._conn.execute("SELECT value FROM meta WHERE key='last_digest'").fetchone()
        if row is None:
            return None
        at, _, digest = str(row[0]).partition(":")
        return digest if at == str(seq) else None

    def remember_digest(self, seq: int, digest: str) -> None:
        """Record the digest of applied entry ``seq`` when the index was not told it (a snapshot)."""
        with self.transaction() as c:
            if self._last_seq(c) == seq:
                c.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('last_digest', ?)", (f"{seq}:{digest}",)
                )

    @staticmethod
    def _last_seq(c: sqlite3.Connection) -> int:
        return int(c.execute("SELECT value FROM meta WHERE key='last_seq'").fetchone()[0])

    def apply(
        self, entries: list[RawEntry], decoded: Mapping[int, Entry] | None = None
    ) -> list[tuple[int, str]]:
        """Apply entries in order (skipping ones already applied); returns the (seq, reason) rejected.

        ``decoded``: ``decode`` of some of them by seq, already done by their committer (a 20k-file
        manifest costs ~0.4 s to decode and validate; the committer's own entry is not decoded twice).
        """
        rejected = []
        digest: str | None = None
        mine = decoded or {}
        with self.transaction() as c:
            last = self._last_seq(c)
            known = self.last_digest(last) if last else _FIRST  # what entry last + 1 must name
            for raw in entries:
                if raw.seq <= last:
                    continue
                if raw.seq != last + 1:
                    break  # a gap: the caller will fetch the missing entries next sync
                c.execute("SAVEPOINT entry")
                mark = self._values.mark()
                try:
                    entry = mine[raw.seq] if raw.seq in mine else decode(raw.seq, raw.data)
                    _check_prev(entry, known)
                    self._apply_entry(c, entry)
                except (ArtifactsError, ValueError) as e:  # EntryError is a ValueError
                    c.execute("ROLLBACK TO entry")
                    self._values.rollback_to(mark)
                    reason = str(e)
                    c.execute("INSERT OR REPLACE INTO rejected VALUES (?, ?)", (raw.seq, reason))
                    rejected.append((raw.seq, reason))
                c.execute("RELEASE entry")
                last, digest = raw.seq, hash_bytes(raw.data)
                known = digest
            self._values.flush(c)
            c.execute("UPDATE meta SET value=? WHERE key='last_seq'", (str(last),))
            if digest is not None:  # the hash chain's link for the next writer (see entries.prev)
                c.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('last_digest', ?)", (f"{last}:{digest}",)
                )
        return rejected

    # -- a bulk of this process's own entries (`artifacts.catalog.bulk`) --------------------------
    def begin_own(self) -> int:
        """Open the write transaction a bulk stages its entries in; returns the last seq applied.

        Entries staged in it are applied exactly as replay applies them (one savepoint each), so the
        index the bulk leaves is the index a replay of the same log builds; nothing is committed
        until the bulk has created every staged entry in the log (`end_own`)."""
        self._values.forget()
        with index_write_errors(self.path):
            self._conn.execute("BEGIN IMMEDIATE")
        return self._last_seq(self._conn)

    def stage_own(self, raw: RawEntry, entry: Entry | None = None) -> Applied:
        """Apply ``raw``, the next entry, inside the bulk's transaction, or raise the rule it breaks
        (leaving no trace of it, as a refused commit leaves none). ``entry``: ``decode`` of ``raw``,
        when the caller has it already."""
        c = self._conn
        with index_write_errors(self.path):
            last = self._last_seq(c)
            if raw.seq != last + 1:
                raise IndexMoved(raw.seq)
            known = self.last_digest(last) if last else _FIRST
            entry = decode(raw.seq, raw.data) if entry is None else entry
            c.execute("SAVEPOINT own")
            mark = self._values.mark()
            try:
                _check_prev(entry, known)
                applied = self._apply_entry(c, entry)
                self._values.flush(c)  # queries staged after this one see its run values
            except BaseException:
                c.execute("ROLLBACK TO own")
                c.execute("RELEASE own")
                self._values.rollback_to(mark)
                raise
            c.execute("RELEASE own")
            c.execute("UPDATE meta SET value=? WHERE key='last_seq'", (str(raw.seq),))
            c.execute(
                "INSERT OR REPLACE INTO meta VALUES ('last_digest', ?)",
                (f"{raw.seq}:{hash_bytes(raw.data)}",),
            )
        return applied

    def end_own(self, *, commit: bool) -> None:
        """Commit the bulk's transaction (its entries are in the log) or roll it back (they are not
        all there: a sync applies the ones that are, from the log)."""
        c = self._conn
        with index_write_errors(self.path):
            try:
                c.execute("COMMIT" if commit else "ROLLBACK")
            except BaseException:
                if c.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        c.execute("ROLLBACK")
                raise
            finally:
                self._values.forget()

    # -- queries ---------------------------------------------------------------------------------
    def _latest(self, c: sqlite3.Connection, name: str) -> sqlite3.Row | None:
        return c.execute(
            "SELECT * FROM versions WHERE name=? AND deleted=0 ORDER BY version DESC LIMIT 1",
            (name,),
        ).fetchone()

    def _version_row(self, c: sqlite3.Connection, name: str, version: int) -> sqlite3.Row:
        row = c.execute(
            "SELECT * FROM versions WHERE name=? AND version=?", (name, version)
        ).fetchone()
        if row is None:
            art = c.execute("SELECT next_version FROM artifacts WHERE name=?", (name,)).fetchone()
            why = (
                f"no artifact named {name!r}"
                if art is None
                else f"{name} has versions v0..v{art[0] - 1}"
            )
            raise NotFoundError(f"{name}:v{version} not found: {why}")
        if row["deleted"]:
            raise NotFoundError(f"{name}:v{version} was deleted (log entry {row['deleted']})")
        return row

    def resolve(
        self, name: str, version: int | None = None, alias: str | None = None
    ) -> sqlite3.Row:
        c = self._conn
        if version is not None:
            return self._version_row(c, name, version)
        if alias is not None:
            row = c.execute(
                "SELECT version FROM aliases WHERE name=? AND alias=?", (name, alias)
            ).fetchone()
            if row is None:
                known = self.exists(name)
                raise NotFoundError(
                    f"{name}:{alias} not found: "
                    + (
                        f"no version of {name!r} has alias {alias!r}"
                        if known
                        else f"no artifact named {name!r}"
                    )
                )
            return self._version_row(c, name, row["version"])
        row = self._latest(c, name)
        if row is None:
            raise NotFoundError(
                f"{name} not found: "
                + (
                    "all its versions were deleted"
                    if self.exists(name)
                    else f"no artifact named {name!r}"
                )
            )
        return row

    def artifact_type(self, name: str) -> str | None:
        """The type of artifact ``name``, None when no version of it was ever logged."""
        row = self._conn.execute("SELECT type FROM artifacts WHERE name=?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def exists(self, name: str) -> bool:
        return (
            self._conn.execute("SELECT 1 FROM artifacts WHERE name=?", (name,)).fetchone()
            is not None
        )

    def version_by_node(self, node: str) -> sqlite3.Row | None:
        return self._conn.execute("SELECT * FROM versions WHERE node=?", (node,)).fetchone()

    def versions(self, name: str, include_deleted: bool = False) -> list[sqlite3.Row]:
        q = "SELECT * FROM versions WHERE name=?" + ("" if include_deleted else " AND deleted=0")
        return self._conn.execute(q + " ORDER BY version", (name,)).fetchall()

    def artifacts(self) -> list[sqlite3.Row]:
        return self._conn.execute(
            "SELECT a.name, a.type, COUNT(v.id) AS versions, COALESCE(SUM(v.size), 0) AS size,"
            " MAX(v.created_at) AS updated_at FROM artifacts a LEFT JOIN versions v"
            " ON v.name = a.name AND v.deleted = 0 GROUP BY a.name ORDER BY a.name"
        ).fetchall()

    def aliases(self, name: str, version: int) -> list[str]:
        rows = self._conn.execute(
            "SELECT alias FROM aliases WHERE name=? AND version=? ORDER BY alias", (name, version)
        ).fetchall()
        return [r[0] for r in rows]

    def files(self, vid: int) -> list[sqlite3.Row]:
        return self._conn.execute(
            "SELECT * FROM files WHERE version_id=? ORDER BY path", (vid,)
        ).fetchall()

    def file_count(self, vid: int) -> int:
        """How many files a version has, without building a row per file (1M files: seconds)."""
        row = self._conn.execute("SELECT COUNT(*) FROM files WHERE version_id=?", (vid,)).fetchone()
        return int(row[0])

    def file(self, vid: int, path: str) -> sqlite3.Row | None:
        return self._conn.execute(
            "SELECT * FROM files WHERE version_id=? AND path=?", (vid, path)
        ).fetchone()

    def version_record(self, row: sqlite3.Row) -> VersionRecord:
        """A versions row as a typed record, with its aliases."""
        return VersionRecord.from_row(row, tuple(self.aliases(row["name"], row["version"])))

    def run_record(self, run_id: str) -> RunRecord:
        return RunRecord.from_row(self.run(run_id))

    def file_sizes(self) -> dict[str, int]:
        """Digest -> size of every file any version refers to (what verify expects each blob to hold)."""
        return {r[0]: r[1] for r in self._conn.execute("SELECT digest, size FROM files")}

    def run(self, run_id: str) -> sqlite3.Row:
        """A run by id, or by a unique prefix of its id (at least 4 characters, as git allows)."""
        row = self._conn.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            full = resolve_run_id(
                self._conn, run_id
            )  # NotFoundError, or AmbiguousError listing them
            row = self._conn.execute("SELECT * FROM runs WHERE id=?", (full,)).fetchone()
        return row

    def runs(self, project: str | None = None) -> list[sqlite3.Row]:
        if project is None:
            return self._conn.execute("SELECT * FROM runs ORDER BY seq").fetchall()
        return self._conn.execute(
            "SELECT * FROM runs WHERE project=? ORDER BY seq", (project,)
        ).fetchall()

    def run_versions(self, run_id: str, kind: str) -> list[sqlite3.Row]:
        """Versions a run consumed (``kind='consumed'``) or produced, in log order."""
        node = run_node(run_id)
        if kind == "produced":
            q = (
                "SELECT v.* FROM edges e JOIN versions v ON v.node = e.dst "
                "WHERE e.src=? AND e.kind='produced' ORDER BY e.seq"
            )
        else:
            q = (
                "SELECT v.* FROM edges e JOIN versions v ON v.node = e.src "
                "WHERE e.dst=? AND e.kind='consumed' ORDER BY e.seq"
            )
        return self._conn.execute(q, (node,)).fetchall()

    def version_runs(self, node: str, kind: str) -> list[sqlite3.Row]:
        """Runs that produced (``kind='produced'``) or consumed a version, in log order."""
        if kind == "produced":
            q = (
                "SELECT r.* FROM edges e JOIN runs r ON 'run/' || r.id = e.src "
                "WHERE e.dst=? AND e.kind='produced' ORDER BY e.seq"
            )
        else:
            q = (
                "SELECT r.* FROM edges e JOIN runs r ON 'run/' || r.id = e.dst "
                "WHERE e.src=? AND e.kind='consumed' ORDER BY e.seq"
            )
        return self._conn.execute(q, (node,)).fetchall()

    def is_admin(self, user: str, c: sqlite3.Connection | None = None) -> bool:
        c = c or self._conn
        return c.execute("SELECT 1 FROM admins WHERE user=?", (user,)).fetchone() is not None

    def admins(self) -> list[str]:
        return [r[0] for r in self._conn.execute("SELECT user FROM admins ORDER BY user")]

    def users(self) -> list[str]:
        """Every user the log names: those who logged a version, started a run or have a quota."""
        return [
            r[0]
            for r in self._conn.execute(
                "SELECT user FROM versions UNION SELECT user FROM runs UNION SELECT user FROM quotas"
                " ORDER BY 1"
            )
        ]

    def quota(self, user: str, c: sqlite3.Connection | None = None) -> int | None:
        row = (c or self._conn).execute("SELECT bytes FROM quotas WHERE user=?", (user,)).fetchone()
        return None if row is None else int(row[0])

    def usage(self, user: str, c: sqlite3.Connection | None = None) -> int:
        """Total size of the distinct blobs referenced by the live versions ``user`` created."""
        row = (
            (c or self._conn)
            .execute(
                "SELECT COALESCE(SUM(size), 0) FROM (SELECT DISTINCT f.digest, f.size FROM files f"
                " JOIN versions v ON v.id = f.version_id WHERE v.user=? AND v.deleted=0)",
                (user,),
            )
            .fetchone()
        )
        return int(row[0])

    def user_digests(self, user: str, digests: list[str]) -> set[str]:
        """Which of ``digests`` already count toward ``user``'s usage."""
        out: set[str] = set()
        for i in range(0, len(digests), 500):
            chunk = digests[i : i + 500]
            q = (
                "SELECT DISTINCT f.digest FROM files f JOIN versions v ON v.id = f.version_id"
                f" WHERE v.user=? AND v.deleted=0 AND f.digest IN ({','.join('?' * len(chunk))})"
            )
            out.update(r[0] for r in self._conn.execute(q, (user, *chunk)))
        return out

    def live_digests(self) -> set[str]:
        """Every blob a live version or a run refers to (gc's mark phase): files, manifests, histories
        and series."""
        c = self._conn
        out = {
            r[0]
            for r in c.execute(
                "SELECT DISTINCT f.digest FROM files f JOIN versions v ON v.id = f.version_id"
                " WHERE v.deleted=0"
            )
        }
        out.update(r[0] for r in c.execute("SELECT digest FROM versions WHERE deleted=0"))
        for col in ("history", "series"):
            out.update(r[0] for r in c.execute(f"SELECT {col} FROM runs WHERE {col} IS NOT NULL"))
        return out

    def all_referenced(self) -> dict[str, str]:
        """Every blob any entry refers to (live or not), mapped to a place that refers to it."""
        c = self._conn
        out: dict[str, str] = {}
        for r in c.execute(
            "SELECT f.digest, v.node, f.path FROM files f JOIN versions v"
            " ON v.id = f.version_id WHERE v.deleted=0"
        ):
            out.setdefault(r[0], f"{r[1]}/{r[2]}")
        for r in c.execute("SELECT digest, node FROM versions WHERE deleted=0"):
            out.setdefault(r[0], f"manifest of {r[1]}")
        for col in ("history", "series"):
            for r in c.execute(f"SELECT {col}, id FROM runs WHERE {col} IS NOT NULL"):
                out.setdefault(r[0], f"{col} of run {r[1]}")
        return out

    def copy_of(self, store_id: str, src_seq: int) -> int | None:
        """The entry that copied entry ``src_seq`` of store ``store_id`` here, if one did."""
        row = self._conn.execute(
            "SELECT seq FROM copies WHERE store=? AND src_seq=?", (store_id, src_seq)
        ).fetchone()
        return None if row is None else int(row[0])

    def copies(self, store_id: str) -> dict[int, int]:
        """Every entry of store ``store_id`` copied here: source entry -> the entry that copied it."""
        return {
            int(r[0]): int(r[1])
            for r in self._conn.execute(
                "SELECT src_seq, seq FROM copies WHERE store=?", (store_id,)
            )
        }

    def rejected(self) -> list[tuple[int, str]]:
        return [
            (r[0], r[1])
            for r in self._conn.execute("SELECT seq, reason FROM rejected ORDER BY seq")
        ]

    def lineage(
        self, node: str, direction: str, depth: int | None
    ) -> tuple[list[str], list[sqlite3.Row]]:
        """Nodes reachable from ``node`` along data flow (recursive CTE), and the edges among them."""
        steps = []
        if direction in ("upstream", "both"):
            steps.append(("src", "dst"))
        if direction in ("downstream", "both"):
            steps.append(("dst", "src"))
        nodes: set[str] = {node}
        for to, frm in steps:  # each direction separately: 'both' is ancestors plus descendants
            if depth is None:  # UNION on the node alone terminates even on cycles
                q = (
                    f"WITH RECURSIVE walk(node) AS (SELECT ? UNION SELECT e.{to} FROM edges e"
                    f" JOIN walk w ON e.{frm} = w.node) SELECT node FROM walk"
                )
                args: tuple[Any, ...] = (node,)
            else:  # one level is run + version, so two edges
                q = (
                    f"WITH RECURSIVE walk(node, d) AS (SELECT ?, 0 UNION SELECT e.{to}, w.d + 1"
                    f" FROM edges e JOIN walk w ON e.{frm} = w.node WHERE w.d < ?)"
                    " SELECT DISTINCT node FROM walk"
                )
                args = (node, 2 * depth)
            nodes.update(r[0] for r in self._conn.execute(q, args))
        ordered = sorted(nodes)
        edges: list[sqlite3.Row] = []
        for i in range(0, len(ordered), 400):
            chunk = ordered[i : i + 400]
            marks = ",".join("?" * len(chunk))
            edges.extend(
                self._conn.execute(
                    f"SELECT * FROM edges WHERE src IN ({marks}) ORDER BY seq", chunk
                )
            )
        keep = set(ordered)
        return ordered, [e for e in edges if e["dst"] in keep]
