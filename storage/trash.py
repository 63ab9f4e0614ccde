"""What gc takes from a remote root goes to ``trash/<digest>`` first, and is purged by a later pass.

On S3 a dedup hit only refreshes a blob's age when it is older than ``BlobStore.freshen_after`` (an
in-place copy per hit is too dear to do every time), so with a grace period shorter than that a gc could
delete a blob that a commit running at the same moment has just deduplicated onto. Instead of deleting,
gc moves a doomed blob here (a server-side copy, then the delete), and a blob is purged only by a gc pass
that has replayed the log after the blob has sat here for the grace period: by then every commit that
found the blob before it moved has landed (the grace period bounds a commit), and if one refers to it the
blob is put back. Until then a read that misses a blob under ``blobs/`` finds it here and restores it.
"""

from __future__ import annotations

import contextlib
from typing import Any

from .backend import Root
from .errors import ConflictError, NotFoundError

__all__ = ["TRASH", "list_trash", "move_to_trash", "purge", "restore"]

TRASH = "trash"


def _rel(digest: str) -> str:
    return f"{TRASH}/{digest}"


def move_to_trash(root: Root, blob_rel: str, digest: str) -> bool:
    """Copy the blob into the trash, then delete it from ``blobs/``; False if it was already gone."""
    try:
        root.copy(blob_rel, _rel(digest))
    except NotFoundError:
        return False
    root.delete(blob_rel)
    return True


def restore(root: Root, blob_rel: str, digest: str) -> bool:
    """Put a trashed blob back under ``blobs/`` (if it is not there again already); False if the trash
    does not hold it."""
    if not root.exists(_rel(digest)):
        return False
    if not root.exists(blob_rel):
        with contextlib.suppress(ConflictError):
            root.create_exclusive(blob_rel, root.read(_rel(digest)))
    root.delete(_rel(digest))
    return True


def purge(root: Root, digest: str) -> None:
    root.delete(_rel(digest))


def list_trash(root: Root) -> list[tuple[str, dict[str, Any]]]:
    """(digest, detail) of every trashed blob."""
    out = []
    for rel, info in sorted(root.find(TRASH).items()):
        name = rel.rsplit("/", 1)[-1]
        if len(name) == 64 and rel.startswith(f"{TRASH}/"):
            out.append((name, info))
    return out
