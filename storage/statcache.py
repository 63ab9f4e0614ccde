"""Remember which digest a local file had, so re-adding an unchanged large file costs a stat, not a hash.

The key is (path, size, mtime_ns, inode, ctime_ns): any write, truncate, replace or touch changes at
least one of them. A file modified within the same clock tick as its previous hash (possible on coarse
filesystems) would fool any stat cache, so entries whose mtime is within 2 s of the hashing time are not
trusted (the racy-git rule).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["StatCache", "default_cache_dir", "init_lock"]

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
    def _key(st: os.stat_result) -> tuple[int, int, int, int]:
        return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)

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
