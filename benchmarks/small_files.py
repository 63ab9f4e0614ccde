"""Many small files (default 20,000 x 4 KiB in 100 directories), measured in one run:

- ours: ``open_store`` + ``Artifact.add_dir`` + ``log_artifact`` into a fresh store with a fresh
  per-user cache (stat cache and index empty), in this interpreter;
- ``cp -r`` of the directory (the physical floor);
- ``dvc add`` of the directory in a fresh ``git init`` + ``dvc init`` repository, when an anchors venv
  is given (``--anchors-python``, see ``anchors.py``); only ``dvc add`` itself is timed;
- re-putting the unchanged directory (ours: the stat cache; dvc: its state DB), in process as timed
  above (imports done), and as a whole new process: ``artifacts put NAME DIR`` through the CLI, and
  dvc's snippet process (its interpreter, imports and ``dvc add``); ``python -c pass`` beside them
  is this machine's interpreter start-up at that moment;
- ``get`` of the version just put into a fresh directory (``Version.download``), in process, beside
  ``cp -r`` of the source: the same bytes read and as many files created;
- with ``--before CHECKOUT``: the first put, re-put and get of another checkout of this project (say
  main before a change), each in a child process with that checkout first on ``sys.path`` (imports
  excluded from the time), and the same child run with this checkout ("ours, child"), so the two
  are measured alike in the same rounds;
- with ``--rss N``: peak RSS of a put of N files (default off; 200,000 for the issue's target), in a
  subprocess (``ru_maxrss``).

The contenders run in rotated order in every round (round k starts with contender k), each after the
previous outputs are deleted and ``sync`` ran, so a slow spell of this shared VM or the dirty pages of
the previous run hit every one alike. The table shows medians (and the best run) and ratios.

    python benchmarks/small_files.py [--files 20000] [--dirs 100] [--size 4096] [--repeat 5]
        [--anchors-python /tmp/anchors/bin/python] [--before /path/to/other/checkout] [--rss 200000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import artifacts  # noqa: E402
from benchmarks._common import load_line, table  # noqa: E402
from benchmarks.anchors import (  # noqa: E402
    DVC,
    AnchorFailed,
    anchor_env,
    check_call,
    fresh_dir,
    rm,
    run_snippet,  # noqa: E402
)

RSS_CHILD = """
import os, resource, sys, time
sys.path.insert(0, sys.argv[1])
os.environ["ARTIFACTS_CACHE_DIR"] = sys.argv[3] + "/cache"
import artifacts
store = artifacts.open_store(sys.argv[3] + "/store", user="bench")
art = artifacts.Artifact("many", type="dataset")
art.add_dir(sys.argv[2])
t = time.perf_counter()
store.log_artifact(art)
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


TIMED_CHILD = """
import os, sys, time
sys.path.insert(0, sys.argv[1])
os.environ["ARTIFACTS_CACHE_DIR"] = sys.argv[3] + "/cache"
import artifacts
out = []
for step in ("first", "reput", "get"):
    with artifacts.open_store(sys.argv[3] + "/store", user="bench") as store:
        t = time.perf_counter()
        if step == "get":
            store.artifact("many").download(sys.argv[3] + "/got")
        else:
            art = artifacts.Artifact("many", type="dataset")
            art.add_dir(sys.argv[2])
            store.log_artifact(art)
        out.append(time.perf_counter() - t)
print(*out)
"""


def make_tree(top: Path, files: int, dirs: int, size: int) -> None:
    """``files`` random files spread over ``dirs`` directories, mtimes 60 s in the past (so neither
    our stat cache nor dvc's state refuses them as too fresh); kept between runs."""
    marker = top / f".complete-{files}-{dirs}-{size}"
    if marker.exists():
        return
    rm(top)
    print(f"writing {files} files of {size} bytes into {top} ...", flush=True)
    old = time.time() - 60
    for i in range(files):
        d = top / f"d{i % dirs:04d}"
        if i < dirs:
            d.mkdir(parents=True)
        p = d / f"f{i:07d}.bin"
        p.write_bytes(os.urandom(size))
        os.utime(p, (old, old))
    marker.touch()


