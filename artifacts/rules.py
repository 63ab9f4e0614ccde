"""The catalog's rules: how each log entry changes the index, and when it is refused.

Every rule (gapless version numbers, alias moves, quotas, admin rights, run states) lives here, in one
`_apply_<op>` method per operation. The same code validates a writer's change before it commits (inside
a rolled-back transaction) and replays every entry for every reader, so all clients decide alike; an
entry that breaks a rule raises, and the index records it as rejected.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from .errors import (
    IntegrityError,
    InvalidStateError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
)
from .manifest import Manifest
from .names import check_alias, check_name
from .runkeys import record_keys

__all__ = ["Rules", "run_node", "version_node"]


def _j(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def version_node(name: str, version: int) -> str:
    return f"{name}:v{version}"


def run_node(run_id: str) -> str:
    return f"run/{run_id}"


class Rules:
    """Mixin of `Index`: the state transitions. Queries it relies on (``_latest``, ``_version_row``,
    ``quota``, ``usage``, ``is_admin``) are the index's own."""

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

    def _apply_entry(self, c: sqlite3.Connection, seq: int, e: dict[str, Any]) -> None:
        handler = getattr(self, f"_apply_{e['op']}", None)
        if handler is None:
            raise ValueError(f"unknown operation {e['op']!r}")
        user = e["user"]
        if not isinstance(user, str) or not user:
            raise ValueError("entry has no user")
        handler(c, seq, e, user)

    # one method per operation; each raises the rule an entry breaks
    def _apply_run_started(self, c: sqlite3.Connection, seq: int, e: dict, user: str) -> None:
        r = e["run"]
        check_name(r["project"], "project name")
        tags = r.get("tags")
        if tags is not None and (
            not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags)
        ):
            raise ValueError("run tags must be a list of non-empty strings")
        if c.execute("SELECT 1 FROM runs WHERE id=?", (r["id"],)).fetchone():
            raise InvalidStateError(f"run {r['id']} already exists")
        c.execute(
            "INSERT INTO runs (id, project, name, group_, job_type, user, host, status, config,"
            " summary, history, command, git, env, started_at, finished_at, seq, tags)"
            " VALUES (?,?,?,?,?,?,?,'running',?,'{}',NULL,?,?,?,?,NULL,?,?)",
            (
                r["id"],
                r["project"],
                r.get("name"),
                r.get("group"),
                r.get("job_type"),
                user,
                r.get("host"),
                _j(r.get("config") or {}),
                _j(r.get("command")),
                r.get("git"),
                _j(r.get("env") or {}),
                e["ts"],
                seq,
                _j(tags) if tags else None,
            ),
        )
        record_keys(c, "config", r.get("config") or {})

    def _running(self, c: sqlite3.Connection, run_id: str, user: str) -> sqlite3.Row:
        row = c.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"run {run_id} not found")
        if row["status"] != "running":
            raise InvalidStateError(f"run {run_id} is {row['status']}; start a new run to log more")
        if row["user"] != user:
            raise PermissionDeniedError(f"run {run_id} belongs to {row['user']}, not {user}")
        return row

    def _apply_run_finished(self, c: sqlite3.Connection, seq: int, e: dict, user: str) -> None:
        self._running(c, e["run_id"], user)
        if e["status"] not in ("finished", "failed", "crashed"):
            raise ValueError(f"unknown run status {e['status']!r}")
        c.execute(
            "UPDATE runs SET status=?, summary=?, history=?, finished_at=? WHERE id=?",
            (e["status"], _j(e.get("summary") or {}), e.get("history"), e["ts"], e["run_id"]),
        )
        record_keys(c, "summary", e.get("summary") or {})

    def _apply_version_logged(self, c: sqlite3.Connection, seq: int, e: dict, user: str) -> None:
        name, typ = check_name(e["name"]), check_name(e["type"], "artifact type")
        manifest = Manifest.from_json(e["manifest"], f"manifest of {name}")
        if manifest.digest != e["digest"]:
            raise IntegrityError(f"manifest of {name} does not hash to the digest it claims")
        aliases = [check_alias(a) for a in e.get("aliases") or []]
        run_id = e.get("run_id")
        if run_id is not None:
            self._running(c, run_id, user)
        art = c.execute("SELECT type, next_version FROM artifacts WHERE name=?", (name,)).fetchone()
        if art is not None and art["type"] != typ:
            raise InvalidStateError(
                f"artifact {name!r} has type {art['type']!r}, not {typ!r}; use another name"
            )
        latest = self._latest(c, name)
        if latest is not None and latest["digest"] == e["digest"]:
            vid, number = latest["id"], latest["version"]  # same content: no new version
        else:
            number = art["next_version"] if art is not None else 0
            c.execute(
                "INSERT INTO artifacts VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                "next_version=excluded.next_version",
                (name, typ, number + 1),
            )
            vid = c.execute(
                "INSERT INTO versions (name, version, node, type, digest, size, metadata, description,"
                " user, created_at, run_id, deleted, seq) VALUES (?,?,?,?,?,?,?,?,?,?,?,0,?)",
                (
                    name,
                    number,
                    version_node(name, number),
                    typ,
                    e["digest"],
                    manifest.size,
                    _j(e.get("metadata") or {}),
                    e.get("description") or "",
                    user,
                    e["ts"],
                    run_id,
                    seq,
                ),
            ).lastrowid
            c.executemany(
                "INSERT INTO files VALUES (?, ?, ?, ?, ?)",
                [
                    (vid, f.path, f.digest, f.size, _j(dict(f.meta)) if f.meta else None)
                    for f in manifest
                ],
            )
            self._check_quota(c, user)
        if run_id is not None:
            self._edge(c, run_node(run_id), version_node(name, number), "produced", seq)
        for alias in aliases:
            self._set_alias(c, name, number, alias)

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

    def _apply_artifact_used(self, c: sqlite3.Connection, seq: int, e: dict, user: str) -> None:
        self._running(c, e["run_id"], user)
        row = self._version_row(c, e["name"], e["version"])
        self._edge(
            c, version_node(row["name"], row["version"]), run_node(e["run_id"]), "consumed", seq
        )

    def _apply_alias_set(self, c: sqlite3.Connection, seq: int, e: dict, user: str) -> None:
        alias = check_alias(e["alias"])
        row = self._version_row(c, e["name"], e["version"])
        self._set_alias(c, row["name"], row["version"], alias)

    def _apply_alias_removed(self, c: sqlite3.Connection, seq: int, e: dict, user: str) -> None:
        cur = c.execute("DELETE FROM aliases WHERE name=? AND alias=?", (e["name"], e["alias"]))
        if cur.rowcount == 0:
            raise NotFoundError(f"alias {e['name']}:{e['alias']} not found")

    def _apply_version_deleted(self, c: sqlite3.Connection, seq: int, e: dict, user: str) -> None:
        row = self._version_row(c, e["name"], e["version"])
        if row["user"] != user and not self.is_admin(user, c):
            raise PermissionDeniedError(
                f"{row['node']} was created by {row['user']}; only they or a store admin may delete it"
            )
        c.execute("UPDATE versions SET deleted=? WHERE id=?", (seq, row["id"]))
        c.execute("DELETE FROM aliases WHERE name=? AND version=?", (row["name"], row["version"]))

    def _apply_quota_set(self, c: sqlite3.Connection, seq: int, e: dict, user: str) -> None:
        self._require_admin(c, user, "set quotas")
        target, nbytes = e["target"], e["bytes"]
        if nbytes is None:
            c.execute("DELETE FROM quotas WHERE user=?", (target,))
        elif isinstance(nbytes, int) and nbytes >= 0:
            c.execute("INSERT OR REPLACE INTO quotas VALUES (?, ?)", (target, nbytes))
        else:
            raise ValueError(f"invalid quota {nbytes!r}: expected a number of bytes or null")

    def _apply_admin_added(self, c: sqlite3.Connection, seq: int, e: dict, user: str) -> None:
        self._require_admin(c, user, "add admins")
        c.execute("INSERT OR IGNORE INTO admins VALUES (?)", (e["target"],))

    def _require_admin(self, c: sqlite3.Connection, user: str, what: str) -> None:
        if not self.is_admin(user, c):
            raise PermissionDeniedError(f"only store admins may {what}; {user!r} is not an admin")

    def _set_alias(self, c: sqlite3.Connection, name: str, version: int, alias: str) -> None:
        c.execute("INSERT OR REPLACE INTO aliases VALUES (?, ?, ?)", (name, alias, version))

    def _edge(self, c: sqlite3.Connection, src: str, dst: str, kind: str, seq: int) -> None:
        c.execute("INSERT OR IGNORE INTO edges VALUES (?, ?, ?, ?)", (src, dst, kind, seq))
