"""S3 transfer speed through `BlobStore` vs raw s3fs on the same moto server, measured in one run:

- one large file (default 256 MiB): ``BlobStore.put_file`` / ``get_file`` (verified) vs s3fs
  ``put_file`` / ``get_file``;
- many small files (default 1,000 x 4 KiB): ``BlobStore.put_files`` / ``get_files`` vs s3fs ``put_file``
  in a loop and s3fs ``put`` / ``get`` with lists (s3fs batches those concurrently);
- a large in-memory state_dict (default 256 MiB in 8 tensors): ``store.log_artifact`` of an artifact
  with ``add_state_dict`` (hashing, upload, manifest and commit) vs s3fs ``pipe`` (concurrent
  ``pipe_file``, multipart above 100 MiB) and a ``pipe_file`` loop of the tensors' bytes, handed to
  s3fs ready as ``bytes`` (raw s3fs pays no copy), and ``pipe`` with the ``tobytes()`` copy timed
  too (s3fs takes no memoryview or array: that copy is what moving a tensor with raw s3fs costs);
  and ``load_state_dict`` of that version (verified) vs s3fs ``cat`` and a ``cat_file`` loop of the
  same objects (bytes, not tensors).

The moto server runs in its own process (as a real S3 endpoint would), started by this script on
127.0.0.1 with port 0. Every upload goes to a key that does not exist yet (ours: the blob is deleted
between runs, so nothing is skipped as a duplicate; a state_dict's tensors get new leading bytes each
run). Runs are interleaved, their order rotated each run and odd runs backward; the tables show medians.

    python benchmarks/s3_transfer.py [--size 256M] [--files 1000] [--small-size 4K] [--repeat 5]
                                     [--sd-size 256M] [--tensors 8] [--cases files,state_dict]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import s3fs  # noqa: E402

import storage  # noqa: E402
from benchmarks._common import load_line, make_bucket, table  # noqa: E402
from benchmarks.ingest import parse_size  # noqa: E402

MIB = 1 << 20

_SERVER = """
import logging, sys
from moto.server import ThreadedMotoServer
logging.getLogger("werkzeug").setLevel(logging.ERROR)
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print("%s:%d" % server.get_host_and_port(), flush=True)
sys.stdin.read()  # until the parent closes our stdin
server.stop()
"""


@contextlib.contextmanager
def moto_process() -> Iterator[str]:
    """A moto S3 server in a child process on 127.0.0.1, port 0; yields its endpoint URL."""
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline().strip()
        if not line:
            raise RuntimeError("moto server did not start")
        yield f"http://{line}"
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def options(endpoint: str) -> dict[str, Any]:
    return {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        "skip_instance_cache": True,
    }


def write_random(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 * MIB)
            f.write(os.urandom(n))
            left -= n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", default="256M", help="large file size (default 256M)")
    ap.add_argument("--files", type=int, default=1000, help="number of small files (default 1000)")
    ap.add_argument("--small-size", default="4K", help="size of each small file (default 4K)")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per operation (default 5)")
    ap.add_argument("--sd-size", default="256M", help="state_dict size (default 256M)")
    ap.add_argument("--tensors", type=int, default=8, help="tensors in the state_dict (default 8)")
    ap.add_argument(
        "--cases", default="files,state_dict", help="files, state_dict or both (default both)"
    )
    args = ap.parse_args()
    cases = set(args.cases.split(","))
    if not cases <= {"files", "state_dict"}:
        ap.error(f"unknown case in --cases {args.cases!r}")
    if "files" not in cases:
        args.size, args.files = "0", 0
    size, small = parse_size(args.size), parse_size(args.small_size)

    work = Path(tempfile.mkdtemp(prefix="artifacts-s3-bench-"))
    try:
        big = work / "big.bin"
        write_random(big, size)
        small_dir = work / "small"
        small_dir.mkdir()
        smalls = []
        for i in range(args.files):
            p = small_dir / f"f{i:05d}.bin"
            p.write_bytes(os.urandom(small))
            smalls.append(p)
        with moto_process() as endpoint:
            print(load_line().replace("at the end", "at the start"))
            if "files" in cases:
                run(args, endpoint, work, big, smalls)
            if "state_dict" in cases:
                run_state_dict(args, endpoint, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


Op = tuple[str, Callable[[], Any], Callable[[], None] | None]


def measure(ops: list[Op], repeat: int) -> dict[str, list[float]]:
    """Times of each op over ``repeat`` rounds after a warm-up round; each round runs every op once,
    the order rotated by one per round and odd rounds backward, so no contender always goes first
    or always follows the same one (a cyclic rotation alone keeps who follows whom). An op's setup
    runs untimed, before a put and after a get."""
    times: dict[str, list[float]] = {name: [] for name, _, _ in ops}
    for r in range(-1, repeat):  # round -1 warms up connections and caches
        print(f"run {r + 1}/{repeat} ..." if r >= 0 else "warm-up run ...", flush=True)
        k = max(r, 0) % len(ops)
        order = ops[k:] + ops[:k]
        for name, fn, setup in order[::-1] if r % 2 else order:
            if setup is not None and name.startswith("put"):
                setup()
            t = time.perf_counter()
            fn()
            if r >= 0:
                times[name].append(time.perf_counter() - t)
            if setup is not None and name.startswith("get"):
                setup()
    return times


def run(args: argparse.Namespace, endpoint: str, work: Path, big: Path, smalls: list[Path]) -> None:
    bucket = make_bucket(endpoint)
    opts = options(endpoint)
    fs = s3fs.S3FileSystem(**opts)
    store = storage.open_blob_store(f"s3://{bucket}/store", opts)
    size = big.stat().st_size
    nbytes_small = sum(p.stat().st_size for p in smalls)

    out = work / "out"
    out.mkdir()
    big_out = out / "big.out"
    small_out = [out / f"g{i:05d}.bin" for i in range(len(smalls))]
    raw_big = f"{bucket}/raw/big.bin"
    raw_small = [f"{bucket}/raw-small/{p.name}" for p in smalls]

    big_digest = store.hash_local_file(big)[0]
    small_digests = [store.hash_local_file(p)[0] for p in smalls]

    def drop_ours_big() -> None:
        store.delete(big_digest)

    def drop_ours_small() -> None:
        for d in small_digests:
            store.delete(d)

    def drop_raw_big() -> None:
        with contextlib.suppress(FileNotFoundError):
            fs.rm_file(raw_big)

    def drop_raw_small() -> None:
        fs.rm(raw_small)

    def put_ours_big() -> None:
        r = store.put_file(big)
        assert r.written

    def put_ours_small() -> None:
        rs = store.put_files(smalls)
        assert all(r.written for r in rs)

    def put_raw_small_loop() -> None:
        for p, k in zip(smalls, raw_small, strict=True):
            fs.put_file(str(p), k)

    def rm_outputs() -> None:
        for p in out.iterdir():
            p.unlink()

    ops: list[Op] = [
        ("put big: s3fs put_file", lambda: fs.put_file(str(big), raw_big), drop_raw_big),
        ("put big: BlobStore.put_file", put_ours_big, drop_ours_big),
        ("get big: s3fs get_file", lambda: fs.get_file(raw_big, str(big_out)), rm_outputs),
        (
            "get big: BlobStore.get_file",
            lambda: store.get_file(big_digest, big_out),
            rm_outputs,
        ),
        ("put small: s3fs put_file loop", put_raw_small_loop, drop_raw_small),
        (
            "put small: s3fs put(list)",
            lambda: fs.put([str(p) for p in smalls], raw_small),
            drop_raw_small,
        ),
        ("put small: BlobStore.put_files", put_ours_small, drop_ours_small),
        (
            "get small: s3fs get(list)",
            lambda: fs.get(raw_small, [str(p) for p in small_out]),
            rm_outputs,
        ),
        (
            "get small: BlobStore.get_files",
            lambda: store.get_files(zip(small_digests, small_out, strict=True)),
            rm_outputs,
        ),
    ]
    # the get_* rows need their objects in place: put them once up front
    fs.put_file(str(big), raw_big)
    fs.put([str(p) for p in smalls], raw_small)
    store.put_file(big)
    store.put_files(smalls)

    # put rows delete their objects before running and leave them stored; gets read those
    times = measure(ops, args.repeat)
    med = {k: statistics.median(v) for k, v in times.items()}

    def ratio(ours: str, ref: str) -> str:
        return f"{med[ours] / med[ref]:.2f}x"

    rows = []
    for name, _, _ in ops:
        if "big" in name:
            rate = f"{size / MIB / med[name]:.0f} MiB/s"
        else:
            rate = f"{len(smalls) / med[name]:.0f} files/s"
        rows.append((name, med[name], min(times[name]), rate))
    print()
    print(load_line())
    print(
        f"moto S3 on {endpoint} (own process); big file {size / MIB:.0f} MiB; "
        f"{len(smalls)} small files of {nbytes_small // len(smalls)} B; {args.repeat} interleaved runs"
    )
    print(table(rows, ("operation", "median s", "best s", "rate")))
    print()
    print("ratios of medians, ours / raw s3fs (target: within 10%, i.e. <= 1.10x)")
    b = "BlobStore"
    print(f"  put big    {ratio(f'put big: {b}.put_file', 'put big: s3fs put_file')}")
    print(
        f"  get big    {ratio(f'get big: {b}.get_file', 'get big: s3fs get_file')}  (ours verifies)"
    )
    print(
        f"  put small  {ratio(f'put small: {b}.put_files', 'put small: s3fs put(list)')} vs put(list), "
        f"{ratio(f'put small: {b}.put_files', 'put small: s3fs put_file loop')} vs a put_file loop"
    )
    print(
        f"  get small  {ratio(f'get small: {b}.get_files', 'get small: s3fs get(list)')} vs get(list)"
    )


def run_state_dict(args: argparse.Namespace, endpoint: str, work: Path) -> None:
    """A large in-memory state_dict logged to and loaded from an S3 store, vs raw s3fs moving the
    same bytes (see the module docstring)."""
    import torch  # only here: the files case needs no torch

    from artifacts import Artifact, open_store

    os.environ["ARTIFACTS_CACHE_DIR"] = str(
        work / "cache"
    )  # index cache and stat cache start empty
    total, n = parse_size(args.sd_size), args.tensors
    each = total // n // 4 * 4  # float32 elements
    gen = torch.Generator().manual_seed(0)
    sd = {f"layer{i}.weight": torch.rand(each // 4, generator=gen) for i in range(n)}
    size = sum(t.numel() * 4 for t in sd.values())
    bucket = make_bucket(endpoint)
    opts = options(endpoint)
    fs = s3fs.S3FileSystem(**opts)
    store = open_store(f"s3://{bucket}/store", storage_options=opts)
    raw_keys = [f"{bucket}/raw-sd/{k}" for k in sd]

    def raw_bytes() -> list[bytes]:
        return [t.numpy().tobytes() for t in sd.values()]

    # the get rows read a version logged (and raw objects put) once, from bytes no put row repeats
    ref = store.log_artifact(Artifact("sd-ref", type="model").add_state_dict(sd))
    fs.pipe(dict(zip(raw_keys, raw_bytes(), strict=True)))
    ref_keys = [f"{bucket}/ref-sd/{k}" for k in sd]
    fs.pipe(dict(zip(ref_keys, raw_bytes(), strict=True)))
    ready: list[bytes] = []
    logged: list[Any] = []

    def fresh_content() -> None:
        """New leading bytes in every tensor: a put row never finds its content stored."""
        for t in sd.values():
            t.view(torch.uint8)[:16] = torch.randint(0, 256, (16,), dtype=torch.uint8)

    def setup_raw() -> None:
        fresh_content()
        ready[:] = raw_bytes()  # raw s3fs is handed bytes, untimed
        with contextlib.suppress(FileNotFoundError):
            fs.rm(raw_keys)

    def setup_ours() -> None:
        fresh_content()
        for v in logged:  # last round's blobs: the server's memory holds one round at a time
            for f in v.files():
                if f.size > 1 << 20:
                    store.blobs.delete(f.digest)
        logged.clear()

    def put_ours() -> None:
        logged.append(store.log_artifact(Artifact("sd-put", type="model").add_state_dict(sd)))

    def put_raw_loop() -> None:
        for k, b in zip(raw_keys, ready, strict=True):
            fs.pipe_file(k, b)

    def get_ours() -> None:
        got = ref.load_state_dict()
        assert len(got) == n

    def get_raw_loop() -> None:
        for k in ref_keys:
            fs.cat_file(k)

    ops: list[Op] = [
        (
            "put sd: s3fs pipe(dict)",
            lambda: fs.pipe(dict(zip(raw_keys, ready, strict=True))),
            setup_raw,
        ),
        (
            "put sd: s3fs pipe(dict) + tobytes",
            lambda: fs.pipe(dict(zip(raw_keys, raw_bytes(), strict=True))),
            setup_raw,
        ),
        ("put sd: s3fs pipe_file loop", put_raw_loop, setup_raw),
        ("put sd: log_artifact", put_ours, setup_ours),
        ("get sd: s3fs cat(list)", lambda: fs.cat(ref_keys), None),
        ("get sd: s3fs cat_file loop", get_raw_loop, None),
        ("get sd: load_state_dict", get_ours, None),
    ]
    times = measure(ops, args.repeat)
    med = {k: statistics.median(v) for k, v in times.items()}
    rows = [
        (name, med[name], min(times[name]), f"{size / MIB / med[name]:.0f} MiB/s")
        for name, _, _ in ops
    ]
    print()
    print(load_line())
    print(
        f"moto S3 on {endpoint} (own process); state_dict of {n} float32 tensors, "
        f"{size / MIB:.0f} MiB in all; {args.repeat} interleaved runs, order rotated, odd runs backward"
    )
    print(table(rows, ("operation", "median s", "best s", "rate")))
    print()
    print("ratios of medians, ours / raw s3fs (target: within 10%, i.e. <= 1.10x)")
    for op, ours, refs in (
        (
            "put",
            "put sd: log_artifact",
            (
                "put sd: s3fs pipe(dict)",
                "put sd: s3fs pipe(dict) + tobytes",
                "put sd: s3fs pipe_file loop",
            ),
        ),
        (
            "get",
            "get sd: load_state_dict",
            ("get sd: s3fs cat(list)", "get sd: s3fs cat_file loop"),
        ),
    ):
        versus = ", ".join(f"{med[ours] / med[r]:.2f}x vs {r.split(': ')[1]}" for r in refs)
        print(f"  {op} state_dict  {versus}")


if __name__ == "__main__":
    main()
