"""Many in-memory buffers (a checkpoint's tensors) stored on a root with OS paths, hashing overlapped
with writing.

The large buffers are hashed by a process-wide helper thread, in order (with BLAKE3's threads on more
than two cores), while the caller writes them, in order, into temp files (BLAKE3 and ``write`` both
release the GIL). The caller never waits for a digest: it writes ahead of the helper and publishes
each blob once its digest has come, and when every byte is written it hashes, from the last buffer
back, those the helper has not started (`_Hashing`). A buffer whose digest is known before its write
starts is checked for a stored blob first, as any put is; otherwise it is written while being hashed,
in `CHUNK_SIZE` pieces, and once its digest arrives a blob already stored stops the write (a frozen
layer costs at most the part written meanwhile). So a checkpoint costs about its hashing and its
writing shared out over two cores, not their sum, nor the longer of the two: hashing (3 GB/s a core
here) is the slower one, and the caller takes its share of it once it has nothing left to write.
Buffers under `INLINE_MAX` are hashed by the caller before their write: handing one over costs more
than hashing it.

Each blob is still published under its digest only after its whole content was written and hashed
(`publish_tmp`), so a crash or an error leaves at most temp files, and an error removes those. The
helper only ever reads the caller's buffers, and this call does not return (nor raise) before the
helper has let go of them.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, cast

import blake3

from ._localput import local_tmp, publish_tmp, put_local_bytes
from .errors import disk_full_errors
from .hashing import CHUNK_SIZE, hash_bytes, threaded_blake3
from .streams import write_all
from .values import PutResult

if TYPE_CHECKING:
    from fsspec.callbacks import Callback

    from .blobs import BlobStore

__all__ = ["INLINE_MAX", "put_local_many_bytes"]

#: Buffers smaller than this are hashed by the caller (20 us at 3 GB/s; a hand-over costs more). A
#: larger one goes to the helper, which is idle by then in a checkpoint: the caller is still writing
#: the big tensors before it (a GRU's 0.3 and 0.8 MB layers hashed there: 0.3 ms less of its 4.3 ms put).
INLINE_MAX = 64 << 10

#: On this many cores or fewer the helper hashes on one thread: the caller's writes hold the other
#: core, and BLAKE3's pool would take turns on it (a GRU checkpoint's put: 3.9 ms against 4.1 ms).
_SINGLE_CORES = 2

_helper: ThreadPoolExecutor | None = None
_helper_lock = threading.Lock()


def _hasher() -> ThreadPoolExecutor:
    """The process-wide helper thread (one: the caller writes, the helper hashes; more would contend
    with BLAKE3's own threads for the same cores)."""
    global _helper
    with _helper_lock:
        if _helper is None:
            _helper = ThreadPoolExecutor(1, thread_name_prefix="blob-hash")
        return _helper


def _new_hasher() -> blake3.blake3:
    return threaded_blake3() if (os.cpu_count() or 1) > _SINGLE_CORES else blake3.blake3()


def _forget_helper() -> None:  # a forked child has no helper thread, only the parent's pool object
    global _helper, _helper_lock
    _helper, _helper_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_helper)


