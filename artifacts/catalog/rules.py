"""The catalog's rules: how each typed log entry changes the index, and when it is refused.

Every rule (gapless version numbers, alias moves, quotas, admin rights, run states) lives here, in one
`_apply_<op>` method per operation, reading the entry's fields by attribute. The same code validates a
writer's change before it commits (inside the transaction that records it once the log entry is
created) and replays every entry for every reader, so all clients decide alike; an entry that
breaks a rule raises, and the index records it as rejected. Field types and ranges were already
checked when the entry was decoded (`entries`).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from ..errors import (
    IntegrityError,
    InvalidStateError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
)
from ..runvalues import Writer
from . import jsoncol
from .entries import (
    INT64_MAX,
    AdminAdded,
    AliasRemoved,
    AliasSet,
    ArtifactUsed,
    Entry,
    EntryError,
    QuotaSet,
    RunFinished,
    RunStarted,
    RunUpdated,
    VersionDeleted,
    VersionLogged,
)

__all__ = ["AlreadyCopiedError", "Applied", "Rules", "run_node", "version_node"]


def _j(obj: Any) -> str:
    return jsoncol.dumps(obj)


def _loads(text: str | None) -> Any:
    """A runs row's JSON column (written by `_j` above), or None."""
    return jsoncol.loads(text) if text else None


def version_node(name: str, version: int) -> str:
    return f"{name}:v{version}"


def run_node(run_id: str) -> str:
    return f"run/{run_id}"


@dataclass(frozen=True)
class Applied:
    """What one committed entry did: the entry as numbered, and the version it made or reused."""

    seq: int
    entry: Entry
    version: int | None = None


class AlreadyCopiedError(InvalidStateError):
    """A copy of an entry another copy (a concurrent sync into the same store) committed first: every
    source entry is copied at most once, so two syncs at once never duplicate a version or a run."""


def _origin(e: Entry) -> tuple[str, int] | None:
    s = e.source
    if s is None:
        return None
    store, seq = s.get("store"), s.get("seq")
    if isinstance(store, str) and type(seq) is int and 0 < seq < 2**63:
        return store, seq
    return None


