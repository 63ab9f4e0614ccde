"""The local index on a full disk: a one-line `DiskFullError`, and an index that heals by itself.

SQLite reports a full disk as ``SQLITE_FULL`` or, when the write itself fails (a file size limit, a
quota), as an I/O error on write; either used to escape as a traceback. A failed write leaves the
index as it was: a transaction is rolled back (even when its COMMIT is what failed, which left the
connection inside a transaction that every later write then refused), and the next sync applies the
entries it missed once there is space again.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from storage.errors import DISK_FULL_ERRNOS, DiskFullError, disk_full_message

__all__ = ["index_write_errors", "is_disk_full"]

_FULL_CODES = frozenset(
    {
        "SQLITE_FULL",
        "SQLITE_IOERR_WRITE",
        "SQLITE_IOERR_FSYNC",
        "SQLITE_IOERR_TRUNCATE",
        "SQLITE_IOERR_SHMSIZE",
        "SQLITE_IOERR_DIR_FSYNC",
    }
)


def is_disk_full(e: BaseException) -> bool:
    if isinstance(e, DiskFullError):
        return True
    if isinstance(e, sqlite3.Error):
        name = getattr(e, "sqlite_errorname", "") or ""
        return name in _FULL_CODES or "database or disk is full" in str(e)
    return isinstance(e, OSError) and e.errno in DISK_FULL_ERRNOS


@contextlib.contextmanager
def index_write_errors(path: Path, what: str = "update the local index") -> Iterator[None]:
    """A write to the index at ``path`` that fails for lack of space raises `DiskFullError`."""
    try:
        yield
    except DiskFullError:
        raise
    except (sqlite3.Error, OSError) as e:
        if not is_disk_full(e):
            raise
        detail = getattr(e, "sqlite_errorname", None) or getattr(e, "strerror", None) or str(e)
        raise DiskFullError(disk_full_message(what, str(path), str(detail))) from e
