"""Numbers from users and from store content, bounded where they enter.

SQLite stores integers in 64 bits and Python's ints have no bound, so an integer the user typed
(a version in a ref, a quota, a ``--limit``, a query literal) that does not fit used to escape as an
``OverflowError`` traceback from deep inside a query. Every such number is checked here first, with an
error that names the value and the range, raised as the caller's error type (a `QueryError` in a query,
an `InvalidNameError` in a ref, an `InvalidValueError` otherwise).
"""

from __future__ import annotations

from typing import Any

from .errors import ArtifactsError, InvalidValueError

__all__ = [
    "INT64_MAX",
    "MAX_CHUNK_BYTES",
    "MAX_ENTRY_BYTES",
    "MAX_FILES",
    "MAX_PACK_BYTES",
    "MAX_PATH_CHARS",
    "MAX_SMALL_BYTES",
    "SNAPSHOT_INFLATE_FLOOR",
    "SNAPSHOT_INFLATE_RATIO",
    "check_int",
    "max_snapshot_bytes",
    "shorten",
]

#: The largest integer SQLite (and the log's validation) accepts.
INT64_MAX = 2**63 - 1

# Sizes of store content, bounded because every reader pays for them on every cold open: a log
# entry is parsed whole (about 30 s and 1.5 GB of memory for a 1M-file manifest of 108 MB on a
# loaded 2-core machine), a path is padded into every line of a listing. Read as module attributes
# (``bounds.MAX_FILES``) where they are checked, so a test can lower them.

#: Bytes of one log entry; a version's manifest is inline in its entry, so this bounds it too.
MAX_ENTRY_BYTES = 512 * 1024 * 1024
#: Bytes of one log pack (`artifacts.catalog.packs`): a pack is a cache of entries, so a range whose
#: pack would be larger is not packed and is read entry by entry (no pack costs more to read than the
#: largest entry may). Content read from a store is read up to these bounds and no further.
MAX_PACK_BYTES = MAX_ENTRY_BYTES
#: Bytes of one history chunk of a live run (`artifacts.chunks`; a writer refuses to flush a larger
#: one: flush more often).
MAX_CHUNK_BYTES = MAX_ENTRY_BYTES
#: Bytes of the store's small documents: store.json, a run's heartbeat, a snapshot's descriptor and
#: the snapshot hint (a few fields each).
MAX_SMALL_BYTES = 1024 * 1024
#: A snapshot's data inflates to at most max(SNAPSHOT_INFLATE_RATIO x its compressed bytes,
#: SNAPSHOT_INFLATE_FLOOR) (`max_snapshot_bytes`); past that it is refused as a zlib bomb (its digest is
#: the store's own, so it proves nothing), and a writer does not write one. Deflate's own limit is about
#: 1032:1, so without this 5 MiB of store content could make a reader write 5 GiB on each cold open.
#: Measured on the snapshots our store writes (zlib level 1 of a SQLite backup, not vacuumed; this
#: SQLite zeroes free pages, but the index deletes little and they held at most 1 page in 50k entries):
#: a few to 200 entries: 160-240 KiB of mostly empty pages at 6-46:1 (the floor's case); 20k and 50k
#: entries (benchmarks/scale.py's mix, Store.bulk): 2.1-2.4:1; 4k versions all carrying the same
#: 20 KB config: 6:1. Only metadata that repeats itself inside one value goes higher (a 46 KB note of
#: one line repeated: 73:1; 100 KB of one character: 108:1); a store of those past the floor makes no
#: snapshots and opens from packs and the log, as before snapshots. 64:1 is 25x the usual ratio and
#: 10x the repeated-config one, and caps a bomb at 64x the bytes it stores, not 1032x.
SNAPSHOT_INFLATE_RATIO = 64
#: The inflated bytes any snapshot may reach whatever its ratio (small stores are mostly empty pages);
#: tens of MiB of temporary disk, written in pieces (memory stays at one piece).
SNAPSHOT_INFLATE_FLOOR = 64 * 1024 * 1024
#: Files of one version (a dataset of more files is split into several artifacts, or archived).
MAX_FILES = 2_000_000
#: Characters of one file path in an artifact (Linux refuses paths over 4096 bytes anyway).
MAX_PATH_CHARS = 4096


def max_snapshot_bytes(compressed: int) -> int:
    """The bytes a snapshot's data of ``compressed`` bytes may inflate to (see SNAPSHOT_INFLATE_RATIO)."""
    return max(SNAPSHOT_INFLATE_RATIO * compressed, SNAPSHOT_INFLATE_FLOOR)


def shorten(value: Any, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters: a 10^6-digit number must not make a 10^6-char line."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 4 * limit:
        return f"an integer of about {int(value.bit_length() * 0.30103)} digits"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_int(
    value: Any,
    what: str,
    *,
    low: int = 0,
    high: int = INT64_MAX,
    error: type[ArtifactsError] = InvalidValueError,
) -> int:
    """``value`` if it is an int (not a bool) in ``low..high``; else ``error`` naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(f"{what} must be an integer, not {shorten(value)}")
    if not low <= value <= high:
        raise error(f"{what} {shorten(value)} is out of range: it must be between {low} and {high}")
    return value