class Rules:
    """Mixin of `Index`: the state transitions. Queries it relies on (``_latest``, ``_version_row``,
    ``quota``, ``usage``, ``is_admin``, ``_meta``) are the index's own, and so is ``_values``,
    which records each run's config and summary keys (`artifacts.runvalues`)."""

    _values: Writer

    def _latest(self, c: sqlite3.Connection, name: str) -> sqlite3.Row | None:
        raise NotImplementedError

    def _version_row(self, c: sqlite3.Connection, name: str, version: int) -> sqlite3.Row:
        raise NotImplementedError

    def quota(self, user: str, c: sqlite3.Connection | None = None) -> int | None:
        raise NotImplementedError

    def usage(self, user: str, c: sqlite3.Connection | None = None) -> int:
        raise NotImplementedError

    def is_admin(self, user: str, c: sqlite3.Connection | None = None) -> bool:
        raise NotImplementedError

    def _apply_entry(self, c: sqlite3.Connection, e: Entry) -> Applied:
        handler = getattr(self, f"_apply_{e.OP}", None)
        if handler is None:  # a registered operation without a rule: a bug, refused like garbage
            raise EntryError(f"no rule for operation {e.OP!r}")
        origin = _origin(e)
        if origin is not None:
            row = c.execute(
                "SELECT seq FROM copies WHERE store=? AND src_seq=?", origin
            ).fetchone()
            if row is not None:
                raise AlreadyCopiedError(
                    f"entry {origin[1]} of store {origin[0]} was copied here already (entry {row[0]})"
                )
        applied = Applied(e.seq, e, handler(c, e))
        if origin is not None:
            c.execute("INSERT INTO copies VALUES (?, ?, ?)", (*origin, e.seq))
        return applied

    # one method per operation; each raises the rule an entry breaks
    def _apply_run_started(self, c: sqlite3.Connection, e: RunStarted) -> None:
        if c.execute("SELECT 1 FROM runs WHERE id=?", (e.id,)).fetchone():
            raise InvalidStateError(f"run {e.id} already exists")
        c.execute(
            "INSERT INTO runs (id, project, name, group_, job_type, user, host, status, config,"
            " summary, history, command, git, env, started_at, finished_at, seq, tags, notes)"
            " VALUES (?,?,?,?,?,?,?,'running',?,'{}',NULL,?,?,?,?,NULL,?,?,?)",
            (
                e.id,
                e.project,
                e.name,
                e.group,
                e.job_type,
                e.user,
                e.host,
                _j(e.config),
                _j(list(e.command) if e.command is not None else None),
                e.git,
                _j(e.env),
                e.ts,
                e.seq,
                _j(list(e.tags)) if e.tags else None,
                e.notes,
            ),
        )
        self._values.write(c, "config", e.seq, None, e.config)

    def _attachable(self, c: sqlite3.Connection, e: Entry, run_id: str) -> sqlite3.Row:
        """The run an output or input is attached to: one that is running, or, for a copy, the run
        that an earlier copy from the same store brought here finished (a later sync of other refs
        adds the edges the source run had; ``source.run_seq`` names the source run's start)."""
        row = self._run_row(c, run_id)
        origin = _origin(e)
        run_seq = e.source.get("run_seq") if e.source is not None else None
        if row["status"] != "running" and origin is not None and type(run_seq) is int:
            hit = c.execute(
                "SELECT seq FROM copies WHERE store=? AND src_seq=?", (origin[0], run_seq)
            ).fetchone()
            if hit is not None and hit[0] == row["seq"]:
                if row["user"] != e.user and not self.is_admin(e.user, c):
                    raise PermissionDeniedError(
                        f"run {run_id} belongs to {row['user']}, not {e.user}"
                    )
                return row
        return self._running(c, run_id, e.user)

    def _run_row(self, c: sqlite3.Connection, run_id: str) -> sqlite3.Row:
        row = c.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"run {run_id} not found")
        return row

    def _running(self, c: sqlite3.Connection, run_id: str, user: str) -> sqlite3.Row:
        row = self._run_row(c, run_id)
        if row["status"] != "running":
            raise InvalidStateError(f"run {run_id} is {row['status']}; start a new run to log more")
        if row["user"] != user:
            raise PermissionDeniedError(f"run {run_id} belongs to {row['user']}, not {user}")
        return row

    def _apply_run_finished(self, c: sqlite3.Connection, e: RunFinished) -> None:
        """The run's own user ends it; anyone may close a silent one as ``crashed`` (its process
        died: `Store.close_run`), an admin in any status."""
        row = self._run_row(c, e.run_id)
        if row["status"] != "running":
            raise InvalidStateError(f"run {e.run_id} is {row['status']} already")
        if row["user"] != e.user and e.status != "crashed" and not self.is_admin(e.user, c):
            raise PermissionDeniedError(
                f"run {e.run_id} belongs to {row['user']}: others may only mark it crashed"
            )
        c.execute(
            "UPDATE runs SET status=?, summary=?, history=?, series=?, finished_at=?, chunks=?, "
            "config=COALESCE(?, config) WHERE id=?",
            (
                e.status,
                _j(e.summary),
                e.history,
                e.series,
                e.ts,
                e.chunks,
                _j(e.config) if e.config is not None else None,
                e.run_id,
            ),
        )
        self._values.write(c, "summary", row["seq"], _loads(row["summary"]), e.summary)
        if e.config is not None:
            self._values.write(c, "config", row["seq"], _loads(row["config"]), e.config)

    def _apply_run_updated(self, c: sqlite3.Connection, e: RunUpdated) -> None:
        row = self._run_row(c, e.run_id)
        if row["user"] != e.user and not self.is_admin(e.user, c):
            raise PermissionDeniedError(
                f"run {e.run_id} belongs to {row['user']}; only they or a store admin may edit it"
            )
        sets: dict[str, Any] = {}
        if e.name is not None:
            sets["name"] = e.name
        if e.tags is not None:
            sets["tags"] = _j(list(e.tags))
        if e.notes is not None:
            sets["notes"] = e.notes
        if not sets:
            raise EntryError("run_updated changes nothing")
        assignments = ", ".join(f"{k}=?" for k in sets)
        c.execute(f"UPDATE runs SET {assignments} WHERE id=?", [*sets.values(), e.run_id])

    def _apply_version_logged(self, c: sqlite3.Connection, e: VersionLogged) -> int:
        manifest = e.manifest
        if manifest.digest != e.digest:
            raise IntegrityError(f"manifest of {e.name} does not hash to the digest it claims")
        if e.run_id is not None:
            self._attachable(c, e, e.run_id)
        art = c.execute(
            "SELECT type, next_version FROM artifacts WHERE name=?", (e.name,)
        ).fetchone()
        if art is not None and art["type"] != e.type:
            raise InvalidStateError(
                f"artifact {e.name!r} has type {art['type']!r}, not {e.type!r}; use another name"
            )
        latest = self._latest(c, e.name)
        if latest is not None and latest["digest"] == e.digest:
            number = latest["version"]  # same content: no new version
        else:
            number = art["next_version"] if art is not None else 0
            self._count_bytes(c, manifest.size)
            c.execute(
                "INSERT INTO artifacts VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                "next_version=excluded.next_version",
                (e.name, e.type, number + 1),
            )
            vid = c.execute(
                "INSERT INTO versions (name, version, node, type, digest, size, metadata, description,"
                " user, created_at, run_id, deleted, seq) VALUES (?,?,?,?,?,?,?,?,?,?,?,0,?)",
                (
                    e.name,
                    number,
                    version_node(e.name, number),
                    e.type,
                    e.digest,
                    manifest.size,
                    _j(e.metadata),
                    e.description,
                    e.user,
                    e.ts,
                    e.run_id,
                    e.seq,
                ),
            ).lastrowid
            c.executemany(
                "INSERT INTO files VALUES (?, ?, ?, ?, ?)",
                [
                    (vid, f.path, f.digest, f.size, _j(dict(f.meta)) if f.meta else None)
                    for f in manifest
                ],
            )
            self._check_quota(c, e.user)
        if e.run_id is not None:
            self._edge(c, run_node(e.run_id), version_node(e.name, number), "produced", e.seq)
        for alias in e.aliases:
            self._set_alias(c, e.name, number, alias)
        return number

    def _count_bytes(self, c: sqlite3.Connection, size: int) -> None:
        """Keep the sum of every version's size within SQLite's integers, so no SUM() overflows."""
        row = c.execute("SELECT value FROM meta WHERE key='total_size'").fetchone()
        total = int(row[0]) + size
        if total > INT64_MAX:
            raise EntryError(
                f"version_logged: the store's sizes would add up to {total} bytes, more than {INT64_MAX}"
            )
        c.execute("UPDATE meta SET value=? WHERE key='total_size'", (str(total),))

    def _check_quota(self, c: sqlite3.Connection, user: str) -> None:
        quota = self.quota(user, c)
        if quota is None:
            return
        used = self.usage(user, c)
        if used > quota:
            raise QuotaExceededError(
                f"quota exceeded for user {user!r}: this would use {used} bytes of {quota}; "
                "delete old versions (then `artifacts gc`) or ask an admin to raise the quota"
            )

    def _apply_artifact_used(self, c: sqlite3.Connection, e: ArtifactUsed) -> int:
        self._attachable(c, e, e.run_id)
        row = self._version_row(c, e.name, e.version)
        self._edge(
            c, version_node(row["name"], row["version"]), run_node(e.run_id), "consumed", e.seq
        )
        return e.version

    def _apply_alias_set(self, c: sqlite3.Connection, e: AliasSet) -> int:
        row = self._version_row(c, e.name, e.version)
        self._set_alias(c, row["name"], row["version"], e.alias)
        return e.version

    def _apply_alias_removed(self, c: sqlite3.Connection, e: AliasRemoved) -> None:
        cur = c.execute("DELETE FROM aliases WHERE name=? AND alias=?", (e.name, e.alias))
        if cur.rowcount == 0:
            raise NotFoundError(f"alias {e.name}:{e.alias} not found")

    def _apply_version_deleted(self, c: sqlite3.Connection, e: VersionDeleted) -> int:
        row = self._version_row(c, e.name, e.version)
        if row["user"] != e.user and not self.is_admin(e.user, c):
            raise PermissionDeniedError(
                f"{row['node']} was created by {row['user']}; only they or a store admin may delete it"
            )
        c.execute("UPDATE versions SET deleted=? WHERE id=?", (e.seq, row["id"]))
        c.execute("DELETE FROM aliases WHERE name=? AND version=?", (row["name"], row["version"]))
        return e.version

    def _apply_quota_set(self, c: sqlite3.Connection, e: QuotaSet) -> None:
        self._require_admin(c, e.user, "set quotas")
        if e.bytes is None:
            c.execute("DELETE FROM quotas WHERE user=?", (e.target,))
        else:
            c.execute("INSERT OR REPLACE INTO quotas VALUES (?, ?)", (e.target, e.bytes))

    def _apply_admin_added(self, c: sqlite3.Connection, e: AdminAdded) -> None:
        self._require_admin(c, e.user, "add admins")
        c.execute("INSERT OR IGNORE INTO admins VALUES (?)", (e.target,))

    def _require_admin(self, c: sqlite3.Connection, user: str, what: str) -> None:
        if not self.is_admin(user, c):
            raise PermissionDeniedError(f"only store admins may {what}; {user!r} is not an admin")

    def _set_alias(self, c: sqlite3.Connection, name: str, version: int, alias: str) -> None:
        c.execute("INSERT OR REPLACE INTO aliases VALUES (?, ?, ?)", (name, alias, version))

    def _edge(self, c: sqlite3.Connection, src: str, dst: str, kind: str, seq: int) -> None:
        c.execute("INSERT OR IGNORE INTO edges VALUES (?, ?, ?, ?)", (src, dst, kind, seq))
