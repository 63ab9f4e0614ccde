"""The catalog's errors: the storage family re-exported, plus the few that only the catalog raises."""

from __future__ import annotations

from storage.errors import (
    ArtifactsError,
    BackendError,
    ConflictError,
    DiskFullError,
    IntegrityError,
    InvalidDigestError,
    InvalidNameError,
    InvalidPathError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
)

__all__ = [
    "AmbiguousError",
    "ArtifactsError",
    "BackendError",
    "ConflictError",
    "DiskFullError",
    "IntegrityError",
    "InvalidDigestError",
    "InvalidNameError",
    "InvalidPathError",
    "InvalidStateError",
    "InvalidValueError",
    "NotFoundError",
    "PermissionDeniedError",
    "QueryError",
    "QuotaExceededError",
    "StoreNotFoundError",
    "StoreWarning",
]


class StoreNotFoundError(NotFoundError):
    """No store at the URL (no ``store.json``), where opening was asked not to create one."""


class InvalidStateError(ArtifactsError, RuntimeError):
    """The object cannot do this now, e.g. logging to a run that has already finished."""


class InvalidValueError(ArtifactsError, ValueError):
    """A value cannot be stored: metrics or metadata that are not JSON, too large, or of the wrong type."""


class QueryError(ArtifactsError, ValueError):
    """A query (``where=``, ``--where``, an order key or a cursor) is malformed or mistyped.

    The message is one line with the column and a caret; ``text`` and ``pos`` say where, for a UI.
    """

    def __init__(self, message: str, *, text: str = "", pos: int = 0) -> None:
        super().__init__(message)
        self.text, self.pos = text, pos


class AmbiguousError(ArtifactsError, LookupError):
    """A short run id (a prefix, as git allows) matches more than one run; the message lists them."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class StoreWarning(UserWarning):
    """Something in the store was unusable and skipped (a corrupt pack or snapshot); answers stay right
    because the reader fell back to the log itself. The message names the object."""
