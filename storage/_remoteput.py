"""Puts on a root without OS paths (S3, memory): the digest must be known before the upload names
the object, and the create is exclusive (S3: If-None-Match), so of concurrent puts of one content
exactly one reports a write and none overwrites the blob. The bytes sent are the bytes hashed: small
files are read once into memory, large ones go as a multipart upload that completes only if it
hashes alike (see `storage.upload`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .backend import backend_errors
from .errors import ConflictError
from .hashing import hash_bytes
from .progress import Tally, as_callback
from .upload import SINGLE_PUT_MAX, read_whole, upload_parts
from .values import PutResult

if TYPE_CHECKING:
    from fsspec.callbacks import Callback

    from .blobs import BlobStore

__all__ = ["put_remote", "put_remote_bytes", "put_remote_file", "upload_spool"]

#: Content up to this size is PUT straight away with If-None-Match (one request; HTTP 412 if the
#: blob exists) instead of a HEAD first and then a PUT: below about a round trip's worth of bytes,
#: re-sending them costs less than asking first.
PUT_FIRST_MAX = 1024 * 1024


def put_remote_file(
    blobs: BlobStore, path: str, size: int, known: str | None, cb: Callback
) -> PutResult:
    """Store a local file on a non-local root; the bytes sent are the bytes hashed (see
    `storage.upload`). Small files are read once into memory; large ones are hashed first (for the
    dedup lookup) and then sent as a multipart upload that completes only if it hashes alike."""
    if size <= SINGLE_PUT_MAX or not blobs.root.multipart:
        data = read_whole(path, size)
        digest = hash_bytes(data)
        rel = blobs.relpath(digest)

        def send(progress: Callback) -> None:
            blobs.root.create_exclusive(rel, data)
            progress.relative_update(len(data))

        return put_remote(blobs, digest, len(data), send, cb, absent=known is not None)
    digest, size = (known, size) if known is not None else blobs.hash_local_file(path)

    def upload(progress: Callback) -> None:
        with backend_errors(f"upload {path}", blobs.root.url):
            upload_parts(
                blobs.root.fs, blobs.root.full(blobs.relpath(digest)), path, digest, progress
            )

    return put_remote(blobs, digest, size, upload, cb)


def upload_spool(
    blobs: BlobStore, path: str, digest: str, size: int, cb: Callback, *, absent: bool = False
) -> PutResult:
    """Upload a private local file (a spool nobody else writes) whose digest is known."""

    def upload(progress: Callback) -> None:
        blobs.root.upload_file(path, blobs.relpath(digest), progress)

    return put_remote(blobs, digest, size, upload, cb, absent=absent)


def put_remote(
    blobs: BlobStore,
    digest: str,
    size: int,
    upload: Callable[[Callback], None],
    cb: Callback,
    *,
    absent: bool = False,
) -> PutResult:
    """Store a blob on a non-local root with an exclusive create (S3: If-None-Match), so that of
    concurrent puts of one content exactly one reports a write and none overwrites the blob.

    Large content is looked up first (a HEAD) to avoid sending bytes that are already stored; small
    content on S3 is sent straight away and a 412 means it was already there.
    """
    put_first = absent or (blobs.root.remote and size <= PUT_FIRST_MAX)
    if not put_first and blobs._freshen(digest, size):
        cb.relative_update(size)
        return PutResult(digest, size, False)
    tally = Tally(cb)
    try:
        upload(tally)
        return PutResult(digest, size, True)
    except ConflictError:
        pass
    # Stored already (by a concurrent writer, or by our own attempt whose reply was lost): freshen it
    # for gc like any dedup hit, checking its size (a short object is removed, never taken as ours).
    # If gc swept it between our PUT and now, store it after all.
    if not blobs._freshen(digest, size):
        try:
            upload(Tally(as_callback(None)))
            cb.relative_update(size - tally.n)
            return PutResult(digest, size, True)
        except ConflictError:
            pass
    cb.relative_update(size - tally.n)
    return PutResult(digest, size, False)


def put_remote_bytes(
    blobs: BlobStore, data: bytes | bytearray | memoryview, digest: str | None
) -> PutResult:
    """An in-memory buffer: a mutable one is copied once to be sent, and the copy is what is hashed
    (``digest`` is trusted for immutable ``bytes`` only)."""
    if isinstance(data, bytes) and digest is not None:
        payload = data
    else:
        payload = data if isinstance(data, bytes) else bytes(memoryview(data).cast("B"))
        digest = hash_bytes(payload)
    rel = blobs.relpath(digest)

    def upload(_: Callback) -> None:
        blobs.root.create_exclusive(rel, payload)

    return put_remote(blobs, digest, len(payload), upload, as_callback(None))
