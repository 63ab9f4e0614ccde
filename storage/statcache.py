"""Remember which digest a local file had, so re-adding an unchanged large file costs a stat, not a hash.

The key is (path, size, mtime_ns, inode, ctime_ns): any write, truncate, replace or touch changes at
least one of them. A file modified within the same clock tick as its previous hash (possible on coarse
filesystems) would fool any stat cache, so entries whose mtime is within 2 s of the hashing time are not
trusted (the racy-git rule).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = ["StatCache", "StatKey", "default_cache_dir", "init_lock", "stat_key"]

#: What identifies one state of a file: (size, mtime_ns, inode, ctime_ns).
StatKey = tuple[int, int, int, int]

_RACY_NS = 2_000_000_000
_INIT_LOCK = threading.RLock()


@contextlib.contextmanager
def init_lock(db_path: str | os.PathLike[str]) -> Iterator[None]:
    """Serialize creating/opening a shared SQLite file (``<db_path>.lock``) across threads and processes.

    Several processes of one user opening a fresh database at once race on switching it to WAL and on
    creating its tables; SQLite answers some of those races with an immediate "database is locked"
    instead of waiting. One initializer at a time avoids them. (Advisory ``flock``; without ``fcntl``,
    threads are still serialized.)
    """
    with _INIT_LOCK:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            yield
            return
        fd = os.open(f"{os.fspath(db_path)}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def default_cache_dir() -> Path:
    """Per-user cache directory: ``$ARTIFACTS_CACHE_DIR``, else ``$XDG_CACHE_HOME/artifacts``."""
    env = os.environ.get("ARTIFACTS_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "artifacts"


class StatCache:
    """A small SQLite table shared by every process of one user; safe for concurrent use."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_cache_dir() / "statcache.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            with init_lock(self.path):
                db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute(
                    "CREATE TABLE IF NOT EXISTS stat (path TEXT PRIMARY KEY, size INTEGER,"
                    " mtime_ns INTEGER, ino INTEGER, ctime_ns INTEGER, digest TEXT)"
                )
            self._local.db = db
        return db

    @staticmethod
    def _key(st: os.stat_result) -> StatKey:
        return stat_key(st)

    @staticmethod
    def _storable(path: str) -> bool:
        """SQLite text must be UTF-8: a non-UTF-8 file name (surrogate-escaped) is simply not cached."""
        try:
            path.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True

    def lookup(self, path: str, st: os.stat_result) -> str | None:
        if not self._storable(path):
            return None
        try:
            row = (
                self._db()
                .execute(
                    "SELECT size, mtime_ns, ino, ctime_ns, digest FROM stat WHERE path = ?", (path,)
                )
                .fetchone()
            )
        except sqlite3.Error:  # a cache: when it cannot answer, the file is simply hashed
            return None
        if row is None or tuple(row[:4]) != self._key(st):
            return None
        return row[4]

    def store(self, path: str, st: os.stat_result, digest: str) -> None:
        if time.time_ns() - st.st_mtime_ns < _RACY_NS or not self._storable(path):
            return  # too fresh to trust: a write in the same tick would go unnoticed
        with contextlib.suppress(sqlite3.Error):  # best effort, like any cache
            self._db().execute(
                "INSERT OR REPLACE INTO stat VALUES (?, ?, ?, ?, ?, ?)",
                (path, *self._key(st), digest),
            )

    def lookup_many(self, items: Iterable[tuple[str, StatKey]]) -> dict[str, str]:
        """Digests of every unchanged file among ``items`` (path, key), in one query.

        The paths travel as one JSON array parameter (``json_each``), so 200k files are one statement
        with no limit on bound variables; the match on the key is done here.
        """
        want = dict(items)
        if not self._storable("\0".join(want)):  # one encode for all; else drop the few that fail
            want = {p: k for p, k in want.items() if self._storable(p)}
        if not want:
            return {}
        cols = "SELECT s.path, s.size, s.mtime_ns, s.ino, s.ctime_ns, s.digest FROM stat s"
        args: tuple[str, ...]
        top = _common_dir(list(want)) if len(want) > 1 else ""
        try:
            if len(top) > 1:  # one directory's files: a range scan of the primary key is cheapest
                query, args = f"{cols} WHERE s.path > ? AND s.path < ?", (top, top[:-1] + "0")
            else:
                query, args = (
                    f"{cols} JOIN json_each(?) j ON s.path = j.value",
                    (json.dumps(list(want)),),
                )
            rows = self._db().execute(query, args).fetchall()
        except (sqlite3.Error, ValueError):  # no JSON1, mixed paths or a broken cache: hash all
            return {}
        return {r[0]: r[5] for r in rows if want.get(r[0]) == r[1:5]}  # a row is a tuple

    def store_many(self, items: Iterable[tuple[str, StatKey, str]]) -> None:
        """Remember many (path, key, digest) in one transaction (racy-fresh files are skipped)."""
        now = time.time_ns()
        rows = [(p, *k, d) for p, k, d in items if now - k[1] >= _RACY_NS and self._storable(p)]
        if not rows:
            return
        with contextlib.suppress(sqlite3.Error):
            db = self._db()
            db.execute("BEGIN")
            try:
                db.executemany("INSERT OR REPLACE INTO stat VALUES (?, ?, ?, ?, ?, ?)", rows)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise


def _common_dir(paths: list[str]) -> str:
    """The longest prefix ending in '/' that every path shares ('' if none). ``commonprefix`` compares
    only the least and the greatest path (every string between them shares their prefix), where
    ``os.path.commonpath`` split every path: 0.1 s for 20k files."""
    prefix = os.path.commonprefix(paths)
    return prefix[: prefix.rfind("/") + 1]


def stat_key(st: os.stat_result) -> StatKey:
    """The stat cache's key of a file state."""
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
