"""Puts on a root with OS paths (local disk): one pass into a temp file under ``tmp/``, then the blob
is published under its digest by a hard link (atomic; an existing blob wins unless it has the wrong
size). The kernel copies files (``copy_file_range``) while the copy is hashed as it is read back, so
the digest names exactly the bytes stored. A dedup hit refreshes the blob's mtime for gc.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO

from . import _unnamed
from ._tmpname import unique
from .errors import disk_full_errors
from .hashing import CHUNK_SIZE, hash_bytes
from .streams import RangeReader, copy_file_hashing, copy_hashing, write_all
from .values import PutResult
from .written import REMEMBER_MIN, remember

if TYPE_CHECKING:
    from fsspec.callbacks import Callback

    from .blobs import BlobStore

__all__ = [
    "UNNAMED_MAX",
    "freshen_local",
    "local_tmp",
    "publish_tmp",
    "put_local_bytes",
    "put_local_range",
    "put_local_small",
    "put_local_stream",
    "put_local_via_tmp",
]


#: In-memory buffers under this size are written unnamed (`put_local_small`); larger ones through a
#: named temp file, whose extra link and unlink cost nothing beside their write.
UNNAMED_MAX = 1 << 20


def put_local_stream(blobs: BlobStore, src: str | BinaryIO, cb: Callback) -> PutResult:
    def write(out: BinaryIO) -> tuple[str, int]:
        if not isinstance(src, str):
            return copy_hashing(src, out, cb)
        with open(src, "rb", buffering=0) as f:
            got = copy_file_hashing(f.fileno(), out.fileno(), cb)
            return got if got is not None else copy_hashing(f, out, cb)

    return put_local_via_tmp(blobs, write)


def put_local_range(
    blobs: BlobStore, f: BinaryIO, offset: int, length: int, cb: Callback
) -> PutResult:
    def write(out: BinaryIO) -> tuple[str, int]:
        got = copy_file_hashing(f.fileno(), out.fileno(), cb, src_offset=offset, length=length)
        if got is None:
            reader = io.BufferedReader(RangeReader(f.fileno(), offset, length), CHUNK_SIZE)
            got = copy_hashing(reader, out, cb)
        if got[1] != length:
            raise OSError(errno.EIO, f"read {got[1]} of {length} bytes at {offset}")
        return got

    return put_local_via_tmp(blobs, write)


def put_local_via_tmp(
    blobs: BlobStore,
    write: Callable[[BinaryIO], tuple[str, int] | PutResult],
    what: str = "store a blob",
) -> PutResult:
    """Write a new blob into a temp file with ``write`` (returns digest, size), then publish it.
    ``write`` may instead return the `PutResult` of a blob it found stored meanwhile: the temp file
    is dropped unpublished."""
    tmp = local_tmp(blobs)
    try:
        with disk_full_errors(what, blobs.root.url):
            with open(tmp, "w+b", buffering=0) as out:
                got = write(out)
                if blobs.fsync and not isinstance(got, PutResult):
                    os.fsync(out.fileno())
            if isinstance(got, PutResult):
                os.unlink(tmp)
                return got
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return publish_tmp(blobs, tmp, *got, what)


def publish_tmp(blobs: BlobStore, tmp: str, digest: str, size: int, what: str) -> PutResult:
    """Publish a written temp file under ``digest`` (`publish_local`); it is gone either way."""
    try:
        with disk_full_errors(what, blobs.root.url):
            written = publish_local(blobs, tmp, blobs.root.local(blobs.relpath(digest)), size)
        return PutResult(digest, size, written)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def publish_local(blobs: BlobStore, tmp: str, target: str, size: int) -> bool:
    """Make ``tmp`` visible as ``target`` atomically; if it already exists keep the existing one,
    unless that one has the wrong size (a damaged blob never satisfies dedup: ours replaces it).

    Every caller hashed exactly the bytes it wrote into ``tmp``, so a blob published here is
    remembered as this process's own (`storage.written`): reading it back right away needs no hash."""
    written = _publish(blobs, tmp, target, size)
    if written and size >= REMEMBER_MIN:
        remember(target)
    return written


