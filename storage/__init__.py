"""Content-addressed blob storage over fsspec: local disk, S3 (s3fs) and memory.

This package knows nothing of artifacts, runs or versions; `artifacts` builds the catalog on top of it.
It owns every backend decision; above it only capability flags are read. Which module holds what:

- ``backend``: the `Root` interface, `open_root`, backend errors; ``_local``, ``_memory``, ``_fsspec``:
  one `Root` class per backend (``LocalRoot``, ``MemoryRoot``, ``RemoteRoot``/``S3Root``);
- ``blobs``: `BlobStore` (names, puts, reads, local paths, listing); ``_localput`` and ``_remoteput``:
  how a put lands with and without OS paths; ``_download``: verified downloads; ``batch``: many files;
- ``sweep``, ``trash``, ``quarantine``: gc's sweep, remote trash, damaged blobs set aside;
- ``hashing``, ``streams``, ``upload``, ``statcache``, ``values``: digests, copy loops, multipart
  uploads, the stat cache, the values answered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._lazy import lazy_getattr
from .errors import (
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

if TYPE_CHECKING:
    from .backend import Root, open_root
    from .blobs import BlobStore
    from .hashing import check_digest, hash_bytes, hash_file
    from .statcache import StatCache, default_cache_dir
    from .values import BlobInfo, LocalBlob, PutResult

#: imported on first use (fsspec and blake3 are not needed to name an error)
_LAZY = {
    "Root": ".backend",
    "open_root": ".backend",
    "BlobInfo": ".values",
    "BlobStore": ".blobs",
    "LocalBlob": ".values",
    "PutResult": ".values",
    "check_digest": ".hashing",
    "hash_bytes": ".hashing",
    "hash_file": ".hashing",
    "StatCache": ".statcache",
    "default_cache_dir": ".statcache",
}
__getattr__ = lazy_getattr(__name__, _LAZY)

__all__ = [
    "ArtifactsError",
    "BackendError",
    "BlobInfo",
    "BlobStore",
    "ConflictError",
    "DiskFullError",
    "IntegrityError",
    "InvalidDigestError",
    "InvalidNameError",
    "InvalidPathError",
    "LocalBlob",
    "NotFoundError",
    "PutResult",
    "Root",
    "StatCache",
    "check_digest",
    "default_cache_dir",
    "hash_bytes",
    "hash_file",
    "open_blob_store",
    "open_root",
]


def open_blob_store(
    url: str,
    storage_options: dict[str, Any] | None = None,
    *,
    stat_cache: StatCache | None = None,
    check: bool = True,
) -> BlobStore:
    """Open the blob store rooted at ``url``; with ``check`` fail fast if the root is unusable."""
    from .backend import open_root
    from .blobs import BlobStore

    root = open_root(url, storage_options)
    if check:
        root.check_reachable()
    return BlobStore(root, stat_cache=stat_cache)
