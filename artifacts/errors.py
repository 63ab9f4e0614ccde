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


class QuotaExceededError(ArtifactsError):
    """Committing would take a user past their storage quota; nothing was uploaded or committed."""


class PermissionDeniedError(ArtifactsError, PermissionError):
    """The acting user may not do this (for example set a quota without being a store admin)."""


# The family's public home is `artifacts`: tracebacks and reprs say ``artifacts.QuotaExceededError``,
# not where each class happens to be defined.
for _name in __all__:
    globals()[_name].__module__ = "artifacts"
