"""The catalog's errors: the storage family re-exported, plus the few that only the catalog raises."""

from __future__ import annotations

from storage.errors import (
    ArtifactsError,
    BackendError,
    ConflictError,
    IntegrityError,
    InvalidDigestError,
    InvalidNameError,
    InvalidPathError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
)

__all__ = [
    "ArtifactsError",
    "BackendError",
    "ConflictError",
    "IntegrityError",
    "InvalidDigestError",
    "InvalidNameError",
    "InvalidPathError",
    "InvalidStateError",
    "InvalidValueError",
    "NotFoundError",
    "PermissionDeniedError",
    "QuotaExceededError",
]


class InvalidStateError(ArtifactsError, RuntimeError):
    """The object cannot do this now, e.g. logging to a run that has already finished."""


class InvalidValueError(ArtifactsError, ValueError):
    """A value cannot be stored: metrics or metadata that are not JSON, too large, or of the wrong type."""