class Bench:
    def __init__(self, src: Path, work: Path, python: str | None) -> None:
        self.src, self.work, self.python = src, work, python

    def ours(self) -> float:
        box = fresh_dir(self.work / "ours")
        os.environ["ARTIFACTS_CACHE_DIR"] = str(box / "cache")
        os.sync()
        t = time.perf_counter()
        self._put(box)
        return time.perf_counter() - t

    def ours_reput(self) -> float:
        box = self.work / "ours"
        os.environ["ARTIFACTS_CACHE_DIR"] = str(box / "cache")
        t = time.perf_counter()
        self._put(box)
        return time.perf_counter() - t

    def ours_reput_cli(self) -> float:
        """``artifacts put many SRC`` in a new process, as a user types it (the console script's
        import of ``artifacts.cli.main``), onto the store and cache the in-process put made."""
        box = self.work / "ours"
        env = {**os.environ, "PYTHONPATH": str(REPO), "ARTIFACTS_CACHE_DIR": str(box / "cache")}
        cmd = [sys.executable, "-c", "import sys; from artifacts.cli import main; sys.exit(main())"]
        args = [
            "--store",
            str(box / "store"),
            "--user",
            "bench",
            "-q",
            "put",
            "many",
            str(self.src),
        ]
        t = time.perf_counter()
        subprocess.run([*cmd, *args], env=env, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - t

    @staticmethod
    def python_start() -> float:
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        return time.perf_counter() - t

    def _put(self, box: Path) -> None:
        with artifacts.open_store(box / "store", user="bench") as store:
            art = artifacts.Artifact("many", type="dataset")
            art.add_dir(self.src)
            store.log_artifact(art)

    def ours_get(self) -> float:
        """``download`` of the version the in-process put made, into a fresh directory."""
        box = self.work / "ours"
        os.environ["ARTIFACTS_CACHE_DIR"] = str(box / "cache")
        rm(box / "got")
        with artifacts.open_store(box / "store", user="bench") as store:
            v = store.artifact("many")
            os.sync()
            t = time.perf_counter()
            v.download(box / "got")
            return time.perf_counter() - t

    def child(self, repo: Path, tag: str) -> tuple[float, float, float]:
        """First put, re-put and get by checkout ``repo`` in a child process (see module)."""
        box = fresh_dir(self.work / f"child-{tag}")
        os.sync()
        out = subprocess.run(
            [sys.executable, "-c", TIMED_CHILD, str(repo), str(self.src), str(box)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        rm(box)
        first, reput, get = (float(x) for x in out[-3:])
        return first, reput, get

    def cp(self) -> float:
        box = fresh_dir(self.work / "cp")
        os.sync()
        t = time.perf_counter()
        subprocess.run(["cp", "-r", str(self.src), str(box / "out")], check=True)
        return time.perf_counter() - t

    def dvc(self) -> float:
        assert self.python
        box = fresh_dir(self.work / "dvc")
        env = anchor_env(box)
        repo = fresh_dir(box / "repo")
        check_call(["git", "init", "-q"], env, repo, 600)
        check_call([self.python, "-m", "dvc", "init", "-q"], env, repo, 600)
        subprocess.run(["cp", "-a", str(self.src), str(repo / "data")], check=True)
        os.sync()
        res, _ = run_snippet(self.python, DVC, [str(repo), "data"], env, 1200, "dvc add")
        return float(res["seconds"])

    def dvc_readd(self) -> tuple[float, float]:
        """``dvc add`` itself, and its whole process (interpreter, imports, add)."""
        assert self.python
        box = self.work / "dvc"
        res, process = run_snippet(
            self.python, DVC, [str(box / "repo"), "data"], anchor_env(box), 1200, "dvc re-add"
        )
        return float(res["seconds"]), process


def rss(files: int, work: Path) -> tuple[float, float]:
    """Seconds and peak RSS (MiB) of one put of ``files`` 1 KiB files, in a fresh subprocess."""
    src = work / f"rss-src-{files}"
    make_tree(src, files, max(1, files // 200), 1024)
    box = fresh_dir(work / "rss")
    out = subprocess.run(
        [sys.executable, "-c", RSS_CHILD, str(REPO), str(src), str(box)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    rm(box)
    return float(out[0]), int(out[1]) / 1024  # ru_maxrss is in KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--files", type=int, default=20_000)
    ap.add_argument("--dirs", type=int, default=100)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--anchors-python", default=os.environ.get("ANCHORS_PYTHON"))
    ap.add_argument("--rss", type=int, default=0, help="also measure peak RSS of a put of N files")
    ap.add_argument("--before", help="another checkout to measure alike, in child processes")
    ap.add_argument("--dir", default=tempfile.gettempdir())
    args = ap.parse_args()
    work = Path(args.dir) / "artifacts-bench-small"
    work.mkdir(parents=True, exist_ok=True)
    src = work / f"src-{args.files}x{args.size}"
    make_tree(src, args.files, args.dirs, args.size)
    b = Bench(src, work, args.anchors_python)
    fresh: dict[str, Callable[[], float]] = {"ours": b.ours, "cp -r": b.cp}
    if args.anchors_python:
        fresh["dvc add"] = b.dvc
    children = {"ours, child": REPO, "before, child": Path(args.before)} if args.before else {}
    again = ["ours re-put", "ours re-put, CLI process", "python -c pass", "ours get"]
    again += ["dvc re-add", "dvc re-add, process"]
    again += [f"{tag} {step}" for tag in children for step in ("first", "re-put", "get")]
    times: dict[str, list[float]] = {k: [] for k in [*fresh, *again]}
    names = [*fresh, *children]  # a child contender times its own steps
    for r in range(args.repeat):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            if name in children:
                steps = b.child(children[name], name.split(",")[0])
                for step, secs in zip(("first", "re-put", "get"), steps, strict=True):
                    times[f"{name} {step}"].append(secs)
                continue
            try:
                times[name].append(fresh[name]())
            except AnchorFailed as e:
                print(f"{name}: {e}")
                continue
            if name == "ours":
                times["ours re-put"].append(b.ours_reput())
                times["python -c pass"].append(b.python_start())
                times["ours re-put, CLI process"].append(b.ours_reput_cli())
                times["ours get"].append(b.ours_get())
            elif name == "dvc add":
                inner, process = b.dvc_readd()
                times["dvc re-add"].append(inner)
                times["dvc re-add, process"].append(process)
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in times.items() if v))
    med = {k: statistics.median(v) for k, v in times.items() if v}
    rows = [(k, med[k], min(times[k]), med[k] / med["cp -r"]) for k in med]
    print(f"\n{args.files} files of {args.size} bytes in {args.dirs} dirs, {args.repeat} rounds")
    print(table(rows, ("contender", "median s", "best s", "x cp -r")))
    if "before, child first" in med:
        print(
            "before / ours (children): "
            + ", ".join(
                f"{step} {med[f'before, child {step}'] / med[f'ours, child {step}']:.2f}x"
                for step in ("first", "re-put", "get")
            )
        )
    if "dvc add" in med:
        print(
            f"dvc add / ours: {med['dvc add'] / med['ours']:.2f}x; "
            f"dvc re-add / ours re-put: {med['dvc re-add'] / med['ours re-put']:.1f}x in process, "
            f"{med['dvc re-add, process'] / med['ours re-put, CLI process']:.1f}x as processes"
        )
    if args.rss:
        secs, mib = rss(args.rss, work)
        print(f"put of {args.rss} files of 1 KiB: {secs:.1f} s, peak RSS {mib:.0f} MiB")
    print(load_line())


if __name__ == "__main__":
    main()
