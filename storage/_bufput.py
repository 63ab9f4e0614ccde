"""Many in-memory buffers (a checkpoint's tensors) stored on a root with OS paths, hashing overlapped
with writing.

The large buffers are hashed in order by a process-wide helper thread (with BLAKE3's threads on more
than two cores), while the caller writes them, in order, into temp files (BLAKE3 and ``write`` both
release the GIL). A buffer whose digest is known before its write starts is checked for a stored blob
first, as any put is; otherwise it is written while being hashed, in `CHUNK_SIZE` pieces, and once its
digest arrives a blob already stored stops the write (a frozen layer costs at most the part written
meanwhile, on the other core). So the caller never waits for a digest it could write without, and a
checkpoint costs about the larger of its hashing and its writing, not their sum: hashing (3 GB/s a
core here) is the slower one, and BLAKE3's pool lets it use whatever the writer leaves of the cores
(on two, that is one). Buffers under `INLINE_MAX` are hashed by the caller before their write:
handing one over costs more than hashing it.

Each blob is still published under its digest only after its whole content was written and hashed
(`publish_local`), so a crash or an error leaves at most a temp file. The helper only ever reads the
caller's buffers, and this call does not return (nor raise) before the helper has let go of them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, BinaryIO

import blake3

from ._localput import put_local_bytes, put_local_via_tmp
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
    """Store ``datas`` in order (``digests``: the caller's, already checked, None where unknown);
    ``stored(i)`` once buffer ``i`` is published and hashed (the helper has moved past it)."""
    views = [d if isinstance(d, bytes) else memoryview(d).cast("B") for d in datas]
    known = list(digests)
    ahead: dict[int, Future[str]] = {
        i: Future() for i, v in enumerate(views) if known[i] is None and len(v) >= INLINE_MAX
    }
    stop = threading.Event()
    job = _hasher().submit(_hash_in_order, views, ahead, stop) if ahead else None
    try:
        results = []
        for i, view in enumerate(views):
            if i in ahead:
                results.append(_put_while_hashed(blobs, view, ahead[i]))
            else:
                results.append(put_local_bytes(blobs, view, known[i] or hash_bytes(view)))
            cb.relative_update(len(view))
            if stored is not None:
                stored(i)
        return results
    finally:
        if job is not None:
            stop.set()
            job.result()  # the helper lets go of our buffers (at most the one it is hashing)


def _put_while_hashed(blobs: BlobStore, view: bytes | memoryview, digest: Future[str]) -> PutResult:
    """Write ``view`` into a temp file while the helper hashes it; publish it under its digest."""
    if digest.done():  # hashed already: look for it before writing, as any put does
        return put_local_bytes(blobs, view, digest.result())
    size = len(view)

    def write(f: BinaryIO) -> tuple[str, int] | PutResult:
        looked = False
        for off in range(0, size, CHUNK_SIZE):
            if not looked and digest.done():
                looked = True
                if blobs._freshen(digest.result(), size):  # stored already: stop here
                    return PutResult(digest.result(), size, False)
            write_all(f, view[off : off + CHUNK_SIZE])
        return digest.result(), size

    return put_local_via_tmp(blobs, write)


def _hash_in_order(
    views: list[bytes | memoryview], ahead: dict[int, Future[str]], stop: threading.Event
) -> None:
    for i, fut in ahead.items():
        if stop.is_set():  # the caller failed: nobody waits for the rest
            fut.cancel()
            continue
        try:
            h = _new_hasher()
            h.update(views[i])
            fut.set_result(h.hexdigest())
        except BaseException as e:  # surfaces in the caller, on this buffer
            fut.set_exception(e)
