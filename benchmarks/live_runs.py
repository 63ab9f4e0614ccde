"""Live run history: the cost of `run.log()` on the training thread, the overhead of the background
flusher on a training loop, and the log entries a long run adds.

    python benchmarks/live_runs.py [--calls 20000] [--steps 10000] [--flushes 3600] [--s3]

Targets (issue 12): ``run.log()`` of a 10-key dict under 20 us median (no I/O on the training
thread); flushing overhead under 2% of a 10k-step loop's wall time; a 10-hour run flushing every
10 s (3600 flushes) adds no log entries beyond its start and finish.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # a spinning BLAS pool on a busy machine drowns the signal

import numpy as np  # noqa: E402

import artifacts  # noqa: E402
from benchmarks._common import interleaved_medians, load_line, moto_s3, table  # noqa: E402

KEYS = [f"metric_{i}" for i in range(10)]


def log_call_times(store: artifacts.Store, calls: int, interval: float) -> list[float]:
    """Seconds per `run.log()` of a 10-key dict of floats, each call timed on its own."""
    times = []
    with store.start_run(project="bench", flush_interval=interval) as run:
        clock = time.perf_counter
        for i in range(calls):
            row = {k: i * 0.001 + j for j, k in enumerate(KEYS)}
            t = clock()
            run.log(row)
            times.append(clock() - t)
    return times


def baseline_times(calls: int) -> list[float]:
    """The floor: appending the same dict to a list, timed the same way."""
    out, times = [], []
    clock = time.perf_counter
    for i in range(calls):
        row = {k: i * 0.001 + j for j, k in enumerate(KEYS)}
        t = clock()
        out.append(dict(row))
        times.append(clock() - t)
    return times


def training_loop(store: artifacts.Store, steps: int, interval: float | None) -> None:
    """``steps`` steps of a small matmul (about 0.2 ms) and a 10-key log each; ``interval=None``
    is the same loop without a run at all."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((120, 120)), rng.standard_normal((120, 120))
    if interval is None:
        for _ in range(steps):
            c = a @ b
            float(c[0, 0])
        return
    with store.start_run(project="bench", flush_interval=interval) as run:
        for i in range(steps):
            c = a @ b
            run.log({k: float(c[0, j]) + i for j, k in enumerate(KEYS)})


def long_run_entries(store: artifacts.Store, flushes: int) -> tuple[int, int, float]:
    """Log entries and chunk objects added by a run that flushes ``flushes`` times (as a 10 h run
    flushing every 10 s does), and seconds per flush."""
    before = store.log.head()
    with store.start_run(project="bench", flush_interval=3600) as run:
        t = time.perf_counter()
        for i in range(flushes):
            run.log({"loss": 1.0 / (i + 1), "step_time": 0.1})
            run.flush()
        per_flush = (time.perf_counter() - t) / flushes
    entries = store.log.head() - before
    chunks = len(store.root.listdir(f"runs/{run.id}/chunks"))
    return entries, chunks, per_flush


def run_all(url: str, opts: dict, args: argparse.Namespace, label: str) -> None:
    store = artifacts.open_store(url, storage_options=opts)
    rows = []
    base = baseline_times(args.calls)
    for interval in (0.1, 10.0):
        t = log_call_times(store, args.calls, interval)
        med = statistics.median(t)
        rows.append(
            (
                f"run.log() 10 keys, flush every {interval:g} s",
                f"{med * 1e6:.2f} us",
                f"{statistics.quantiles(t, n=100)[98] * 1e6:.1f} us",
                f"{med / statistics.median(base):.1f}x list.append(dict)",
            )
        )
    rows.append(
        ("list.append(dict(row)) (floor)", f"{statistics.median(base) * 1e6:.2f} us", "", "")
    )
    print(f"\n{label}: run.log() on the training thread ({args.calls} calls; target < 20 us)")
    print(table(rows, ("call", "median", "p99", "vs floor")))

    fns = {
        "no run": lambda: training_loop(store, args.steps, None),
        "flush every 10 s": lambda: training_loop(store, args.steps, 10.0),
        "flush every 0.1 s": lambda: training_loop(store, args.steps, 0.1),
        "no flush (3600 s)": lambda: training_loop(store, args.steps, 3600.0),
    }
    order = list(fns)
    med: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(args.repeat):  # rotate the order as well as interleaving
        rot = order[r % len(order) :] + order[: r % len(order)]
        for k, v in interleaved_medians({k: fns[k] for k in rot}, repeat=1).items():
            med[k].append(v)
    m = {k: statistics.median(v) for k, v in med.items()}
    quiet = m["no flush (3600 s)"]
    print(
        f"\n{label}: a {args.steps}-step loop (matmul + 10-key log per step), median of {args.repeat}"
    )
    print(
        table(
            [(k, f"{v:.3f} s", f"{(v / quiet - 1) * 100:+.2f}%") for k, v in m.items()],
            ("loop", "wall", "vs no flush (target < +2%)"),
        )
    )

    entries, chunks, per_flush = long_run_entries(store, args.flushes)
    print(
        f"\n{label}: a run flushing {args.flushes} times added {entries} log entries "
        f"(target 2: start + finish) and {chunks} chunk objects; {per_flush * 1e3:.2f} ms per flush"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--calls", type=int, default=20000)
    p.add_argument("--steps", type=int, default=10000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--flushes", type=int, default=3600)
    p.add_argument("--s3", action="store_true", help="also on a moto S3 server on loopback")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["ARTIFACTS_CACHE_DIR"] = str(Path(tmp) / "cache")
        run_all(str(Path(tmp) / "store"), {}, args, "local")
        if args.s3:
            from benchmarks._common import quiet_werkzeug

            quiet_werkzeug()
            with moto_s3() as (url, opts):
                args.flushes = min(args.flushes, 300)
                run_all(url, opts, args, "s3 (moto)")
    print(load_line())


if __name__ == "__main__":
    main()