def _publish(blobs: BlobStore, tmp: str, target: str, size: int) -> bool:
    ensure_dir(blobs, os.path.dirname(target))
    try:
        os.link(tmp, target)
        written = True
    except FileExistsError:
        written = False
        state = freshen_local(target, size)
        if state is None:  # swept by gc just now: publish ours after all
            return _publish(blobs, tmp, target, size)
        if not state:
            os.replace(tmp, target)
            return True
    except OSError:  # filesystems without hard links: rename is atomic too
        if freshen_local(target, size):
            written = False
        else:
            os.replace(tmp, target)
            return True
    os.unlink(tmp)
    return written


def freshen_local(path: str, size: int | None = None) -> bool | None:
    """Refresh a local blob's mtime: True if it is there (with ``size``, if given), False if it has
    another size, None if it is missing."""
    try:
        if size is not None and os.stat(path).st_size != size:
            return False
        os.utime(path)
    except FileNotFoundError:
        return None
    except PermissionError:  # another user's blob on a shared disk
        return True if os.path.exists(path) else None
    return True


def local_tmp(blobs: BlobStore) -> str:
    d = blobs.root.local(blobs.tmp_dir)
    ensure_dir(blobs, d)
    return os.path.join(d, unique())


def ensure_dir(blobs: BlobStore, d: str) -> None:
    """``makedirs`` once per directory and process: a checkpoint puts many blobs, and the failing
    ``mkdir`` calls of ``exist_ok`` cost more than writing its small tensors."""
    if d not in blobs._dirs:
        os.makedirs(d, exist_ok=True)
        blobs._dirs.add(d)


def put_local_bytes(
    blobs: BlobStore, data: bytes | bytearray | memoryview, digest: str | None
) -> PutResult:
    """An in-memory buffer, hashed without copying (``digest``: the caller's, already checked).
    One under `UNNAMED_MAX` is written unnamed (`put_local_small`): a checkpoint's biases and small
    layers then cost two file operations each, not four (create, link, unlink, and the temp name).
    A stored blob is looked for first in every case: a frozen layer logged each epoch is a hit."""
    view = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    digest = digest if digest is not None else hash_bytes(view)
    size = len(view)
    if blobs._freshen(digest, size):
        return PutResult(digest, size, False)
    if size < UNNAMED_MAX:
        return put_local_small(blobs, view, digest, looked=True)
    return _put_named(blobs, view, digest)


def _put_named(blobs: BlobStore, view: bytes | memoryview, digest: str) -> PutResult:
    size = len(view)

    def write(f: BinaryIO) -> tuple[str, int]:
        write_all(f, view)
        return digest, size

    return put_local_via_tmp(blobs, write, f"store blob {digest}")


def put_local_small(
    blobs: BlobStore, data: bytes | memoryview, digest: str | None = None, *, looked: bool = False
) -> PutResult:
    """A small whole content (a file of `storage.batch`, a small tensor): written unnamed and
    linked under its digest where the OS allows it (`storage._unnamed`), else through a named temp
    file. ``digest``: the caller's, already checked; ``looked``: the caller found no stored blob."""
    tmp_dir = blobs.root.local(blobs.tmp_dir)
    ensure_dir(blobs, tmp_dir)
    digest = digest if digest is not None else hash_bytes(data)
    size = len(data)
    target = blobs.root.local(blobs.relpath(digest))
    d = os.path.dirname(target)
    if d not in blobs._dirs:
        _make_blob_dir(blobs, d)
    # a directory this process made held no blob before it: the link finds any stored since (and
    # freshens it), so only an older directory is worth a look before the write
    if not looked and d not in blobs._made and blobs._freshen(digest, size):
        return PutResult(digest, size, False)
    if not _unnamed.available(tmp_dir):
        return _put_named(blobs, data, digest)
    written = _unnamed.put_unnamed(blobs, data, digest, tmp_dir, target)
    if written and size >= REMEMBER_MIN:
        remember(target)
    return PutResult(digest, size, written)


def _make_blob_dir(blobs: BlobStore, d: str) -> None:
    """Create a blob directory (once per process), remembering whether it was this process that
    made it."""
    try:
        os.mkdir(d)
        blobs._made.add(d)
    except FileExistsError:
        pass
    except FileNotFoundError:  # blobs/ itself is new
        os.makedirs(os.path.dirname(d), exist_ok=True)
        return _make_blob_dir(blobs, d)
    blobs._dirs.add(d)
