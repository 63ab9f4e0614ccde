"""Damaged blobs are set aside so that they never satisfy dedup again.

A blob whose bytes do not hash to its name (bit rot, a hand edit, a poisoned upload by an old client) would
otherwise be found by every later put of the honest content, which would then dedup onto it and record
another unrestorable version. When a full verify finds one, it is moved to ``corrupt/<digest>`` (kept for
inspection, never read as the blob): the next put of that content stores it again, which repairs every
version that refers to it. Until then a read names it as corrupt, not as missing.
"""

from __future__ import annotations

from .backend import Root
from .errors import ArtifactsError, IntegrityError, NotFoundError

__all__ = [
    "CORRUPT",
    "corrupt_message",
    "is_set_aside",
    "missing_error",
    "set_aside",
    "set_aside_among",
]

CORRUPT = "corrupt"


def _rel(digest: str) -> str:
    return f"{CORRUPT}/{digest}"


def corrupt_message(digest: str) -> str:
    return (
        f"set aside as {CORRUPT}/{digest}; store the original content again to repair every "
        "version that uses it"
    )


def set_aside(root: Root, blob_rel: str, digest: str) -> None:
    """Move the damaged blob out of ``blobs/`` (local: one rename; elsewhere: copy, then delete)."""
    root.move(blob_rel, _rel(digest))


def is_set_aside(root: Root, digest: str) -> bool:
    return root.exists(_rel(digest))


def set_aside_among(root: Root, digests: set[str]) -> bool:
    """Whether any of ``digests`` is set aside: one listing of ``corrupt/`` (usually empty or absent),
    not one request per digest."""
    return not digests.isdisjoint(root.list_after(CORRUPT))


def missing_error(root: Root, digest: str) -> ArtifactsError:
    """What a read of a blob that is not under ``blobs/`` raises: corrupt if set aside, else missing."""
    if is_set_aside(root, digest):
        return IntegrityError(f"blob {digest} is corrupt: {corrupt_message(digest)}")
    return NotFoundError(f"blob {digest} not found in {root.url}")
