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
    "StoreWarning",
]


class InvalidStateError(ArtifactsError, RuntimeError):
    """The object cannot do this now, e.g. logging to a run that has already finished."""


class InvalidValueError(ArtifactsError, ValueError):
    """A value cannot be stored: metrics or metadata that are not JSON, too large, or of the wrong type."""


class StoreWarning(UserWarning):
    """Something in the store was unusable and skipped (a corrupt pack or snapshot); answers stay right
    because the reader fell back to the log itself. The message names the object."""