def put_local_many_bytes(
    blobs: BlobStore,
    datas: Sequence[bytes | bytearray | memoryview],
    digests: Sequence[str | None],
    cb: Callback,
    stored: Callable[[int], None] | None = None,
) -> list[PutResult]:
    """Store ``datas`` (``digests``: the caller's, already checked, None where unknown); results in
    order. ``stored(i)`` once buffer ``i`` is published and hashed (nothing here reads it any more)."""
    views = [d if isinstance(d, bytes) else memoryview(d).cast("B") for d in datas]
    known = list(digests)
    work = _Hashing(
        views, [i for i, v in enumerate(views) if known[i] is None and len(v) >= INLINE_MAX]
    )
    job = _hasher().submit(work.forward) if work.futures else None
    results: list[PutResult | None] = [None] * len(views)
    waiting: list[tuple[int, str]] = []  # written into a temp file, its digest still coming

    def done(i: int, result: PutResult) -> None:
        results[i] = result
        cb.relative_update(len(views[i]))
        if stored is not None:
            stored(i)

    def publish(i: int, tmp: str) -> None:
        done(i, publish_tmp(blobs, tmp, work.futures[i].result(), len(views[i]), "store a blob"))

    try:
        for i, view in enumerate(views):
            fut = work.futures.get(i)
            if fut is None:
                done(i, put_local_bytes(blobs, view, known[i] or hash_bytes(view)))
            elif fut.done():  # hashed already: look for it before writing, as any put does
                done(i, put_local_bytes(blobs, view, fut.result()))
            else:
                got = _write_while_hashed(blobs, view, fut)
                if isinstance(got, PutResult):
                    done(i, got)
                else:
                    waiting.append((i, got))
            while waiting and work.futures[waiting[0][0]].done():
                publish(*waiting[0])
                waiting.pop(0)  # only once published: a failure removes the temp file below
        work.backward()  # every byte is written: hash what the helper has not started
        while waiting:
            publish(*waiting[0])
            waiting.pop(0)
        assert None not in results
        return cast("list[PutResult]", results)
    finally:
        for _, tmp in waiting:  # a failure: the temp files written ahead go
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        if job is not None:
            work.stop.set()
            job.result()  # the helper lets go of our buffers (at most the one it is hashing)


def _write_while_hashed(
    blobs: BlobStore, view: bytes | memoryview, digest: Future[str]
) -> str | PutResult:
    """Write ``view`` into a temp file while its digest is computed: the temp file's path, or the
    `PutResult` of a blob the digest, arriving mid-write, found stored (the rest is not written)."""
    size = len(view)
    tmp = local_tmp(blobs)
    try:
        with disk_full_errors("store a blob", blobs.root.url):
            with open(tmp, "w+b", buffering=0) as f:
                looked = False
                for off in range(0, size, CHUNK_SIZE):
                    if not looked and digest.done():
                        looked = True
                        if blobs._freshen(digest.result(), size):  # stored already: stop here
                            os.unlink(tmp)
                            return PutResult(digest.result(), size, False)
                    write_all(f, view[off : off + CHUNK_SIZE])
                if blobs.fsync:
                    os.fsync(f.fileno())
        return tmp
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class _Hashing:
    """The digests of the buffers in ``order``: the helper hashes them from the front while the
    caller writes; once the caller has written every buffer it hashes from the back whatever the
    helper has not started (each buffer is claimed by exactly one of them, under ``lock``). On two
    cores hashing is the longer half (3 GB/s against 4 GB/s for writing into the page cache), so
    without the caller's share the writer would sit idle at the end while one core hashes."""

    def __init__(self, views: list[bytes | memoryview], order: list[int]) -> None:
        self.views = views
        self.order = order
        self.futures: dict[int, Future[str]] = {i: Future() for i in order}
        self.lock = threading.Lock()
        self.front, self.back = 0, len(order)  # order[:front] the helper's, order[back:] the caller's
        self.stop = threading.Event()

    def forward(self) -> None:
        """The helper's part (until the caller's failure sets ``stop``: the rest is cancelled)."""
        while (i := self._claim(front=True)) is not None:
            if self.stop.is_set():  # the caller failed: nobody waits for the rest
                self.futures[i].cancel()
            else:
                self._hash(i)

    def backward(self) -> None:
        """The caller's part, after its writes."""
        while (i := self._claim(front=False)) is not None:
            self._hash(i)

    def _claim(self, *, front: bool) -> int | None:
        with self.lock:
            if self.front >= self.back:
                return None
            if front:
                self.front += 1
                return self.order[self.front - 1]
            self.back -= 1
            return self.order[self.back]

    def _hash(self, i: int) -> None:
        fut = self.futures[i]
        try:
            h = _new_hasher()
            h.update(self.views[i])
            fut.set_result(h.hexdigest())
        except BaseException as e:  # surfaces in the caller, on this buffer
            fut.set_exception(e)
