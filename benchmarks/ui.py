"""`artifacts ui` speed with 100k runs in the index: the runs page's first screen, sorting and filtering,
a run page with 5 metrics x 100k steps, and the time from `artifacts ui` to the first page served.

    python benchmarks/ui.py [--runs 100000] [--steps 100000] [--repeat 5] [--before DIR]

Targets (issue 14): first screen < 200 ms, sort/filter < 300 ms, run page < 500 ms, ready < 2 s warm.
Pages are requested through the ASGI app in-process (Starlette's TestClient), so the figures are the
server's time; the start-up figure launches the real command and polls it over loopback.

The run page is measured for a run with a series blob (as runs finishing with 1000+ rows store now)
and for one with the same history and no series blob (a run from before them), with nothing cached.
``--before DIR`` (a copy of an earlier main, e.g. ``git archive a9d52d5 | tar -x -C DIR``) adds that
code's run page, served by a worker process over its own store filled by its own ``fill``; the three
are requested in alternation, their order rotated each round.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import artifacts  # noqa: E402
from artifacts.catalog.log import RawEntry  # noqa: E402
from artifacts.chunks import json_lines  # noqa: E402
from artifacts.manifest import canonical_json  # noqa: E402
from artifacts.series import store_series  # noqa: E402
from benchmarks._common import load_line, median_time, table  # noqa: E402

TARGETS = {"first screen": 0.200, "sort": 0.300, "filter": 0.300, "group": 0.300, "run page": 0.500}


def fill(store: artifacts.Store, n_runs: int, steps: int) -> str:
    """``n_runs`` finished runs straight into the index (as replayed log entries), one with a long history."""
    rng = random.Random(0)
    history = b"".join(
        canonical_json({"_step": s, **{f"m{k}": rng.random() for k in range(5)}}) + b"\n"
        for s in range(steps)
    )
    big = store.blobs.put_bytes(history).digest
    series = store_series(store.blobs, json_lines(history))  # what the run's finish stores
    seq = store.index.last_seq
    batch: list[RawEntry] = []
    long_id = None
    for i in range(n_runs):
        rid = f"{i:012x}"
        long_id = long_id or rid
        long = i < 2  # run 0 with its series blob, run 1 without (finished before series blobs)
        job = ("prepare", "train", "evaluate")[i % 3]
        cfg = {f"p{k}": rng.random() for k in range(8)} | {
            "lr": rng.choice([1e-4, 3e-4, 1e-3]),
            "seed": i,
        }
        for op, body in (
            (
                "run_started",
                {
                    "run": {
                        "id": rid,
                        "project": f"proj{i % 4}",
                        "name": None,
                        "group": f"g{i % 50}",
                        "job_type": job,
                        "config": cfg,
                        "host": "bench",
                        "command": ["x"],
                        "git": None,
                        "env": {},
                    }
                },
            ),
            (
                "run_finished",
                {
                    "run_id": rid,
                    "status": "finished" if i % 17 else "failed",
                    "summary": {f"s{k}": rng.random() for k in range(8)}
                    | {"val_acc": rng.random()},
                    "history": big if long else None,
                }
                | ({"series": series} if i == 0 else {}),
            ),
        ):
            seq += 1
            entry = {
                **body,
                "format": 1,
                "seq": seq,
                "op": op,
                "user": f"u{i % 7}",
                "ts": f"2026-11-{1 + i % 28:02d}T{i % 24:02d}:00:00.000000+00:00",
            }
            batch.append(RawEntry(seq, canonical_json(entry)))
        if len(batch) >= 20_000:
            store.index.apply(batch)
            batch = []
    store.index.apply(batch)
    return long_id or ""


#: run in a worker process on an earlier main's code: fill a store with that code's own `fill`, then
#: serve its long run's page, nothing cached, once per line read; print each time in seconds
BEFORE = """
import os, sys, tempfile, time
sys.path.insert(0, sys.argv[1])
from starlette.testclient import TestClient
import artifacts
from artifacts.ui import create_app, views
from benchmarks.ui import fill
with tempfile.TemporaryDirectory() as tmp:
    os.environ["ARTIFACTS_CACHE_DIR"] = f"{tmp}/cache"
    store = artifacts.open_store(f"{tmp}/store", user="u0")
    long_id = fill(store, int(sys.argv[2]), int(sys.argv[3]))
    client = TestClient(create_app(store))
    client.get("/runs")
    print("ready", flush=True)
    for _ in sys.stdin:
        views._series_cache.clear()
        t = time.perf_counter()
        assert client.get(f"/runs/{long_id}").status_code == 200
        print(time.perf_counter() - t, flush=True)
"""


class Before:
    """The run page of an earlier main's code, in a worker process (see `BEFORE`)."""

    def __init__(self, tree: str, runs: int, steps: int) -> None:
        env = dict(os.environ, PYTHONPATH=tree)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", BEFORE, tree, str(runs), str(steps)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.out, self.inp = self.proc.stdout, self.proc.stdin
        while (line := self.out.readline()) != "ready\n":
            assert line, "the worker on the earlier code died"

    def page(self) -> float:
        self.inp.write("go\n")
        self.inp.flush()
        return float(self.out.readline())

    def close(self) -> None:
        self.inp.close()
        self.proc.wait(60)


