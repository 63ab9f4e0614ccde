"""The one exception family of the project.

`storage` never imports `artifacts`, so the root lives here and `artifacts` re-exports it. Each class also
inherits the built-in a caller would naturally catch (``LookupError``, ``ValueError``, ...), so code that
knows nothing about us still handles our errors sensibly.
"""

from __future__ import annotations

__all__ = [
    "ArtifactsError",
    "BackendError",
    "ConflictError",
    "IntegrityError",
    "InvalidDigestError",
    "InvalidNameError",
    "InvalidPathError",
    "NotFoundError",
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
