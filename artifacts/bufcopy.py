"""Private copies of in-memory buffers (a checkpoint's tensors), made on every core.

``log_artifact(wait=False)`` holds the training thread for exactly this copy, so it should cost no
more than the memory copy itself. ``bytes(view)`` copies on one thread; large buffers here are copied
in 8 MiB slices by a few threads with ``ctypes.memmove`` (which releases the GIL) into private
anonymous memory, so the page faults and the copying spread over the cores. Measured on 1 GiB of 24
float32 tensors on this 2-core VM under load 6-7: CPU time 0.35-0.37 s for both this and ``bytes()``,
0.50 s for ``torch.clone`` of each tensor; a ``MAP_SHARED`` mapping (the ``mmap`` module's default)
cost 0.49 s (shared-memory page faults), which is why the mapping is private.

Small, read-only or immutable buffers take the plain path: ``bytes`` is immutable already and is
never copied; a read-only view of some other object is copied with ``bytes()``.

`release` hands a mapped copy's pages back as soon as its blob is stored, so a background put needs
about one checkpoint of memory, not two. On this VM memory left free for a few seconds goes back to
the host (virtio-balloon free page reporting) and its first touch costs a host fault per page; pages
released tensor by tensor are taken again at once by the next tensor's page cache (standalone, 1 GiB
from a copy into new files: 0.42 s and 0.36 CPU-s released as written, 0.83 s and 0.57 CPU-s kept).
"""

from __future__ import annotations

import ctypes
import mmap
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

__all__ = ["PARALLEL_MIN", "copy_buffers", "release"]

#: Buffers at least this large are copied in parallel slices (below it a thread hand-over costs more).
PARALLEL_MIN = 4 << 20
_SLICE = 8 << 20
_PRIVATE = getattr(mmap, "MAP_PRIVATE", None)
_ANONYMOUS = getattr(mmap, "MAP_ANONYMOUS", None)
_DONTNEED = getattr(mmap, "MADV_DONTNEED", None)


def copy_buffers(datas: Sequence[bytes | bytearray | memoryview]) -> list[bytes | memoryview]:
    """A private copy of each buffer, in order (``bytes`` are returned as they are)."""
    out: list[bytes | memoryview] = []
    jobs: list[tuple[int, int, int]] = []
    for data in datas:
        if isinstance(data, bytes):
            out.append(data)
            continue
        view = memoryview(data).cast("B")
        src = _address(view) if view.nbytes >= PARALLEL_MIN else None
        if src is None or _PRIVATE is None or _ANONYMOUS is None:
            out.append(bytes(view))
            continue
        dst = mmap.mmap(-1, view.nbytes, flags=_PRIVATE | _ANONYMOUS)
        base = _address(memoryview(dst))
        assert base is not None  # an anonymous mapping is writable
        jobs += [
            (base + off, src + off, min(_SLICE, view.nbytes - off))
            for off in range(0, view.nbytes, _SLICE)
        ]
        out.append(memoryview(dst))
    if jobs:
        workers = min(len(jobs), os.cpu_count() or 1, 8)
        if workers == 1:
            for job in jobs:
                ctypes.memmove(*job)
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="artifacts-copy") as pool:
                for _ in pool.map(lambda job: ctypes.memmove(*job), jobs):
                    pass
    return out


def release(copy: bytes | bytearray | memoryview | None) -> None:
    """Give the pages of a copy made by `copy_buffers` back to the OS now, while views of it may
    still exist; it reads as zeros afterwards, so only its owner calls this, once nothing reads it.
    A ``bytes`` copy (small, or the caller's own immutable buffer) is left alone: it is freed, or
    not, with its last reference."""
    if isinstance(copy, memoryview) and isinstance(copy.obj, mmap.mmap) and _DONTNEED is not None:
        copy.obj.madvise(_DONTNEED)


def _address(view: memoryview) -> int | None:
    """The address of a writable buffer's first byte; None for a read-only one (copied plainly)."""
    if view.readonly:
        return None
    return ctypes.addressof(ctypes.c_char.from_buffer(view))
