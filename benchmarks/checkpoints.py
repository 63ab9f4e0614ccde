"""Checkpoints: bytes stored for N epochs of a GRU classifier vs N `torch.save` files, the same for a
fine-tune with the embedding frozen, and the time to log / restore a checkpoint vs `torch.save` /
`torch.load` of the same state_dict (both to the same local disk).

With ``--size`` (``1G``, ``256M``): a large state_dict of ``--tensors`` float32 tensors instead, logged
vs `torch.save` and safetensors' `save_file` (each to a new file), restored vs `load_file` (every byte
touched by both), and the time ``log_artifact(wait=False)`` blocks the caller vs a `clone` of every
tensor, and its time to commit vs the synchronous log plus that copy. Every round runs each contender
once, in rotated order (round k starts with contender k and runs the others forward in even rounds,
backward in odd ones, so no contender always follows the same one), each after the previous outputs
(files, and the blobs of the previous log) are deleted and ``sync`` ran. Both matter on this VM: memory
left free for a few seconds goes back to the host (virtio-balloon free page reporting) and costs a host
fault per page when touched again, so a 1 GiB write into memory a deletion just freed took 0.24 CPU-s
and one after a kept 1 GiB write 0.95 CPU-s; with a plain cyclic rotation each contender always
followed the same one, and ``wait=False`` always came right after ``log`` kept its blobs.

    python benchmarks/checkpoints.py [--epochs 10] [--vocab 20000] [--embed 100] [--hidden 256]
    python benchmarks/checkpoints.py --size 1G [--tensors 24] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

import artifacts  # noqa: E402
from benchmarks._common import (  # noqa: E402
    interleaved_medians,
    load_line,
    parse_size,
    table,
)


class GRUClassifier(torch.nn.Module):
    """The example's shape: Embedding -> GRU -> Linear (see examples/)."""

    def __init__(self, vocab: int, embed: int, hidden: int, classes: int = 2) -> None:
        super().__init__()
        self.embedding = torch.nn.Embedding(vocab, embed, padding_idx=0)
        self.gru = torch.nn.GRU(embed, hidden, batch_first=True)
        self.fc = torch.nn.Linear(hidden, classes)


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def step(model: torch.nn.Module, frozen: set[str]) -> None:
    """Stand-in for an epoch of training: every trainable tensor changes."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.split(".")[0] not in frozen:
                p.add_(torch.randn_like(p) * 1e-3)


def run_epochs(
    store: artifacts.Store,
    model: torch.nn.Module,
    name: str,
    epochs: int,
    frozen: set[str],
    tmp: Path,
) -> tuple[int, int, int]:
    """Returns (bytes our store grew by, bytes of N torch.save files, bytes of the changed tensors)."""
    blobs = Path(store.root.path) / "blobs"
    before = dir_bytes(blobs) if blobs.exists() else 0
    saved = changed = 0
    for epoch in range(epochs):
        step(model, frozen)
        sd = model.state_dict()
        store.log_artifact(
            artifacts.Artifact(name, "model", metadata={"epoch": epoch}).add_state_dict(sd)
        )
        f = tmp / f"{name}-{epoch}.pt"
        torch.save(sd, f)
        saved += f.stat().st_size
        changed += sum(
            t.numel() * t.element_size() for k, t in sd.items() if k.split(".")[0] not in frozen
        )
    return dir_bytes(blobs) - before, saved, changed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--vocab", type=int, default=20_000)
    ap.add_argument("--embed", type=int, default=100)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=None, help="rounds (default 41; 5 with --size)")
    ap.add_argument("--size", type=parse_size, default=None, help="a large state_dict instead")
    ap.add_argument("--tensors", type=int, default=24)
    args = ap.parse_args()
    torch.manual_seed(0)
    if args.size is not None:
        big(args.size, args.tensors, args.repeat or 5)
        return
    args.repeat = args.repeat or 41
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        os.environ["ARTIFACTS_CACHE_DIR"] = str(tmp / "cache")
        store = artifacts.open_store(str(tmp / "store"), user="bench")
        model = GRUClassifier(args.vocab, args.embed, args.hidden)
        full = sum(t.numel() * t.element_size() for t in model.state_dict().values())
        print(
            f"state_dict: {len(model.state_dict())} tensors, {full / 2**20:.2f} MiB "
            f"(embedding {args.vocab}x{args.embed}, GRU hidden {args.hidden})\n"
        )

        ours, saves, _ = run_epochs(store, model, "train", args.epochs, set(), tmp)
        ft_ours, ft_saves, ft_changed = run_epochs(
            store, model, "finetune", args.epochs, {"embedding"}, tmp
        )
        print(
            table(
                [
                    (f"train, {args.epochs} epochs", ours, saves, f"{ours / saves:.3f}", "-"),
                    (
                        f"fine-tune, embedding frozen, {args.epochs} epochs",
                        ft_ours,
                        ft_saves,
                        f"{ft_ours / ft_saves:.3f}",
                        f"{ft_ours / ft_changed:.3f}",
                    ),
                ],
                (
                    "checkpoints",
                    "bytes stored (ours)",
                    "bytes of torch.save files",
                    "ours/torch.save",
                    "ours/changed tensors",
                ),
            )
        )
        print()

        sd = model.state_dict()
        pt = tmp / "one.pt"
        torch.save(sd, pt)
        counter = iter(range(10**9))

        def perturb() -> None:  # fresh content each time so nothing is deduplicated away
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(1e-6)

        def log_new() -> None:
            store.log_artifact(
                artifacts.Artifact(f"timing{next(counter)}", "model").add_state_dict(
                    model.state_dict()
                )
            )

        # torch.save to a new file each time keeps every checkpoint, as the store does; overwriting
        # one file is cheaper here (a new file's pages cost about twice as much to write on this VM)
        # in rotated order (round k starts with contender k): whichever runs first after another's
        # writes pays for its dirty pages, and that is each of them in turn. Overwriting is timed in
        # a rotation of its own: ext4 writes an overwritten file's data out at close
        # (auto_da_alloc), and the next fsync on the disk (the durable commit of a log) waits for
        # that write, a cost no training loop that logs instead of saving pays
        cpu: dict[str, list[float]] = {}

        def save_new() -> None:
            torch.save(model.state_dict(), tmp / f"epoch{next(counter)}.pt")

        runs = rotated({"save": save_new, "log": log_new}, args.repeat, lambda _: perturb(), cpu)
        runs |= {
            k: v
            for k, v in rotated(
                {
                    "save, overwrite rotation": save_new,
                    "overwrite": lambda: torch.save(model.state_dict(), pt),
                },
                args.repeat,
                lambda _: perturb(),
                cpu,
            ).items()
        }
        w = {k: statistics.median(v) for k, v in runs.items()}
        version = store.artifact("train:latest")
        r = interleaved_medians(
            {
                "load": lambda: torch.load(pt, weights_only=True),
                "restore": lambda: version.load_state_dict(),
            },
            args.repeat,
        )
        t_save, t_log, t_load, t_restore = w["save"], w["log"], r["load"], r["restore"]
        restored = version.load_state_dict()
        assert restored.keys() == sd.keys()
        print(
            table(
                [
                    (
                        "log checkpoint vs torch.save to a new file (keeps every epoch)",
                        f"{t_log * 1000:.1f}",
                        f"{t_save * 1000:.1f}",
                        f"{t_log / t_save:.2f}",
                    ),
                    (
                        "torch.save overwriting one file vs to a new file (own rotation)",
                        f"{w['overwrite'] * 1000:.1f}",
                        f"{w['save, overwrite rotation'] * 1000:.1f}",
                        f"{w['overwrite'] / w['save, overwrite rotation']:.2f}",
                    ),
                    (
                        "log checkpoint vs torch.save overwriting one file (both vs a new file)",
                        f"{t_log * 1000:.1f}",
                        f"{w['overwrite'] * 1000:.1f}",
                        f"{t_log / t_save * w['save, overwrite rotation'] / w['overwrite']:.2f}",
                    ),
                    (
                        "restore (verified, no pickle) vs torch.load",
                        f"{t_restore * 1000:.1f}",
                        f"{t_load * 1000:.1f}",
                        f"{t_restore / t_load:.2f}",
                    ),
                ],
                ("operation (median)", "ours ms", "torch ms", "ratio"),
            )
        )
        c = {k: statistics.median(v) * 1000 for k, v in cpu.items()}
        print(
            f"CPU ms (all threads, medians): log {c['log']:.1f}, torch.save {c['save']:.1f}, "
            f"overwrite {c['overwrite']:.1f}; {load_line()}"
        )


def touch(sd: dict[str, torch.Tensor]) -> float:
    """Read every byte of a restored state_dict (a memory-mapped tensor pays its page faults here):
    a float32 sum, vectorised (an int32 view's sum widens to int64 and took 1.3 CPU-s per GiB)."""
    return sum(float(t.sum()) for t in sd.values())


def rotated(
    fns: dict[str, Callable[[], Any]],
    rounds: int,
    between: Callable[[str], Any],
    cpu: dict[str, list[float]],
) -> dict[str, list[float]]:
    """Wall times of each contender over ``rounds``, round k starting with contender k and going
    forward in even rounds, backward in odd ones (CPU times of the whole process, every thread, go
    to ``cpu``); ``between(name)`` (untimed) runs before every contender."""
    names = list(fns)
    times: dict[str, list[float]] = {k: [] for k in names}
    n = len(names)
    for r in range(rounds):
        step = -1 if r % 2 else 1
        for name in [names[(r + step * j) % n] for j in range(n)]:
            between(name)
            t, c = time.perf_counter(), time.process_time()
            fns[name]()
            times[name].append(time.perf_counter() - t)
            cpu.setdefault(name, []).append(time.process_time() - c)
    return times


def ratios(
    times: dict[str, list[float]], cpu: dict[str, list[float]], refs: tuple[str, ...]
) -> list[tuple[str, ...]]:
    med = {k: statistics.median(v) for k, v in times.items()}
    return [
        (
            k,
            f"{med[k]:.3f}",
            f"{statistics.median(cpu[k]):.3f}" if k in cpu else "-",
            " ".join(f"{x:.2f}" for x in v),
            *(f"{med[k] / med[r]:.2f}" for r in refs),
        )
        for k, v in times.items()
    ]


def big(size: int, n: int, rounds: int) -> None:
    """The 1 GiB targets of issue 16: see the module docstring."""
    from safetensors.torch import load_file, save_file

    sd = {f"layer{i}.weight": torch.randn(size // n // 4) for i in range(n)}
    total = sum(t.numel() * 4 for t in sd.values())
    print(
        f"state_dict: {n} float32 tensors, {total / 2**20:.0f} MiB; {rounds} rounds\n", flush=True
    )
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as t:
        tmp = Path(t)
        os.environ["ARTIFACTS_CACHE_DIR"] = str(tmp / "cache")
        store = artifacts.open_store(str(tmp / "store"), user="bench")
        run = store.start_run(project="bench")
        out = tmp / "out"
        counter = iter(range(10**9))
        blocked: list[float] = []
        cpu: dict[str, list[float]] = {}

        def fresh(_: str) -> None:  # new content for every contender (nothing deduplicated)
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            for blob in (tmp / "store" / "blobs").rglob("*"):  # the last log's tensors, as files
                if blob.is_file() and blob.stat().st_size >= 1 << 20:  # (manifests stay)
                    blob.unlink()
            with torch.no_grad():
                for x in sd.values():
                    x.add_(1e-3)
            os.sync()

        def log() -> None:
            store.log_artifact(
                artifacts.Artifact(f"big{next(counter)}", "model").add_state_dict(sd)
            )

        def log_nowait() -> None:
            # the whole background upload, and (in `blocked`) how long the caller waited
            t0 = time.perf_counter()
            h = run.log_artifact(
                artifacts.Artifact(f"bg{next(counter)}", "model").add_state_dict(sd), wait=False
            )
            blocked.append(time.perf_counter() - t0)
            h.result()

        w = rotated(
            {
                "torch.save": lambda: torch.save(sd, out / "a.pt"),
                "save_file": lambda: save_file(sd, str(out / "a.safetensors")),
                "log": log,
                "log wait=False, to commit": log_nowait,
                "clone every tensor": lambda: {k: x.clone() for k, x in sd.items()},
            },
            rounds,
            fresh,
            cpu,
        )
        w["log wait=False, caller blocked"] = blocked
        print(
            table(
                ratios(w, cpu, ("torch.save", "save_file", "clone every tensor")),
                (
                    "write (new files)",
                    "median s",
                    "CPU s",
                    "each round",
                    "/torch.save",
                    "/save_file",
                    "/clone",
                ),
            )
        )
        commit, sync_log = (statistics.median(w[k]) for k in ("log wait=False, to commit", "log"))
        copy = statistics.median(blocked)
        print(
            f"wait=False to commit {commit:.3f} s vs log + caller blocked {sync_log:.3f} + "
            f"{copy:.3f} = {sync_log + copy:.3f} s: {commit / (sync_log + copy):.2f}x"
        )
        print(load_line(), "\n", flush=True)

        # restore: a version older than 2 s (the stat cache vouches for its blobs), one logged just
        # before (its blobs were written by this process), and load_file of a page-cached file
        save_file(sd, str(tmp / "r.safetensors"))
        old = store.log_artifact(artifacts.Artifact("old", "model").add_state_dict(sd))
        touch(old.load_state_dict())
        time.sleep(2.5)
        new: list[Any] = []

        def before(name: str) -> None:
            if name == "restore, logged just before":
                with torch.no_grad():
                    for x in sd.values():
                        x.add_(1e-3)
                new[:] = [
                    store.log_artifact(
                        artifacts.Artifact(f"new{next(counter)}", "model").add_state_dict(sd)
                    )
                ]

        r = rotated(
            {
                "load_file": lambda: touch(load_file(str(tmp / "r.safetensors"))),
                "restore, older than 2 s": lambda: touch(old.load_state_dict()),
                "restore, logged just before": lambda: touch(new[0].load_state_dict()),
            },
            rounds,
            before,
            cpu,
        )
        print(
            table(
                ratios(r, cpu, ("load_file",)),
                ("restore, every byte touched", "median s", "CPU s", "each round", "/load_file"),
            )
        )
        print(load_line(), flush=True)
        run.finish()


if __name__ == "__main__":
    main()
