"""Many local files into one blob store as one batch: the path a directory of small files takes.

A put of 20,000 small files used to cost a thread and a future per file, about seven ``stat`` calls per
file and one stat-cache query per file. Here each file is stat-ed once (by the caller's directory walk, or
once at this boundary), the stat cache answers for all of them in one query, and a small fixed pool of
threads works through slices of the list: a known, unchanged file costs a freshen of its blob; an unknown
small file is read once into memory, hashed, and written (unnamed, then linked under its digest:
`storage._unnamed`) only when its blob is new. What is learned goes back to the stat cache in one
transaction. Large files take the streaming one-pass copy (`BlobStore.put_file`), one at a time per worker.
"""

from __future__ import annotations

import os
import stat as _stat
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._localput import put_local_small
from .errors import InvalidPathError, NotFoundError
from .gcpause import gc_paused
from .hashing import CHUNK_SIZE, hash_bytes
from .statcache import StatKey, stat_key
from .upload import SourceChangedError

if TYPE_CHECKING:
    from fsspec.callbacks import Callback

    from .blobs import BlobStore
    from .values import PutResult

__all__ = ["LocalSource", "hash_many", "local_sources", "put_many", "pool_size", "run_slices"]

#: Files up to this size are read whole into memory (one read) instead of streamed.
SMALL_MAX = CHUNK_SIZE
#: Local puts are mostly Python work between short syscalls; more threads than this only queue on the GIL.
LOCAL_WORKERS = 2
#: Files per task handed to the pool: big enough that futures cost nothing, small enough to balance.
SLICE = 64


@dataclass(frozen=True)
class LocalSource:
    """A local file to put: its absolute path and the key of the one ``stat`` taken of it."""

    path: str
    key: StatKey

    @property
    def size(self) -> int:
        return self.key[0]


def local_sources(
    paths: Iterable[str | os.PathLike[str]], keys: Sequence[StatKey | None] | None = None
) -> list[LocalSource]:
    """Validate each path once (one ``stat``, skipped where the caller's walk gives its key: such a
    path must be absolute already, as a walk from a resolved directory gives it)."""
    out = []
    for i, p in enumerate(paths):
        key = keys[i] if keys is not None else None
        if key is not None and isinstance(p, str):
            out.append(LocalSource(p, key))
            continue
        path = os.path.abspath(os.fspath(p))
        if key is None:
            try:
                st = os.stat(path)
            except FileNotFoundError:
                raise NotFoundError(f"no such file: {path}") from None
            if _stat.S_ISDIR(st.st_mode):
                raise InvalidPathError(
                    f"{path} is a directory, expected a file (use add_dir for directories)"
                )
            key = stat_key(st)
        out.append(LocalSource(path, key))
    return out


def read_small(path: str, key: StatKey, attempts: int = 3) -> tuple[bytes, StatKey]:
    """The whole content of a small file in one read, and the stat key it had while read.

    The open file is ``fstat``-ed after the read: a file that changed since ``key`` was taken (or
    while it was read) is read again, up to ``attempts`` times, then refused with
    `SourceChangedError`, as `BlobStore.put_file` does: a version never records a torn save.
    """
    for _ in range(attempts):
        try:
            # O_NONBLOCK: a FIFO swapped in since the walk's stat must not block the open
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise NotFoundError(f"no such file: {path} (removed while being added?)") from None
        try:
            if not _stat.S_ISREG(os.fstat(fd).st_mode):
                raise InvalidPathError(f"cannot add {path}: it is no longer a regular file")
            parts = []
            ask = max(key[0] + 1, 65536)
            while chunk := os.read(fd, ask):
                parts.append(chunk)
                if len(chunk) < ask and len(parts) == 1 and len(chunk) == key[0]:
                    break  # all of it, and short: the end (the fstat below says if it moved)
                ask = 65536
            now = stat_key(os.fstat(fd))
        finally:
            os.close(fd)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        if now == key and len(data) == key[0]:
            return data, key
        key = now
    raise SourceChangedError(
        f"{path} kept changing while it was being stored ({attempts} tries); nothing was "
        "recorded for it: store it again once it is no longer being written"
    )


