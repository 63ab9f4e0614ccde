"""Blobs this process wrote and hashed itself, so that reading one back right away needs no hash.

A restore verifies each local blob unless the stat cache vouches for it, and the stat cache only trusts
a file whose mtime is at least 2 s older than its hashing (the racy-git rule: a write by *another*
program in the same clock tick as the hash would leave size and times unchanged). So a checkpoint
restored within 2 s of being logged was hashed a second time (0.2-0.3 s per GiB here).

A blob that a put of this process has just published is different: its digest is that of the very
bytes the put wrote into its temp file, and the temp file was private until it was linked under the
digest. What is remembered is the blob's state right after publishing (size, mtime_ns, inode,
ctime_ns); any later write, truncate, replace or ``utime`` changes at least one of them, except a
write into the published blob by another process within the same timestamp tick as our own publish
(a few ms on ext4) -- a blob under ``blobs/`` is never written in place by this package, so only a
hostile or broken writer racing the put could do that. `artifacts verify` re-hashes everything.

Memory: one small tuple per blob, at most `MAX_REMEMBERED` (oldest forgotten first); the cost is one
``stat`` per blob written, paid only for blobs of `REMEMBER_MIN` bytes or more (hashing a smaller one
on read costs about what the stat does, and many small files should not pay a stat each).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict

from .statcache import StatKey, stat_key

__all__ = ["MAX_REMEMBERED", "REMEMBER_MIN", "forget_all", "remember", "vouches"]

#: Blobs remembered per process; a checkpoint has tens to thousands of tensors.
MAX_REMEMBERED = 65536
#: Smaller blobs are not remembered: BLAKE3 of 256 KiB takes about 0.1 ms here, a stat a few us.
REMEMBER_MIN = 256 * 1024

_lock = threading.Lock()
_written: OrderedDict[str, StatKey] = OrderedDict()


def remember(path: str) -> None:
    """Record the state of the blob at ``path``, just published by this process from bytes it hashed."""
    try:
        key = stat_key(os.stat(path))
    except OSError:  # gone already (a concurrent gc): nothing to vouch for
        return
    with _lock:
        _written[path] = key
        _written.move_to_end(path)
        while len(_written) > MAX_REMEMBERED:
            _written.popitem(last=False)


def vouches(path: str, st: os.stat_result) -> bool:
    """True if ``path`` is a blob this process published and it is unchanged since (``st``: its stat
    now)."""
    with _lock:
        return _written.get(path) == stat_key(st)


def forget_all() -> None:
    """Forget every blob (tests; and a forked child keeps the memory, which stays true there)."""
    with _lock:
        _written.clear()
