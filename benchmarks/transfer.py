"""Issue 17's targets, each measured side by side in one run (interleaved, medians, ratios printed):

- export a version to .safetensors vs ``safetensors.torch.save_file`` of the same tensors (<= 1.1x);
- ingest a .safetensors file tensor by tensor (fresh store each time) vs ``cp`` of it (<= 1.2x);
- ``copy_to`` local -> S3 of N files vs raw s3fs ``put`` of the same files (fresh bucket prefix each
  time, on one moto server; within 10%);
- a linked checkout (``download(dest, link=True)``) of N small files vs a copying one (<= 0.5x).

    python benchmarks/transfer.py [--tensor-mib 256] [--sync-mib 64] [--sync-files 1000]
                                  [--link-files 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import artifacts  # noqa: E402
from artifacts import Artifact  # noqa: E402
from benchmarks._common import (  # noqa: E402
    interleaved_medians,
    load_line,
    table,
)


def tensors(total_mib: int) -> dict:
    import torch

    n = 16
    per = total_mib * 2**20 // n // 4
    g = torch.Generator().manual_seed(0)
    return {f"layer{i}.weight": torch.randn(per, generator=g) for i in range(n)}


def bench_safetensors(work: Path, mib: int, repeat: int) -> list[tuple]:
    from safetensors.torch import save_file

    ts = tensors(mib)
    store = artifacts.open_store(work / "st-store")
    v = store.log_artifact(Artifact("m", "model").add_state_dict(ts))
    src = work / "src.safetensors"
    save_file(ts, str(src))
    outs = {"ours": work / "ours.safetensors", "lib": work / "lib.safetensors"}

    def clean() -> None:
        for p in outs.values():
            p.unlink(missing_ok=True)

    export = interleaved_medians(
        {
            "save_safetensors": lambda: v.save_safetensors(outs["ours"]),
            "safetensors.save_file": lambda: save_file(ts, str(outs["lib"])),
        },
        repeat,
        setup=clean,
    )
    stores = []

    def fresh() -> None:
        for s in stores:
            shutil.rmtree(s, ignore_errors=True)
        (work / "cp.out").unlink(missing_ok=True)

    def ingest() -> None:
        d = work / f"in-{uuid.uuid4().hex[:8]}"
        stores.append(d)
        artifacts.open_store(d).log_artifact(Artifact("m", "model").add_safetensors(src))

    ing = interleaved_medians(
        {
            "add_safetensors+log": ingest,
            "cp": lambda: subprocess.run(["cp", str(src), str(work / "cp.out")], check=True),
        },
        repeat,
        setup=fresh,
    )
    fresh()
    return [
        (f"export {mib} MiB", export["save_safetensors"], export["safetensors.save_file"],
         export["save_safetensors"] / export["safetensors.save_file"], "<= 1.1"),
        (f"ingest {mib} MiB", ing["add_safetensors+log"], ing["cp"],
         ing["add_safetensors+log"] / ing["cp"], "<= 1.2"),
    ]  # fmt: skip


def bench_sync(work: Path, mib: int, files: int, repeat: int) -> list[tuple]:
    import s3fs

    data = work / "sync-files"
    data.mkdir()
    size = mib * 2**20 // files
    for i in range(files):
        (data / f"f{i:06d}.bin").write_bytes(os.urandom(size))
    local = artifacts.open_store(work / "sync-src")
    local.log_artifact(Artifact("d", "dataset").add_dir(data))
    from benchmarks._common import make_bucket
    from benchmarks.s3_transfer import moto_process, options

    # moto in a process of its own, as any S3 endpoint is: in this one it would share our GIL and
    # charge our upload threads for its request handling
    with moto_process() as endpoint:
        opts = options(endpoint)
        fs = s3fs.S3FileSystem(**opts)
        bucket = make_bucket(endpoint)

        def ours() -> None:
            dst = artifacts.open_store(f"s3://{bucket}/{uuid.uuid4().hex}", storage_options=opts)
            local.copy_to(dst)

        def raw() -> None:
            fs.put(str(data) + "/", f"{bucket}/{uuid.uuid4().hex}/", recursive=True)

        t = interleaved_medians({"copy_to": ours, "s3fs put": raw}, repeat)
    return [
        (f"sync {files} files / {mib} MiB", t["copy_to"], t["s3fs put"],
         t["copy_to"] / t["s3fs put"], "<= 1.1"),
    ]  # fmt: skip


def bench_link(work: Path, files: int, repeat: int) -> list[tuple]:
    store = artifacts.open_store(work / "link-store")
    art = Artifact("many", "dataset")
    for i in range(files):
        art.add_bytes(f"d{i % 100}/f{i:06d}.txt", f"file {i}\n".encode() * 20)
    v = store.log_artifact(art)
    dests: list[Path] = []

    def go(link: bool) -> None:
        d = work / f"co-{uuid.uuid4().hex[:8]}"
        dests.append(d)
        v.download(d, link=link)

    def clean() -> None:
        for d in dests:
            shutil.rmtree(d, ignore_errors=True)
        dests.clear()

    t = interleaved_medians({"link": lambda: go(True), "copy": lambda: go(False)}, repeat, clean)
    clean()
    return [(f"checkout {files} files", t["link"], t["copy"], t["link"] / t["copy"], "<= 0.5")]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tensor-mib", type=int, default=256)
    ap.add_argument("--sync-mib", type=int, default=64)
    ap.add_argument("--sync-files", type=int, default=1000)
    ap.add_argument("--link-files", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--only", choices=["safetensors", "sync", "link"])
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-transfer-", dir=REPO) as tmp:
        work = Path(tmp)
        os.environ.setdefault("ARTIFACTS_CACHE_DIR", str(work / "cache"))
        rows = []
        if a.only in (None, "safetensors"):
            rows += bench_safetensors(work, a.tensor_mib, a.repeat)
        if a.only in (None, "sync"):
            rows += bench_sync(work, a.sync_mib, a.sync_files, a.repeat)
        if a.only in (None, "link"):
            rows += bench_link(work, a.link_files, a.repeat)
    print(table(rows, ("case", "ours s", "baseline s", "ratio", "target")))
    print(load_line())


if __name__ == "__main__":
    main()
