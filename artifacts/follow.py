"""Following a run while it trains: its history rows as they are flushed, until it ends."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .chunks import read_chunks

if TYPE_CHECKING:
    from .store import Store

__all__ = ["follow_rows"]


def follow_rows(store: Store, run_id: str, poll: float = 1.0) -> Iterator[dict[str, Any]]:
    """Yield each history row of ``run_id`` once it is complete, polling every ``poll`` seconds,
    until the run finishes, is closed, or reads as crashed.

    A row is held back until a later step shows up (or the run ends), so a step flushed while still
    open is yielded once, complete.
    """
    run = store.run(run_id)
    if run._status != "running":  # finished already: its history blob has every row
        yield from run.history()
        return
    seen, held = 0, None
    while True:
        run = store.run(run_id)
        ended = run._status != "running" or run.status == "crashed"
        stop = run._chunks if run._status != "running" else None
        chunks = (
            read_chunks(store.root, run_id, seen + 1, stop) if stop is None or stop > seen else []
        )
        for chunk in chunks:
            for row in chunk.rows:
                if held is not None and held.get("_step") == row.get("_step"):
                    held = {**held, **row}
                else:
                    if held is not None:
                        yield held
                    held = dict(row)
        seen += len(chunks)
        if ended:
            if held is not None:
                yield held
            return
        time.sleep(poll)
