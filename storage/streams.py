"""Streams under the blob store: the one-pass copy that hashes what it writes and a reader that
verifies what it reads (the progress callbacks they report to are `storage.progress`).
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, BinaryIO

from .errors import IntegrityError
from .hashing import CHUNK_SIZE, Hasher

if TYPE_CHECKING:
    from fsspec.callbacks import Callback

__all__ = [
    "RangeReader",
    "VerifyingReader",
    "copy_file_hashing",
    "copy_hashing",
    "write_all",
]

#: Buffers in flight in a large copy: one being hashed, the others being written.
_NBUF = 3


class VerifyingReader(io.RawIOBase):
    """A read-only stream that hashes what passes through and raises `IntegrityError` at EOF on mismatch.

    A seek back to the start restarts verification; any other seek turns it off (a partial read cannot
    be checked). Full sequential reads are always checked.
    """

    def __init__(self, raw: BinaryIO, digest: str, what: str) -> None:
        self._raw = raw
        self._digest = digest
        self._what = what
        self._hasher: Hasher | None = Hasher()
        self._checked = False
        self._raw_readinto = getattr(raw, "readinto", None)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._raw.seekable()

    def seek(self, offset: int, whence: int = 0) -> int:
        before = self._raw.tell()
        pos = self._raw.seek(offset, whence)
        if pos == 0:
            self._hasher, self._checked = Hasher(), False
        elif pos != before:
            self._hasher = None
        return pos

    def tell(self) -> int:
        return self._raw.tell()

    def _feed(self, data: bytes | memoryview) -> None:
        if self._hasher is None:
            return
        if len(data):
            self._hasher.update(data)
        elif not self._checked:
            self._checked = True
            actual = self._hasher.hexdigest()
            if actual != self._digest:
                raise IntegrityError(
                    f"blob {self._digest} is corrupt: its content hashes to {actual} ({self._what}); "
                    "verify the store"
                )

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        if self._raw_readinto is not None:
            n = self._raw_readinto(view) or 0
        else:
            data = self._raw.read(len(view))
            n = len(data)
            view[:n] = data
        self._feed(view[:n])
        return n

    def readall(self) -> bytes:
        """Read to EOF in one call (`RawIOBase.readall` would loop in 8 KiB steps)."""
        data = self._raw.read()
        self._feed(data)
        self._feed(b"")
        return data

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._raw.close()
        super().close()


def copy_hashing(src: BinaryIO, dst: BinaryIO, cb: Callback) -> tuple[str, int]:
    """Copy ``src`` to ``dst`` in fixed chunks, hashing the same bytes on the way (one pass).

    From the second chunk on, each chunk's write runs in a helper thread while the chunk is hashed
    (BLAKE3 and ``write`` both release the GIL), so a large copy costs about max(write, hash) rather than
    their sum. Hashed and written bytes are the same private buffer, so the digest always names exactly
    what was written, however the source changes meanwhile. Memory stays at ``_NBUF`` chunks.

    The hash runs on one thread: the write thread already keeps the second core busy, and a
    multithreaded BLAKE3 (rayon, whose idle workers spin) fights it for the CPU. Measured here on a
    1 GiB page-cached file, 8 runs: single-threaded hash 0.26-0.33 s (0.46 CPU-s) every time;
    ``max_threads=AUTO`` 0.29-2.7 s, median 1.4 s (1.6 CPU-s); ``cp`` 0.33 s.
    """
    h = Hasher(threaded=False)
    bufs: list[bytearray] = []  # allocated on demand: small inputs need none (see below)
    pending: list[Future[None] | None] = [None] * _NBUF
    pool: ThreadPoolExecutor | None = None
    readinto = getattr(src, "readinto", None)
    i = n = 0
    failed: list[BaseException] = []

    def write(chunk: bytes | memoryview) -> None:
        if failed:  # an earlier chunk failed: write nothing after the hole
            return
        try:
            write_all(dst, chunk)
        except BaseException as e:
            failed.append(e)
            raise

    def drain() -> BaseException | None:
        """Wait for every write still in flight; the first error, if any."""
        first = None
        for j, fut in enumerate(pending):
            if fut is not None:
                pending[j] = None
                try:
                    fut.result()
                except BaseException as e:  # noqa: BLE001 - the caller decides
                    first = first or e
        if pool is not None:
            pool.shutdown(wait=True)
        return first

    try:
        while True:
            k = i % _NBUF
            if failed:
                raise failed[0]
            if pending[k] is not None:
                pending[k].result()  # type: ignore[union-attr]  # that buffer's write is done (or raises here)
                pending[k] = None
            if i == 0 or readinto is None or n < CHUNK_SIZE:
                # until a full chunk came in, read into a bytes object of its own size: zero-filling
                # chunk-sized buffers would cost a small file more than copying it
                chunk: bytes | memoryview = src.read(CHUNK_SIZE) or b""
                n = len(chunk)
            else:
                if k >= len(bufs):
                    bufs.extend(bytearray(CHUNK_SIZE) for _ in range(k + 1 - len(bufs)))
                n = readinto(bufs[k]) or 0
                chunk = memoryview(bufs[k])[:n]
            if not n:
                break
            if i == 0:  # small inputs (one chunk) never start a thread
                write_all(dst, chunk)
            else:
                if pool is None:
                    pool = ThreadPoolExecutor(1, thread_name_prefix="blob-write")
                pending[k] = pool.submit(write, chunk)
            h.update(chunk)
            cb.relative_update(n)
            i += 1
    except BaseException:
        drain()  # never let the caller close or unlink ``dst`` while a write into it still runs
        raise
    error = drain()
    if error is not None:
        raise error
    return h.hexdigest(), h.size


#: copy_file_range errors that mean "not between these two files": fall back to reading and writing.
_NO_KERNEL_COPY = {
    errno.EXDEV,
    errno.ENOSYS,
    errno.EINVAL,
    errno.EOPNOTSUPP,
    errno.EBADF,
    errno.EPERM,
}


def copy_file_hashing(
    src_fd: int,
    dst_fd: int,
    cb: Callback,
    *,
    src_offset: int = 0,
    dst_offset: int = 0,
    length: int | None = None,
) -> tuple[str, int] | None:
    """Copy the regular file ``src_fd`` into ``dst_fd`` (open for reading and writing) inside the
    kernel (``copy_file_range``, what ``cp`` does), hashing the copy as read back from ``dst_fd``.

    ``length`` bytes (default: to the end of the source) go from ``src_offset`` to ``dst_offset``, so one
    tensor of a ``.safetensors`` file becomes one blob, or one blob one tensor of an exported file.
    Returns (digest, size), or None when the kernel cannot copy between these two files (another
    filesystem, a pipe, no support): nothing was written then, and the caller uses `copy_hashing`.

    The digest is of the bytes in ``dst_fd``, so it names exactly what was stored even if the source
    changes meanwhile. While chunk k is hashed a helper thread copies chunk k+1. Why not read and write
    from Python: measured here (1 GiB page-cached, 7 runs), writes from user memory took 0.27-2.6 s
    (median 1.24 s, the time in the kernel), this 0.34-0.37 s, ``cp`` 0.31-0.32 s.
    """
    if not hasattr(os, "copy_file_range"):
        return None

    def want(done: int) -> int:
        return CHUNK_SIZE if length is None else min(CHUNK_SIZE, length - done)

    def copy(done: int) -> int:
        w = want(done)
        return (
            os.copy_file_range(src_fd, dst_fd, w, src_offset + done, dst_offset + done) if w else 0
        )

    h = Hasher(threaded=False)  # the copy thread has the other core (see copy_hashing)
    try:
        n = copy(0)
    except OSError as e:
        if e.errno in _NO_KERNEL_COPY:
            return None
        raise
    buf = bytearray(min(n, CHUNK_SIZE) or 1)
    off = 0

    def hash_back(start: int, count: int) -> None:
        view = memoryview(buf)
        done = 0
        while done < count:
            got = os.preadv(
                dst_fd, [view[: min(len(buf), count - done)]], dst_offset + start + done
            )
            if not got:
                raise OSError(errno.EIO, "the copy came back shorter than written")
            h.update(view[:got])
            done += got
        cb.relative_update(count)

    if n < CHUNK_SIZE:  # small (or a short copy): no thread
        while n:
            if n > len(buf):
                buf = bytearray(n)
            hash_back(off, n)
            off += n
            n = copy(off)
    else:
        with ThreadPoolExecutor(1, thread_name_prefix="blob-copy") as pool:
            while n:
                ahead = pool.submit(copy, off + n)
                try:
                    hash_back(off, n)
                finally:
                    nxt = ahead.result()  # never leave a copy into dst running
                off += n
                n = nxt
    if length is not None and off != length:
        raise OSError(errno.EIO, f"the source ended after {off} of {length} bytes")
    return h.hexdigest(), off


class RangeReader(io.RawIOBase):
    """``length`` bytes of an open file from ``offset`` on, as a stream of their own (positional reads,
    so several readers may share one descriptor). A source shorter than promised is an error."""

    def __init__(self, fd: int, offset: int, length: int) -> None:
        self._fd, self._offset, self._length, self._pos = fd, offset, length, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        want = min(len(view), self._length - self._pos)
        if want <= 0:
            return 0
        n = os.preadv(self._fd, [view[:want]], self._offset + self._pos)
        if n == 0:
            raise OSError(errno.EIO, f"the source ended {self._length - self._pos} bytes early")
        self._pos += n
        return n


def write_all(dst: BinaryIO, data: bytes | bytearray | memoryview) -> None:
    """Write every byte: a raw (unbuffered) file may write fewer than asked (Linux caps one write
    at about 2 GiB), which would silently truncate a blob."""
    view = memoryview(data).cast("B")
    total = view.nbytes
    done = 0
    while done < total:
        n = dst.write(view[done:])
        if n is None:  # a raw file in non-blocking mode (buffered files return the full length)
            raise BlockingIOError("non-blocking destination would block")
        done += n
