"""The one exception family of the project.

`storage` never imports `artifacts`, so the root lives here and `artifacts` re-exports it. Each class also
inherits the built-in a caller would naturally catch (``LookupError``, ``ValueError``, ...), so code that
knows nothing about us still handles our errors sensibly.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator

__all__ = [
    "DISK_FULL_ERRNOS",
    "ArtifactsError",
    "BackendError",
    "ConflictError",
    "DiskFullError",
    "IntegrityError",
    "InvalidDigestError",
    "InvalidNameError",
    "InvalidPathError",
    "NotFoundError",
    "disk_full_errors",
]


class ArtifactsError(Exception):
    """Root of every error this project raises on purpose; its message is one line meant for a user."""


class NotFoundError(ArtifactsError, LookupError):
    """A blob, artifact, version, alias, run or file does not exist (or was deleted)."""

    def __str__(self) -> str:  # LookupError would otherwise repr() a single argument with quotes
        return str(self.args[0]) if self.args else ""


class IntegrityError(ArtifactsError):
    """Stored bytes do not match their digest, or a log entry is malformed."""


class ConflictError(ArtifactsError, FileExistsError):
    """An exclusive create lost the race: the object already exists."""


class InvalidNameError(ArtifactsError, ValueError):
    """A name, alias or reference is not well formed."""


class InvalidDigestError(InvalidNameError):
    """A string that should be a 64-character lowercase BLAKE3 hex digest is not one."""


class InvalidPathError(ArtifactsError, ValueError):
    """A path inside an artifact is absolute, contains '..', or would escape its destination."""


class BackendError(ArtifactsError, OSError):
    """The storage backend could not be reached or refused the request (endpoint, bucket, credentials)."""


class DiskFullError(ArtifactsError, OSError):
    """A write failed for lack of space (no space left, a disk quota, a file size limit).

    Nothing half-written is visible (blobs and entries appear whole or not at all, the index changes
    in transactions), so the same call works again once there is space, with no repair.
    """


#: ENOSPC: no space left; EDQUOT: a disk quota; EFBIG: a file size limit (RLIMIT_FSIZE, a filesystem's).
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def disk_full_message(what: str, where: str, detail: str) -> str:
    return (
        f"disk full: cannot {what} at {where} ({detail}); free some space and retry "
        "(nothing half-written was kept)"
    )


@contextlib.contextmanager
def disk_full_errors(what: str, where: str) -> Iterator[None]:
    """An `OSError` for lack of space while doing ``what`` becomes a one-line `DiskFullError`."""
    try:
        yield
    except ArtifactsError:
        raise
    except OSError as e:
        if e.errno in DISK_FULL_ERRNOS:
            raise DiskFullError(disk_full_message(what, where, e.strerror or str(e))) from e
        raise
