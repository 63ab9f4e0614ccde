"""`gc_paused`: Python's cyclic garbage collector held off while many small objects are made.

A walk, put or get of 20k+ files allocates a few objects per file that all stay alive until it ends
(staged entries, results, manifest entries, rows). Every 700 allocations the collector runs, and its
older generations re-scan everything alive, so its cost grows with the batch: paused, those passes
are not made (the objects are acyclic; anything cyclic made meanwhile is collected after). Pauses
nest and may overlap across threads: the collector is enabled again when the last one ends, and only
if it was enabled when the first began.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

__all__ = ["gc_paused"]

_LOCK = threading.Lock()
_state = {"depth": 0, "was_enabled": False}


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic collector for the block; restored on the way out, errors included."""
    with _LOCK:
        if _state["depth"] == 0:
            _state["was_enabled"] = gc.isenabled()
            gc.disable()
        _state["depth"] += 1
    try:
        yield
    finally:
        with _LOCK:
            _state["depth"] -= 1
            if _state["depth"] == 0 and _state["was_enabled"]:
                gc.enable()