def run_slices(n: int, workers: int, fn: Callable[[int, int], None]) -> None:
    """Call ``fn(lo, hi)`` over slices of ``range(n)`` on a fixed pool; the first error is raised."""
    bounds = [(lo, min(n, lo + SLICE)) for lo in range(0, n, SLICE)]
    if workers <= 1 or len(bounds) <= 1:
        for lo, hi in bounds:
            fn(lo, hi)
        return
    with ThreadPoolExecutor(min(workers, len(bounds)), thread_name_prefix="blob-batch") as pool:
        for _ in pool.map(lambda b: fn(*b), bounds):
            pass


def pool_size(blobs: BlobStore, max_workers: int | None) -> int:
    limit = max_workers or blobs.max_workers
    return min(limit, LOCAL_WORKERS) if blobs.root.os_paths else limit


def put_many(
    blobs: BlobStore,
    sources: Sequence[LocalSource],
    cb: Callback,
    *,
    max_workers: int | None = None,
    known: dict[str, str] | None = None,
) -> list[PutResult]:
    """Put every source; results in the order given. Progress: bytes, through ``cb``.

    ``known``: digests the caller already looked up (path -> digest), so the stat cache is not asked
    twice.
    """
    from .values import PutResult

    cache = blobs.stat_cache
    if known is None:
        known = cache.lookup_many((s.path, s.key) for s in sources) if cache is not None else {}
    results: list[PutResult | None] = [None] * len(sources)
    learned: list[tuple[str, StatKey, str]] = []
    lock = threading.Lock()
    local = blobs.root.os_paths

    def work(lo: int, hi: int) -> None:
        done = 0
        for i in range(lo, hi):
            s = sources[i]
            digest = known.get(s.path)
            if digest is not None and blobs._freshen(digest):
                r = PutResult(digest, s.size, False)
            elif s.size <= SMALL_MAX:
                data, key = read_small(s.path, s.key)
                r = put_local_small(blobs, data) if local else blobs.put_bytes(data)
                learned.append((s.path, key, r.digest))
            else:  # streamed with its own progress and stat-cache entry
                from .progress import Relay  # fsspec: only once bytes move (see storage.progress)

                results[i] = blobs.put_file(s.path, callback=Relay(cb))
                continue
            results[i] = r
            done += r.size
        with lock:
            cb.relative_update(done)

    with gc_paused():  # a result and a stat-cache row per file (see storage.gcpause)
        run_slices(len(sources), pool_size(blobs, max_workers), work)
        if cache is not None and learned:
            cache.store_many(learned)
        return [r for r in results if r is not None]


def hash_many(
    blobs: BlobStore, sources: Sequence[LocalSource], *, max_workers: int | None = None
) -> dict[str, str]:
    """Digests of local files (path -> digest) without storing them: the stat cache in one query,
    the rest hashed on the pool and remembered (what a quota check needs before any upload)."""
    cache = blobs.stat_cache
    digests = cache.lookup_many((s.path, s.key) for s in sources) if cache is not None else {}
    todo = [s for s in sources if s.path not in digests]
    learned: list[tuple[str, StatKey, str]] = []

    def work(lo: int, hi: int) -> None:
        for s in todo[lo:hi]:
            if s.size <= SMALL_MAX:
                data, key = read_small(s.path, s.key)
                d = hash_bytes(data)
                learned.append((s.path, key, d))
            else:
                d, _ = blobs.hash_local_file(s.path)  # remembers it itself
            digests[s.path] = d

    run_slices(len(todo), pool_size(blobs, max_workers), work)
    if cache is not None and learned:
        cache.store_many(learned)
    return digests
