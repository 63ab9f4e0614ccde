"""The commit log: ``log/<20-digit seq>.json``, one immutable entry per change, created exclusively.

Writers replay to the head N, validate their change against that state and create N+1 only if it does not
exist yet (the Delta Lake protocol over `Root.create_exclusive`). Because an entry is only ever written
right after its predecessor was seen, the log has no gaps, so readers find new entries by probing forward
in growing batches instead of listing the whole prefix.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from storage import Root
from storage.conditional import ensure_exclusive_creates

from .. import bounds
from ..errors import ConflictError

__all__ = ["LOG_DIR", "CommitLog", "RawEntry", "backoff", "log_path", "read_entries"]

LOG_DIR = "log"
_MAX_BATCH = 512


def log_path(seq: int) -> str:
    return f"{LOG_DIR}/{seq:020d}.json"


def read_entries(root: Root, seqs: list[int]) -> dict[int, bytes]:
    """The stored bytes of entries ``seqs`` (missing ones left out), each read up to one byte past
    `bounds.MAX_ENTRY_BYTES` and no further: a hostile or damaged 50 GB entry costs that prefix
    (which `entries.decode` refuses, naming it), not a read of it all. Every reader reads the same
    prefix, so the hash chain's digest of a refused entry is the same for all of them."""
    got = root.read_many([log_path(s) for s in seqs], limit=bounds.MAX_ENTRY_BYTES)
    return {s: got[log_path(s)] for s in seqs if log_path(s) in got}


@dataclass(frozen=True)
class RawEntry:
    """An entry as stored: its sequence number and bytes. `entries.decode` types (or rejects) it."""

    seq: int
    data: bytes


class CommitLog:
    def __init__(self, root: Root) -> None:
        self.root = root

    def create(self, seq: int, data: bytes) -> None:
        """Create entry ``seq``; `ConflictError` if another writer got there first (and
        `BackendError`, before anything is written, on an endpoint whose creates are not exclusive)."""
        ensure_exclusive_creates(self.root)
        try:
            self.root.create_exclusive(log_path(seq), data)
        except ConflictError:
            raise ConflictError(f"log entry {seq} was committed by another writer") from None

    def read_after(self, last: int) -> list[RawEntry]:
        """Every entry after ``last``, in order: probes forward in batches that grow while full."""
        out: list[RawEntry] = []
        start, batch = last + 1, 1
        while True:
            got = read_entries(self.root, list(range(start, start + batch)))
            run = []
            for s in range(start, start + batch):
                data = got.get(s)
                if data is None:
                    break
                run.append(RawEntry(s, data))
            out.extend(run)
            if len(run) < batch:
                return out
            start += batch
            batch = min(batch * 4, _MAX_BATCH)

    def head(self) -> int:
        """The highest committed sequence number (0 for an empty log), by listing."""
        best = 0
        for info in self.root.listdir(LOG_DIR):
            stem = info["name"].rstrip("/").rsplit("/", 1)[-1].split(".", 1)[0]
            if stem.isdigit():
                best = max(best, int(stem))
        return best


def backoff(attempt: int, round_trip: float) -> None:
    """Sleep after a lost race: random, growing with each loss, scaled by the store's round trip.

    Losers that retry at once mostly collide again and load the backend with wasted writes; spreading
    them over a few round trips lets each race have one winner and few losers.
    """
    scale = max(round_trip, 0.001) * (2 ** min(attempt, 5))
    time.sleep(min(1.0, scale) * random.random())
