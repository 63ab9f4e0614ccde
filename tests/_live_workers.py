"""Workers for the live-history tests, forked by the zygote of `tests/_workers.py`.

A journal line is written (and fsynced) after the fact it states:

    r <run id>        the run was started
    F <rows>          a flush returned: this many closed rows are in chunks in the store
    L <i> <time>      row i was logged (``log()`` returned) at this wall-clock time
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

import artifacts
from tests._workers import Journal


def expected_row(i: int) -> dict[str, Any]:
    return {"i": i, "sq": i * i, "_step": i}


def live_writer(
    url: str, options: dict[str, Any], cache: str, journal: str, interval: float, seed: int
) -> None:
    """Log rows i = 0, 1, ... quickly until killed; every 5th row is logged in two calls on one
    step (``step=i`` opens it, the next call completes it), so kills also land on open steps."""
    os.environ["ARTIFACTS_CACHE_DIR"] = cache
    out = Journal(journal)
    rng = random.Random(seed)
    store = artifacts.open_store(url, storage_options=options)
    run = store.start_run(project="live", config={"seed": seed}, flush_interval=interval)
    out.write("r", run.id)
    live, flushed, i = run._live, 0, 0
    assert live is not None
    while True:
        if i % 5 == 0:
            run.log({"i": i}, step=i)
            run.log({"sq": i * i})
        else:
            run.log({"i": i, "sq": i * i})
        i += 1
        if len(live.lines) != flushed:
            flushed = len(live.lines)
            out.write("F", flushed)
        time.sleep(rng.choice((0.0, 0.001, 0.002)))


def slow_writer(
    url: str, options: dict[str, Any], cache: str, journal: str, interval: float, rows: int
) -> None:
    """Log one row every half interval and journal when each log() returned, then finish."""
    os.environ["ARTIFACTS_CACHE_DIR"] = cache
    out = Journal(journal)
    store = artifacts.open_store(url, storage_options=options)
    with store.start_run(project="live", flush_interval=interval) as run:
        out.write("r", run.id)
        for i in range(rows):
            run.log({"i": i, "sq": i * i})
            out.write("L", i, repr(time.time()))
            time.sleep(interval / 2)
