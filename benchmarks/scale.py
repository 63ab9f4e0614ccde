"""Stores with many log entries: cold open onto an empty cache (local and S3 on moto), the requests it
costs, a warm open with nothing new, and commits/s with 1 and N writers on S3 with their requests.

    python benchmarks/scale.py [--entries 100000] [--writers 8] [--commits 40] [--full-replay]
                               [--single] [--keep DIR] [--copy all|read]
                               [--pack-size 1000] [--snapshot-every 10000]

The log is generated through the public commit path (`Store.bulk`'s `log_artifact` and `set_alias`,
which write the entries one call each would, in batches; ``--single``: one `Store.log_artifact` /
`Store.set_alias` each; 3 in 10 entries a version) into a local store on tmpfs, which makes its packs
and snapshots as any writer does (defaults: a pack per 1,000 entries, a snapshot per 10,000). That
store's objects are then copied byte for byte to a disk directory (``--keep``: kept and reused) and to
a moto bucket (store.json, log/, packs/, snapshots/, snapshot-data/; blobs are not read by an open and
are left out; put through moto's backend, in this process). Over 200k entries only what a cold open
reads goes into moto (``--copy read``: store.json, packs, the newest snapshot and the log from the last
packed entry on): moto's LIST sorts every key of the bucket on each request (S3's does not), so at 1M
keys it would time moto; an open lists the log after the last key it has and never asks for the rest.
Requests are counted on the server side: moto logs one line per HTTP request (werkzeug).

Targets (issue 15): 100k entries open cold in < 2 s locally and < 5 s on S3, 1M in < 30 s; a cold open
costs at most entries/1000 + 10 requests; a warm open with nothing new costs 2.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import artifacts  # noqa: E402
from benchmarks._common import moto_s3, table  # noqa: E402
from benchmarks.catalog import commits_per_second  # noqa: E402


class RequestLog(logging.Handler):
    """Counts the HTTP requests moto's server (in this process) answers, by method."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = re.sub(r"\x1b\[[0-9;]*m", "", record.getMessage())  # werkzeug colours 4xx lines
        parts = msg.split('"')
        if len(parts) >= 3 and "/moto-api" not in msg:
            self.lines.append(f"{parts[1]} {parts[2].split()[0]}")  # "PUT /key HTTP/1.1 412"

    @contextmanager
    def window(self) -> Iterator[list[str]]:
        start = len(self.lines)
        got: list[str] = []
        yield got
        got.extend(self.lines[start:])


def count_requests() -> RequestLog:
    log = logging.getLogger("werkzeug")
    handler = RequestLog()
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.INFO)
    return handler


def methods(lines: list[str]) -> str:
    def kind(line: str) -> str:
        method, status = line.split(" ", 1)[0], line.rsplit(" ", 1)[-1]
        method = "LIST" if "list-type=2" in line else method
        return method if status.startswith("2") else f"{method}:{status}"

    c = Counter(kind(ln) for ln in lines)
    return " ".join(f"{k}={v}" for k, v in sorted(c.items()))


def generate(root: str, entries: int, *, single: bool = False) -> float:
    """Commit ``entries`` log entries through the public API (`Store.bulk`, or one call each with
    ``single``: the same entries, ~2x slower); returns entries per second."""
    store = artifacts.open_store(root, user="bench")
    t = time.perf_counter()
    with contextlib.ExitStack() as stack:
        api: Any = store if single else stack.enter_context(store.bulk())
        i = 0
        while store.index.last_seq < entries:  # a bulk's index counts its staged entries
            name = f"data{i % 200}"
            if i % 10 < 3 or not store.index.exists(name):
                api.log_artifact(
                    artifacts.Artifact(name, "dataset").add_bytes("x", f"{i}".encode())
                )
            else:
                api.set_alias(f"{name}:latest", f"tag{i % 7}")
            i += 1
            if i % 50000 == 0:
                print(f"  generated {store.index.last_seq} entries", flush=True)
    rate = store.index.last_seq / (time.perf_counter() - t)
    store.close(wait=600)
    return rate


