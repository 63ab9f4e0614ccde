"""Catalog speed: commits per second (1 and N writer processes, local and S3), lineage query time with
100k versions in the index, and `open_store` of an S3 store with 10k log entries onto an empty cache.

    python benchmarks/catalog.py [--commits 200] [--writers 8] [--versions 100000] [--entries 10000]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import artifacts  # noqa: E402
from artifacts.catalog.index import Index  # noqa: E402
from artifacts.catalog.log import RawEntry  # noqa: E402
from artifacts.manifest import FileEntry, Manifest, canonical_json  # noqa: E402
from benchmarks._common import median_time, moto_s3, quiet_werkzeug, table  # noqa: E402


def _commit_loop(
    url: str,
    opts: dict,
    cache: str,
    worker: int,
    n: int,
    start_at: float,
    out: multiprocessing.Queue,
) -> None:
    os.environ["ARTIFACTS_CACHE_DIR"] = cache
    quiet_werkzeug()
    store = artifacts.open_store(url, user=f"w{worker}", storage_options=opts)
    while time.time() < start_at:
        time.sleep(0.001)
    t = time.perf_counter()
    for i in range(n):
        store.log_artifact(
            artifacts.Artifact(f"w{worker}", "dataset").add_bytes("x", f"{i}".encode())
        )
    out.put(time.perf_counter() - t)


def commits_per_second(url: str, opts: dict, writers: int, per_writer: int, tmp: str) -> float:
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    start_at = time.time() + 3.0  # every process imported and opened before the clock starts
    procs = [
        ctx.Process(
            target=_commit_loop,
            args=(url, opts, f"{tmp}/cache-{writers}-{w}", w, per_writer, start_at, q),
        )
        for w in range(writers)
    ]
    for p in procs:
        p.start()
    durations = [q.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    return writers * per_writer / max(durations)


def lineage_benchmark(n_versions: int, depth: int, tmp: str) -> tuple[float, int]:
    """Build an index with ``n_versions`` versions (a ``depth``-level chain among them) and time a query."""
    index = Index(Path(tmp) / "lineage.sqlite", store_id="bench", admins=["u"])
    seq = 0
    batch: list[RawEntry] = []

    def add(op: str, **payload: object) -> None:
        nonlocal seq
        seq += 1
        batch.append(
            RawEntry(
                seq,
                canonical_json(
                    {**payload, "format": 1, "seq": seq, "op": op, "user": "u", "ts": "t"}
                ),
            )
        )
        if len(batch) >= 5000:
            index.apply(batch)
            batch.clear()

    def version(name: str, i: int, run_id: str | None) -> None:
        digest = f"{i:064x}"
        m = Manifest.build([FileEntry("f", digest, 1)])
        add(
            "version_logged",
            name=name,
            type="model",
            digest=m.digest,
            manifest=m.to_json(),
            aliases=[],
            run_id=run_id,
            metadata={},
            description="",
        )

    chain_runs = depth
    filler = max(0, n_versions - chain_runs - 1)
    for i in range(filler):
        version(f"filler{i % 1000}", i, None)
    version("chain", 10**9, None)
    for level in range(depth):
        rid = f"run{level:08d}"
        add("run_started", run={"id": rid, "project": "p", "config": {}})
        add("artifact_used", run_id=rid, name="chain", version=level)
        version("chain", 10**9 + level + 1, rid)
        add("run_finished", run_id=rid, status="finished", summary={})
    index.apply(batch)
    node = f"chain:v{depth}"
    t = median_time(lambda: index.lineage(node, "upstream", None), repeat=20)
    nodes, _ = index.lineage(node, "upstream", None)
    return t, len(nodes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--commits", type=int, default=200, help="commits per measurement")
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--versions", type=int, default=100_000)
    ap.add_argument("--depth", type=int, default=50)
    ap.add_argument("--entries", type=int, default=10_000, help="log entries for the S3 open test")
    args = ap.parse_args()
    quiet_werkzeug()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["ARTIFACTS_CACHE_DIR"] = f"{tmp}/cache"
        rows = []
        with moto_s3() as (s3url, opts):
            for label, url, o, n in (
                ("local", f"{tmp}/store", {}, args.commits),
                ("s3 (moto)", s3url, opts, max(40, args.commits // 4)),
            ):
                one = commits_per_second(url, o, 1, n, tmp)
                many = commits_per_second(url, o, args.writers, max(5, n // args.writers), tmp)
                rows.append((label, round(one, 1), round(many, 1), f"{many / one:.2f}"))
            print(
                table(
                    rows,
                    ("store", "commits/s 1 writer", f"commits/s {args.writers} writers", "ratio"),
                )
            )
            print()

            # open_store onto an empty cache: build the log locally, copy it to S3, open from S3
            src = f"{tmp}/big"
            store = artifacts.open_store(src, user="u")
            t = time.perf_counter()
            for i in range(args.entries):
                store.log_artifact(
                    artifacts.Artifact(f"a{i % 100}", "dataset").add_bytes("x", str(i).encode())
                )
            build = time.perf_counter() - t
            import fsspec

            fs = fsspec.filesystem("s3", **opts)
            dst = s3url.replace("s3://", "").rsplit("/", 1)[0] + "/big"
            fs.put(f"{src}/", f"{dst}/", recursive=True)
            os.environ["ARTIFACTS_CACHE_DIR"] = f"{tmp}/fresh-cache"
            t = time.perf_counter()
            s3store = artifacts.open_store(f"s3://{dst}", user="u", storage_options=opts)
            open_s = time.perf_counter() - t
            assert s3store.index.last_seq == args.entries
            os.environ["ARTIFACTS_CACHE_DIR"] = f"{tmp}/fresh-cache2"
            t = time.perf_counter()
            artifacts.open_store(src, user="u")
            open_local = time.perf_counter() - t
            print(
                table(
                    [
                        ("local", args.entries, round(open_local, 3)),
                        ("s3 (moto)", args.entries, round(open_s, 3)),
                    ],
                    ("open_store, empty cache", "log entries", "seconds"),
                )
            )
            print(
                f"(building the {args.entries}-entry local log took {build:.1f} s: "
                f"{args.entries / build:.0f} commits/s)\n"
            )

        t, n = lineage_benchmark(args.versions, args.depth, tmp)
        print(
            table(
                [(args.versions, args.depth, n, f"{t * 1000:.2f}")],
                ("versions in index", "chain depth", "nodes returned", "upstream lineage ms"),
            )
        )


if __name__ == "__main__":
    main()
