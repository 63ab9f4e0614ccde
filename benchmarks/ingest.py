"""Local ingest speed, measured in one run on one file (default 1 GiB, page-cached):

- ingest (``BlobStore.put_file`` into a fresh local store) vs ``cp`` of the same file (the physical floor)
  and vs hashlib md5 of it (what W&B and DVC pay before copying);
- our hashing alone vs raw ``blake3`` (best of ``update_mmap`` and 8 MiB chunked reads);
- re-ingest of the unchanged file (stat cache), in milliseconds;
- restore (``get_file`` to a new path, verified) vs ``cp``;
- peak RSS of an ingest (in a subprocess, ``ru_maxrss``).

Each timed run starts with the previous output deleted and ``sync`` run (outside the timing), so every run
pays for its own writes the same way. Runs of the different operations are interleaved, so background
load hits them alike; the table shows medians (and the best run).

    python benchmarks/ingest.py [--size 1G] [--file PATH] [--repeat 5] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import blake3  # noqa: E402

import storage  # noqa: E402
from benchmarks._common import (  # noqa: E402
    load_line,
    make_random_file,
    parse_size,
    read_through,
    table,
)

GIB = 1 << 30
CHUNK = 8 << 20


def rm(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def fresh(*paths: Path) -> Callable[[], None]:
    def setup() -> None:
        for p in paths:
            rm(p)
        os.sync()  # flush earlier runs' dirty pages so this run is not charged for them

    return setup


def _chunked_digest(h: Any, path: Path) -> str:
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def md5_file(path: Path) -> str:
    return _chunked_digest(hashlib.md5(), path)


def blake3_chunks(path: Path) -> str:
    return _chunked_digest(blake3.blake3(max_threads=blake3.blake3.AUTO), path)


def blake3_mmap(path: Path) -> str:
    h = blake3.blake3(max_threads=blake3.blake3.AUTO)
    h.update_mmap(path)
    return h.hexdigest()


def peak_rss(src: Path, work: Path) -> tuple[float, float, float]:
    """Peak RSS in MiB of a fresh subprocess that ingests ``src``: (after `import storage`, after the
    put, ru_maxrss after the put).

    The first two are VmHWM from /proc/self/status, the high-water mark of this process's own memory.
    ``ru_maxrss`` is shown too, but Linux carries the parent's high-water mark over fork+exec into it, so
    it is only meaningful when this benchmark's own process is small (it is measured first for that).
    """
    code = (
        "import resource, sys, storage\n"
        "def hwm():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmHWM:'):\n"
        "            return int(line.split()[1])\n"
        "base = hwm()\n"
        "storage.open_blob_store(sys.argv[2], check=False).put_file(sys.argv[1])\n"
        "print(base, hwm(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    store = work / "rss-store"
    rm(store)
    out = subprocess.run(
        [sys.executable, "-c", code, str(src), str(store)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    ).stdout.split()
    rm(store)
    base, peak, maxrss = (int(x) / 1024 for x in out)  # Linux reports KiB
    return base, peak, maxrss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", default="1G", help="file size, e.g. 1G, 256M (default 1G)")
    ap.add_argument("--file", help="use this file instead of a generated one")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per operation (default 5)")
    ap.add_argument("--dir", default=tempfile.gettempdir(), help="where the file and stores live")
    args = ap.parse_args()

    work = Path(args.dir) / "artifacts-ingest-bench"
    work.mkdir(parents=True, exist_ok=True)
    if args.file:
        src = Path(args.file)
    else:
        size = parse_size(args.size)
        src = Path(args.dir) / f"artifacts-bench-{size}.bin"
        make_random_file(src, size)
    size = src.stat().st_size
    gib = size / GIB
    read_through(src)
    base_rss, ingest_rss, ingest_maxrss = peak_rss(src, work)  # first, while this process is small

    cp_out = work / "cp.out"
    store_dir = work / "store"
    restored = work / "restored.out"
    cache_path = work / "statcache.sqlite"

    def cp() -> None:
        subprocess.run(["cp", str(src), str(cp_out)], check=True)

    def ingest() -> None:
        storage.open_blob_store(str(store_dir), check=False).put_file(src)

    store_ro = storage.open_blob_store(str(work / "store-restore"), check=False)
    digest = store_ro.put_file(src).digest

    def restore() -> None:
        store_ro.get_file(digest, restored)

    def ours_hash() -> None:
        store_ro.hash_local_file(src)  # no stat cache: hashes every time

    ops: list[tuple[str, Callable[[], Any], Callable[[], None] | None]] = [
        # every writing op starts from the same state: all earlier outputs deleted and synced
        ("cp", cp, fresh(cp_out, store_dir, restored)),
        ("ingest", ingest, fresh(cp_out, store_dir, restored)),
        ("restore", restore, fresh(cp_out, store_dir, restored)),
        ("blake3 raw, chunks", lambda: blake3_chunks(src), None),
        ("blake3 raw, mmap", lambda: blake3_mmap(src), None),
        ("our hash_local_file", ours_hash, None),
        ("md5", lambda: md5_file(src), None),
    ]
    times: dict[str, list[float]] = {name: [] for name, _, _ in ops}
    for r in range(
        -1, args.repeat
    ):  # run -1 warms up (first writes after start-up are much slower)
        print(f"run {r + 1}/{args.repeat} ..." if r >= 0 else "warm-up run ...", flush=True)
        for name, fn, setup in ops:
            if setup is not None:
                setup()
            t = time.perf_counter()
            fn()
            if r >= 0:
                times[name].append(time.perf_counter() - t)
    for p in (cp_out, store_dir, restored):
        rm(p)

    # re-ingest of the unchanged file through the stat cache. A file modified within 2 s of being hashed
    # is never trusted (racy-git rule), so the file's mtime is set 10 s into the past first.
    old = time.time() - 10
    os.utime(src, (old, old))
    rm(cache_path)
    cached_store = storage.open_blob_store(
        str(work / "store-restore"), stat_cache=storage.StatCache(cache_path), check=False
    )
    cached_store.put_file(src)  # hashes once and remembers (path, size, mtime, inode, ctime)
    reingest = []
    for _ in range(max(20, args.repeat)):
        t = time.perf_counter()
        res = cached_store.put_file(src)
        reingest.append(time.perf_counter() - t)
        assert not res.written and res.digest == digest
    rm(work / "store-restore")
    rm(cache_path)

    if os.environ.get("BENCH_VERBOSE"):
        for k, v in times.items():
            print(f"  {k}: " + " ".join(f"{x:.3f}" for x in v))
    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    raw_b3 = min(med["blake3 raw, chunks"], med["blake3 raw, mmap"])

    def row(name: str, ref: str | None, target: str = "") -> tuple[Any, ...]:
        ratio = f"{med[name] / med[ref]:.2f}x {ref}" if ref else ""
        return (name, med[name], best[name], f"{gib / med[name]:.2f}", ratio, target)

    rows = [
        row("cp", None, "the floor"),
        row("ingest", "cp", "<= 1.3x cp"),
        row("restore", "cp", ""),
        row("md5", "ingest", ""),
        row("blake3 raw, chunks", None),
        row("blake3 raw, mmap", None),
        row("our hash_local_file", None, ""),
    ]
    print()
    print(load_line())
    print(
        f"file: {src} ({gib:.2f} GiB, page-cached), {args.repeat} interleaved runs, {os.cpu_count()} CPUs"
    )
    print(table(rows, ("operation", "median s", "best s", "GiB/s", "ratio (medians)", "target")))
    print()
    print(f"ingest / cp                      {med['ingest'] / med['cp']:.2f}x   (target <= 1.3x)")
    print(f"md5 alone / ingest               {med['md5'] / med['ingest']:.2f}x   (md5 only hashes)")
    print(
        f"our hashing / raw blake3         {raw_b3 / med['our hash_local_file'] * 100:.0f}% "
        "of raw throughput   (target >= 90%)"
    )
    print(f"restore (get_file, verified)/cp  {med['restore'] / med['cp']:.2f}x")
    print(
        f"re-ingest, unchanged file        {statistics.median(reingest) * 1e3:.3f} ms median "
        f"(target <= 20 ms; mtime backdated 10 s so the racy-window rule does not apply)"
    )
    print(
        f"peak RSS of an ingest            {ingest_rss:.0f} MiB "
        f"({base_rss:.0f} MiB after `import storage`, +{ingest_rss - base_rss:.0f} MiB for the put; "
        f"ru_maxrss {ingest_maxrss:.0f} MiB; target <= 100 MiB)"
    )


if __name__ == "__main__":
    main()
