"""Many blobs of a local store written to local files as one batch: the get of a directory of small
files (``get``/``download``/the download cache).

Each file used to cost a future, a ``makedirs``, a stat-cache-less hash of its blob and its own
temp file in a thread of its own. Here every blob is ``stat``-ed once before anything is written (a
missing one is named first, as when one blob is fetched), the stat cache answers for all of them in
one query (a blob hashed on this machine before and unchanged since is not hashed again: the rule
`BlobStore.local_blob` applies to every local read), each destination directory is made once, and a
small fixed pool works through slices of the list: a small blob is read whole, verified, written to a
temp file beside its destination and renamed over it (the destination appears only whole and
verified). Large blobs take the one-pass kernel copy of `storage._download.get_file`. What was
hashed goes back to the stat cache in one transaction.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._download import get_file, tmp_beside
from .batch import SMALL_MAX, pool_size, run_slices
from .errors import IntegrityError
from .gcpause import gc_paused
from .hashing import hash_bytes
from .quarantine import missing_error
from .statcache import StatKey, stat_key

if TYPE_CHECKING:
    from fsspec.callbacks import Callback

    from .blobs import BlobStore

__all__ = ["get_many_local"]


def get_many_local(
    blobs: BlobStore,
    pairs: Sequence[tuple[str, str]],
    cb: Callback,
    *,
    verify: bool = True,
    max_workers: int | None = None,
) -> None:
    """Write blob ``digest`` to ``dest`` for every (digest, dest); ``dest`` absolute. See module."""
    with gc_paused():  # a stat and a row per file (see storage.gcpause)
        _get_many(blobs, pairs, cb, verify, max_workers)


def _get_many(
    blobs: BlobStore,
    pairs: Sequence[tuple[str, str]],
    cb: Callback,
    verify: bool,
    max_workers: int | None,
) -> None:
    sources: dict[str, str] = {}
    stats: dict[str, os.stat_result] = {}
    for digest, _ in pairs:
        if digest in stats:
            continue
        path = sources[digest] = blobs.root.local(blobs.relpath(digest))
        try:
            stats[digest] = os.stat(path)
        except FileNotFoundError:  # before anything is written
            raise missing_error(blobs.root, digest) from None
    cache = blobs.stat_cache
    trusted: set[str] = set()
    if verify and cache is not None:
        known = cache.lookup_many((sources[d], stat_key(st)) for d, st in stats.items())
        trusted = {d for d in stats if known.get(sources[d]) == d}
    for parent in {os.path.dirname(dest) for _, dest in pairs}:
        os.makedirs(parent, exist_ok=True)
    learned: list[tuple[str, StatKey, str]] = []
    lock = threading.Lock()

    def work(lo: int, hi: int) -> None:
        done = 0
        for digest, dest in pairs[lo:hi]:
            if stats[digest].st_size > SMALL_MAX:
                from .progress import Relay

                get_file(blobs, digest, dest, verify=verify, callback=Relay(cb))
                continue
            data, key = _read_whole(blobs, sources[digest], digest)
            if verify and digest not in trusted:
                actual = hash_bytes(data)
                if actual != digest:
                    raise IntegrityError(
                        f"blob {digest} is corrupt: its content hashes to {actual} "
                        f"({blobs.root.url}); verify the store"
                    )
                learned.append((sources[digest], key, digest))
            _write_beside(dest, data)
            done += len(data)
        with lock:
            cb.relative_update(done)

    try:
        run_slices(len(pairs), pool_size(blobs, max_workers), work)
    finally:  # what was verified stays known, even when a later file failed
        if cache is not None and learned:
            cache.store_many(learned)


def _read_whole(blobs: BlobStore, path: str, digest: str) -> tuple[bytes, StatKey]:
    """A small blob's bytes in one read, and the stat key of the file they were read from."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:  # swept since the stat (a blob nothing referred to)
        raise missing_error(blobs.root, digest) from None
    try:
        parts = []
        while chunk := os.read(fd, SMALL_MAX + 1):
            parts.append(chunk)
        return b"".join(parts), stat_key(os.fstat(fd))
    finally:
        os.close(fd)


def _write_beside(dest: str, data: bytes) -> None:
    """``data`` to a temp file beside ``dest``, renamed over it: ``dest`` appears only whole."""
    tmp = tmp_beside(dest)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