def ready_time(url: str, env: dict[str, str]) -> float:
    """Seconds from starting `artifacts ui` to its first runs page served over loopback."""
    import httpx

    t = time.perf_counter()
    proc = subprocess.Popen(
        ["artifacts", "--store", url, "ui", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert m, line
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{m.group(1)}/runs", timeout=10).status_code == 200:
                    return time.perf_counter() - t
            except httpx.TransportError:
                time.sleep(0.01)
    finally:
        proc.terminate()
        proc.wait(10)


def run_pages(get: Callable[[str], None], long_id: str, args: argparse.Namespace) -> list[Any]:
    """The run page of 5 metrics x ``steps``, nothing cached (the first view of a run): from the series
    blob, from the history alone, and (``--before``) on the earlier code, alternated and rotated."""
    from artifacts.ui import views

    def timed(path: str) -> Callable[[], float]:
        def page() -> float:
            views._series_cache.clear()
            t = time.perf_counter()
            get(path)
            return time.perf_counter() - t

        return page

    old_id = f"{int(long_id, 16) + 1:012x}"
    contenders = {
        "run page (series blob)": (f"/runs/{long_id}", timed(f"/runs/{long_id}")),
        "run page, history only": (f"/runs/{old_id}", timed(f"/runs/{old_id}")),
    }
    before = None
    if args.before:
        print(f"filling the store of the code in {args.before} ...", flush=True)
        before = Before(args.before, args.runs, args.steps)
        contenders["run page, earlier main"] = (f"{args.before} /runs/ID", before.page)
    times: dict[str, list[float]] = {k: [] for k in contenders}
    names = list(contenders)
    try:
        for r in range(args.repeat):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                times[name].append(contenders[name][1]())
    finally:
        if before is not None:
            before.close()
    target = TARGETS["run page"]
    out = []
    for name, (path, _) in contenders.items():
        s = statistics.median(times[name])
        spread = f"{min(times[name]) * 1000:.0f}-{max(times[name]) * 1000:.0f}"
        out.append(
            (
                name,
                path[:60],
                f"{s * 1000:.0f} ({spread})",
                f"{target * 1000:.0f}",
                f"{s / target:.2f}",
            )
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument(
        "--before", help="a copy of an earlier main whose run page to measure alongside"
    )
    args = ap.parse_args()
    from starlette.testclient import TestClient

    from artifacts.ui import create_app

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["ARTIFACTS_CACHE_DIR"] = f"{tmp}/cache"
        url = f"{tmp}/store"
        store = artifacts.open_store(url, user="u0")
        t = time.perf_counter()
        long_id = fill(store, args.runs, args.steps)
        print(
            f"filled {args.runs:,} runs ({args.steps:,} steps x 5 metrics in one) in {time.perf_counter() - t:.1f} s"
        )
        client = TestClient(create_app(store))

        def get(path: str) -> None:
            r = client.get(path)
            assert r.status_code == 200, (path, r.status_code, r.text[:300])

        get("/runs")  # templates compiled once, as in a server that has served one page
        pages = {
            "first screen": "/runs",
            "sort": "/runs?sort=summary.val_acc&dir=desc",
            "filter": "/runs?q=summary.val_acc%20%3E%200.9%20and%20job_type%20%3D%20%27train%27",
            "group": "/runs?group=job_type&metric=summary.val_acc",
        }
        rows = []
        for name, path in pages.items():
            s = median_time(lambda p=path: get(p), args.repeat)
            target = TARGETS[name]
            rows.append(
                (name, path[:60], f"{s * 1000:.0f}", f"{target * 1000:.0f}", f"{s / target:.2f}")
            )
        rows += run_pages(get, long_id, args)
        body = client.get(f"/runs/{long_id}").text
        points = sum(
            len(c["series"][0]["x"])
            for c in json.loads(re.search(r'id="chart-data">(.*?)</script>', body, re.S).group(1))[
                "charts"
            ]
        )
        env = dict(os.environ)
        env["PYTHONPATH"] = (
            str(Path(__file__).resolve().parent.parent) + os.pathsep + env.get("PYTHONPATH", "")
        )
        ready_time(url, env)  # warm the page cache and the interpreter's files
        ready = sorted(ready_time(url, env) for _ in range(3))[1]
        rows.append(
            (
                "ui ready (warm)",
                "artifacts ui -> first /runs",
                f"{ready * 1000:.0f}",
                "2000",
                f"{ready / 2:.2f}",
            )
        )
        print(table(rows, ("what", "request", "median ms", "target ms", "ratio to target")))
        print(
            f"run page: {5 * args.steps:,} logged points sent as {points:,} (downsampled to the chart width)"
        )
        print(load_line())


if __name__ == "__main__":
    main()
