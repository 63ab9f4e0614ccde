"""The commit log: ``log/<20-digit seq>.json``, one immutable entry per change, created exclusively.

Writers replay to the head N, validate their change against that state and create N+1 only if it does not
exist yet (the Delta Lake protocol over `Root.create_exclusive`). Because an entry is only ever written
right after its predecessor was seen, the log has no gaps, so readers find new entries by probing forward
in growing batches instead of listing the whole prefix.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from storage import Root

from .errors import ConflictError
from .manifest import canonical_json

__all__ = ["LOG_FORMAT", "CommitLog", "RawEntry", "log_path"]

LOG_FORMAT = 1
LOG_DIR = "log"
_MAX_BATCH = 512


def log_path(seq: int) -> str:
    return f"{LOG_DIR}/{seq:020d}.json"


@dataclass(frozen=True)
class RawEntry:
    """An entry as stored: its sequence number and bytes. Parsing (and rejecting) is the index's job."""

    seq: int
    data: bytes

    def parse(self) -> dict[str, Any]:
        """The entry as a dict; raises ValueError describing what is malformed."""
        try:
            obj = json.loads(self.data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"not valid JSON ({e})") from None
        except (ValueError, RecursionError) as e:  # a 5000-digit number, [[[...]]] too deep
            raise ValueError(f"not usable JSON ({e})") from None
        if not isinstance(obj, dict):
            raise ValueError("not a JSON object")
        fmt = obj.get("format")
        if fmt != LOG_FORMAT or isinstance(fmt, bool):  # true == 1 in Python, not in the format
            if isinstance(fmt, int) and not isinstance(fmt, bool) and fmt > LOG_FORMAT:
                raise ValueError(
                    f"written in log format {fmt}, newer than this library's {LOG_FORMAT}; upgrade"
                )
            raise ValueError(f"unknown log format {fmt!r}")
        if obj.get("seq") != self.seq:
            raise ValueError(f"claims sequence {obj.get('seq')!r} but is stored as {self.seq}")
        if not isinstance(obj.get("op"), str):
            raise ValueError("has no operation")
        return obj


class CommitLog:
    def __init__(self, root: Root) -> None:
        self.root = root

    def encode(self, seq: int, op: str, payload: dict[str, Any]) -> bytes:
        return canonical_json({**payload, "format": LOG_FORMAT, "seq": seq, "op": op})

    def create(self, seq: int, data: bytes) -> None:
        """Create entry ``seq``; `ConflictError` if another writer got there first."""
        try:
            self.root.create_exclusive(log_path(seq), data)
        except ConflictError:
            raise ConflictError(f"log entry {seq} was committed by another writer") from None

    def read_after(self, last: int) -> list[RawEntry]:
        """Every entry after ``last``, in order: probes forward in batches that grow while full."""
        out: list[RawEntry] = []
        start, batch = last + 1, 1
        while True:
            rels = {log_path(s): s for s in range(start, start + batch)}
            got = self.root.read_many(list(rels))
            run = []
            for s in range(start, start + batch):
                data = got.get(log_path(s))
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

    def entry_paths(self) -> dict[int, str]:
        """Sequence number -> relative path for every stored entry (for verify)."""
        out = {}
        for info in self.root.listdir(LOG_DIR):
            name = info["name"].rstrip("/").rsplit("/", 1)[-1]
            stem = name.split(".", 1)[0]
            if stem.isdigit() and name.endswith(".json"):
                out[int(stem)] = f"{LOG_DIR}/{name}"
        return out


def backoff(attempt: int, round_trip: float) -> None:
    """Sleep after a lost race: random, growing with each loss, scaled by the store's round trip.

    Losers that retry at once mostly collide again and load the backend with wasted writes; spreading
    them over a few round trips lets each race have one winner and few losers.
    """
    import random

    scale = max(round_trip, 0.001) * (2 ** min(attempt, 5))
    time.sleep(min(1.0, scale) * random.random())