def read_by_open(src: Path) -> list[Path]:
    """What a cold open reads: store.json, the packs, the newest snapshot (descriptor, data, hint)
    and the log entries after the last pack (the 1M single entries before it it never touches)."""
    from artifacts.catalog.packs import parse_pack_name

    packs = sorted((src / "packs").iterdir()) if (src / "packs").is_dir() else []
    last = max((n.last for p in packs if (n := parse_pack_name(p.name))), default=0)
    descs = sorted(p for p in (src / "snapshots").iterdir() if p.name[:20].isdigit())
    files = [src / "store.json", *packs]
    if descs:
        import json

        digest = json.loads(descs[-1].read_bytes())["digest"]
        files += [descs[-1], src / "snapshots" / "hint.json"]
        files += [p for p in (src / "snapshot-data").iterdir() if p.name.startswith(digest)]
    files += [
        p for p in (src / "log").iterdir() if p.name[:20].isdigit() and int(p.name[:20]) >= last
    ]
    return files


def upload(src: Path, s3url: str, *, everything: bool = True) -> int:
    """Copy the store's objects (not its blobs) byte for byte into the bucket; all of them, or (not
    ``everything``) only what a cold open reads (`read_by_open`). Through moto's own backend (its
    server runs in this process): the objects are the same, and 100k of them take seconds, not the
    ten minutes as many HTTP PUTs take."""
    from moto.backends import get_backend
    from moto.core import DEFAULT_ACCOUNT_ID

    backend = get_backend("s3")[DEFAULT_ACCOUNT_ID]["aws"]
    bucket, prefix = s3url[5:].split("/", 1)
    files = [src / "store.json"]
    for d in ("log", "packs", "snapshots", "snapshot-data"):
        if (src / d).is_dir():
            files += [p for p in (src / d).iterdir() if not p.name.startswith(".tmp-")]
    if not everything:
        files = read_by_open(src)
    for p in files:
        backend.put_object(bucket, f"{prefix}/{p.relative_to(src).as_posix()}", p.read_bytes())
    return len(files)


def _phases() -> list[tuple[str, Any, str]]:
    from artifacts.catalog import snapshots
    from artifacts.catalog.engine import Catalog
    from artifacts.catalog.tail import LogReader

    return [
        ("store.json", Catalog, "_store_info"),
        ("find snapshot", snapshots, "list_snapshots"),
        ("get+check snapshot", snapshots, "check_snapshot"),
        ("copy snapshot in", snapshots, "load_snapshot"),
        ("packs", LogReader, "_read_packs"),
        ("log LIST", LogReader, "_list_new"),
        ("log GETs", LogReader, "_fetch"),
        ("apply", LogReader, "apply"),
    ]


@contextmanager
def phases() -> Iterator[dict[str, float]]:
    """Seconds spent in each step of an open (wrapped for the block; a step may include a later one's
    work only where it calls it, e.g. packs reading a bad pack's entries)."""
    spent: dict[str, float] = {}
    saved = []
    for label, owner, name in _phases():
        fn = getattr(owner, name)
        saved.append((owner, name, fn))

        def timed(*a: Any, _fn: Any = fn, _label: str = label, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return _fn(*a, **k)
            finally:
                spent[_label] = spent.get(_label, 0.0) + time.perf_counter() - t

        setattr(owner, name, timed)
    try:
        yield spent
    finally:
        for owner, name, fn in saved:
            setattr(owner, name, fn)


def show_phases(spent: dict[str, float], total: float) -> str:
    rest = total - sum(spent.values())
    return " ".join(f"{k} {v:.2f}" for k, v in spent.items() if v >= 0.005) + f" other {rest:.2f}"


def open_cold(url: str, opts: dict[str, Any], cache_root: Path) -> tuple[float, int, str]:
    """One open onto an empty cache: seconds, the head it reached, where the time went."""
    cache = Path(tempfile.mkdtemp(dir=cache_root))
    os.environ["ARTIFACTS_CACHE_DIR"] = str(cache)
    with phases() as spent:
        t = time.perf_counter()
        store = artifacts.open_store(url, user="bench", storage_options=opts)
        took = time.perf_counter() - t
    head = store.index.last_seq
    store.close(wait=120)
    return took, head, show_phases(spent, took)


def open_warm(url: str, opts: dict[str, Any]) -> float:
    t = time.perf_counter()
    artifacts.open_store(url, user="bench", storage_options=opts).close()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument(
        "--commits", type=int, default=40, help="commits per writer measurement (0: none)"
    )
    ap.add_argument(
        "--full-replay", action="store_true", help="also time S3 with no packs or snapshots (slow)"
    )
    ap.add_argument(
        "--single", action="store_true", help="generate with one commit per call, not Store.bulk"
    )
    ap.add_argument("--keep", help="keep the generated store in this directory, reuse it if there")
    ap.add_argument(
        "--copy",
        choices=("all", "read"),
        help="objects copied into moto: all (default up to 200k entries) or what a cold open reads",
    )
    ap.add_argument("--pack-size", type=int, default=1000)
    ap.add_argument("--snapshot-every", type=int, default=10_000)
    args = ap.parse_args()
    os.environ["ARTIFACTS_PACK_SIZE"] = str(args.pack_size)
    os.environ["ARTIFACTS_SNAPSHOT_EVERY"] = str(args.snapshot_every)
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(dir=shm) as gen, tempfile.TemporaryDirectory() as tmp:
        os.environ["ARTIFACTS_CACHE_DIR"] = f"{gen}/cache"
        local = Path(args.keep) if args.keep else Path(tmp) / "store"
        if not (local / "store.json").exists():
            t = time.perf_counter()
            rate = generate(f"{gen}/store", args.entries, single=args.single)
            took = time.perf_counter() - t
            how = "one commit per call" if args.single else "Store.bulk"
            print(f"generated {args.entries} entries in {took:.0f} s ({rate:.0f}/s, {how})")
            shutil.copytree(f"{gen}/store", local, ignore=shutil.ignore_patterns("blobs"))
        shutil.rmtree(gen, ignore_errors=True)
        packs = len(os.listdir(local / "packs")) if (local / "packs").is_dir() else 0
        snaps = len([p for p in os.listdir(local / "snapshots") if p != "hint.json"])
        print(f"store: {args.entries} entries, {packs} packs, {snaps} snapshots")
        budget = args.entries // 1000 + 10
        rows = []
        caches = Path(tmp) / "caches"
        caches.mkdir()
        load = f"load {os.getloadavg()[0]:.1f}"
        local_runs = sorted(open_cold(str(local), {}, caches) for _ in range(3))
        took, _, where = local_runs[1]
        every = ", ".join(f"{r[0]:.2f}" for r in local_runs)
        rows.append(("local", "cold open (median of 3)", f"{took:.2f}", "-", "< 2 s (100k)"))
        notes = [f"local cold open: {every} s ({load}); median: {where}"]
        if args.entries <= 200_000 or args.full_replay:
            old = Path(tmp) / "no-packs"  # the same log, as a store written before packs looks
            shutil.copytree(local, old, ignore=shutil.ignore_patterns("packs", "snapshot*"))
            os.environ["ARTIFACTS_PACK_SIZE"] = os.environ["ARTIFACTS_SNAPSHOT_EVERY"] = "0"
            t_old = open_cold(str(old), {}, caches)[0]
            os.environ["ARTIFACTS_PACK_SIZE"] = str(args.pack_size)
            os.environ["ARTIFACTS_SNAPSHOT_EVERY"] = str(args.snapshot_every)
            shutil.rmtree(old)
            rows.append(("local", "cold open, entries only", f"{t_old:.2f}", "-", "(no packs)"))
        with moto_s3() as (s3url, opts):
            reqs = count_requests()
            t = time.perf_counter()
            everything = args.copy == "all" or (args.copy is None and args.entries <= 200_000)
            n = upload(local, s3url, everything=everything)
            what = "all objects but blobs" if everything else "what a cold open reads"
            print(f"uploaded {n} objects ({what}) to moto in {time.perf_counter() - t:.0f} s")
            load = f"load {os.getloadavg()[0]:.1f}"
            s3_runs = []
            for _ in range(3):
                with reqs.window() as w:
                    took, head, where = open_cold(s3url, opts, caches)
                assert head == args.entries, head
                s3_runs.append((took, f"{len(w)} ({methods(w)})", where))
            s3_runs.sort()
            took, count, where = s3_runs[1]
            rows.append(
                ("s3", "cold open (median of 3)", f"{took:.2f}", count, f"<5 s, <={budget}")
            )
            every = ", ".join(f"{r[0]:.2f}" for r in s3_runs)
            notes.append(f"s3 cold open: {every} s ({load}); median: {where}")
            with reqs.window() as w:
                took = open_warm(s3url, opts)
            rows.append(
                ("s3", "warm open, nothing new", f"{took:.3f}", f"{len(w)} ({methods(w)})", "2")
            )
            with reqs.window() as w:
                store = artifacts.open_store(s3url, user="bench", storage_options=opts)
            with reqs.window() as w:
                store.log_artifact(artifacts.Artifact("one", "dataset").add_bytes("x", b"1"))
            rows.append(
                ("s3", "one commit (log_artifact)", "-", f"{len(w)} ({methods(w)})", "<=3 + blobs")
            )
            store.close()
            bucket, prefix = s3url[5:].split("/", 1)
            root = store.root
            for rel in root.list_after("snapshots"):
                root.delete(f"snapshots/{rel}")
            with reqs.window() as w:
                took, _, _ = open_cold(s3url, opts, caches)
            rows.append(
                ("s3", "cold open, packs only", f"{took:.2f}", f"{len(w)} ({methods(w)})", "")
            )
            if args.full_replay:  # the cold open above made a snapshot again: drop both
                for d in ("snapshots", "packs"):
                    for rel in root.list_after(d):
                        root.delete(f"{d}/{rel}")
                os.environ["ARTIFACTS_PACK_SIZE"] = os.environ["ARTIFACTS_SNAPSHOT_EVERY"] = "0"
                with reqs.window() as w:
                    took, _, _ = open_cold(s3url, opts, caches)
                os.environ["ARTIFACTS_PACK_SIZE"] = str(args.pack_size)
                os.environ["ARTIFACTS_SNAPSHOT_EVERY"] = str(args.snapshot_every)
                rows.append(
                    ("s3", "cold open, entries only", f"{took:.2f}", f"{len(w)} ({methods(w)})", "")
                )
        print(table(rows, ("backend", "what", "seconds", "requests", "target")))
        print("\n".join(notes))
        if args.commits <= 0:
            return
        crows = []
        with moto_s3() as (s3url, opts):
            reqs = count_requests()
            for writers in (1, args.writers):
                per = max(5, args.commits // writers) if writers > 1 else args.commits
                load = f"{os.getloadavg()[0]:.1f}"
                with reqs.window() as w:
                    cps = commits_per_second(s3url, opts, writers, per, tmp)
                commits = writers * per
                crows.append(
                    (writers, commits, f"{cps:.1f}", load, f"{len(w) / commits:.1f}", methods(w))
                )
        head = ("writers", "commits", "commits/s", "load", "requests/commit", "requests")
        print(table(crows, head))
        print("(requests include each writer's open onto an empty cache and its close)")


if __name__ == "__main__":
    main()
