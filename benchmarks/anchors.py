"""Ingest of one large local file (default 256 MiB, page-cached) by us vs the anchors users know, in one run:

- ours: ``artifacts.open_store(<fresh dir>)`` + ``Artifact(...).add_file(...)`` + ``store.log_artifact``,
  in this interpreter, with a fresh per-user cache dir each run (so the stat cache starts empty);
- ``cp`` of the same file: the physical floor;
- ``dvc add`` of the file in a fresh ``git init`` + ``dvc init`` repository (only ``dvc add`` is timed);
- W&B offline: ``wandb.init(mode="offline")``, then ``wandb.Artifact(...).add_file(path)`` +
  ``run.log_artifact(art)`` + ``run.finish()`` are timed;
- MLflow: ``mlflow.set_tracking_uri("file:...")``, then ``with mlflow.start_run(): mlflow.log_artifact(path)``
  is timed.

The anchors run in a separate virtual environment (they pull in hundreds of packages), given by
``--anchors-python`` or ``$ANCHORS_PYTHON``:

    python -m venv /tmp/anchors && /tmp/anchors/bin/pip install dvc wandb mlflow-skinny

Each anchor run is a fresh subprocess of that python, with HOME, XDG and tool cache dirs pointed into a fresh
sandbox; the snippet times itself after its imports, so interpreter start-up and imports are reported apart
("import s"), and the whole process ("process s") too. An anchor that is not installed is skipped with a
line saying so; the script still exits 0.

Also measured: re-adding the unchanged file (ours: stat cache; dvc: its state DB), and the bytes each tool
leaves on disk besides the input file. The input file's mtime is set 60 s into the past so neither our stat
cache nor dvc's state DB refuses it as too fresh. Each timed run starts after ``sync`` (outside the timing);
the runs of the different tools are interleaved, so background load hits them alike. Medians (and best).

    python benchmarks/anchors.py [--size 256M] [--repeat 3] [--anchors-python /tmp/anchors/bin/python]
    python benchmarks/anchors.py --workload files [--files 20000] ...
    python benchmarks/anchors.py --workload checkpoint [--size 1G] [--tensors 24] ...

The other two workloads of issue 16: ``--workload files`` ingests a directory of small files (``cp -r``,
ours ``add_dir``, ``dvc add`` of the directory, W&B ``add_dir``, MLflow ``log_artifacts``), and
``--workload checkpoint`` a state_dict in memory: ours logs it with ``add_state_dict``; the floor is
``torch.save`` to a new file, and each anchor is timed as that ``torch.save`` plus its own ingest of
the file (what checkpointing with it costs; the anchors' venv needs no torch).

``BENCH_VERBOSE=1`` also prints every run's time. MLflow 3.x refuses ``file:`` tracking URIs unless
``MLFLOW_ALLOW_FILE_STORE=true``, which the script sets for its subprocess.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import artifacts  # noqa: E402
from benchmarks._common import (  # noqa: E402
    load_line,
    make_random_file,
    parse_size,
    read_through,
    table,
)

MIB = 1 << 20
CHUNK = 8 << 20
MARK = "@@RESULT "  # the snippets print their result on a line starting with this
VENV_HINT = (
    "create a venv: python -m venv /tmp/anchors && "
    "/tmp/anchors/bin/pip install dvc wandb mlflow-skinny"
)
ANCHORS = {"dvc": "dvc", "wandb": "wandb", "mlflow": "mlflow"}  # anchor -> module to import

PROBE = """
import importlib.metadata as md, importlib.util as u, json, sys
out = {}
for anchor, mod in json.loads(sys.argv[1]).items():
    ok = u.find_spec(mod) is not None
    ver = None
    for dist in (anchor, anchor + "-skinny"):
        try:
            ver = md.version(dist)
            break
        except md.PackageNotFoundError:
            pass
    out[anchor] = ver if ok else None
print("@@RESULT " + json.dumps(out))
"""

# argv: repo dir, file (relative to the repo). Imports what `dvc add` needs before the clock starts.
DVC = """
import time
t0 = time.perf_counter()
import json, os, sys
import dvc.cli, dvc.repo, dvc.commands.add
t1 = time.perf_counter()
os.chdir(sys.argv[1])
rc = dvc.cli.main(["add", "--quiet", sys.argv[2]])
t2 = time.perf_counter()
if rc:
    sys.exit(f"dvc add exited {rc}")
print("@@RESULT " + json.dumps({"import": t1 - t0, "seconds": t2 - t1}))
"""

# argv: sandbox dir, file. Timed: Artifact creation through run.finish().
WANDB = """
import time
t0 = time.perf_counter()
import json, sys
import wandb
t1 = time.perf_counter()
run = wandb.init(project="anchors-bench", dir=sys.argv[1], mode="offline")
t2 = time.perf_counter()
art = wandb.Artifact("bench-file", type="dataset")
import os
art.add_dir(sys.argv[2]) if os.path.isdir(sys.argv[2]) else art.add_file(sys.argv[2])
t3 = time.perf_counter()
run.log_artifact(art)
t4 = time.perf_counter()
run.finish()
t5 = time.perf_counter()
print("@@RESULT " + json.dumps({"import": t1 - t0, "seconds": t5 - t2, "parts": {
    "wandb.init": t2 - t1, "Artifact+add_file": t3 - t2, "log_artifact": t4 - t3, "finish": t5 - t4}}))
"""

# argv: tracking dir, file. Timed: start_run + log_artifact + end of run.
MLFLOW = """
import time
t0 = time.perf_counter()
import json, sys, warnings
warnings.simplefilter("ignore")
import mlflow
t1 = time.perf_counter()
mlflow.set_tracking_uri("file:" + sys.argv[1])
t2 = time.perf_counter()
with mlflow.start_run():
    t3 = time.perf_counter()
    import os
    (mlflow.log_artifacts if os.path.isdir(sys.argv[2]) else mlflow.log_artifact)(sys.argv[2])
    t4 = time.perf_counter()
t5 = time.perf_counter()
print("@@RESULT " + json.dumps({"import": t1 - t0, "seconds": t5 - t2, "parts": {
    "start_run": t3 - t2, "log_artifact": t4 - t3, "end_run": t5 - t4}}))
"""


class AnchorFailed(Exception):
    pass


def rm(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def fresh_dir(path: Path) -> Path:
    rm(path)
    path.mkdir(parents=True)
    return path


def disk_bytes(path: Path, exclude: Collection[tuple[int, int]] = ()) -> int:
    """Bytes allocated below ``path`` (st_blocks), each inode counted once, ``exclude`` (dev, ino) not."""
    seen = set(exclude)
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in filenames + dirnames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
            total += st.st_blocks * 512
    return total


def big_files(path: Path, min_size: int) -> list[str]:
    """Files of at least ``min_size`` bytes below ``path``, as 'relative/path (N MiB, links=L)'."""
    out = []
    for p in sorted(path.rglob("*")):
        try:
            st = p.lstat()
        except OSError:
            continue
        if p.is_file() and not p.is_symlink() and st.st_size >= min_size:
            out.append(f"{p.relative_to(path)} ({st.st_size / MIB:.0f} MiB, links={st.st_nlink})")
    return out


def anchor_env(sandbox: Path) -> dict[str, str]:
    """Every per-user directory the anchors write to, inside ``sandbox``; no telemetry, no network."""
    home = sandbox / "home"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME") and not k.startswith("WANDB_")
    }
    env.update(
        HOME=str(home),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local/share"),
        XDG_STATE_HOME=str(home / ".local/state"),
        DVC_NO_ANALYTICS="1",
        DVC_SITE_CACHE_DIR=str(sandbox / "dvc-site-cache"),
        DVC_GLOBAL_CONFIG_DIR=str(home / ".config/dvc"),
        DVC_SYSTEM_CONFIG_DIR=str(sandbox / "dvc-system"),
        WANDB_MODE="offline",
        WANDB_SILENT="true",
        WANDB_CONSOLE="off",
        WANDB_DISABLE_GIT="true",
        WANDB_DISABLE_CODE="true",
        WANDB_DIR=str(sandbox / "wandb"),
        WANDB_CACHE_DIR=str(sandbox / "wandb-cache"),
        WANDB_DATA_DIR=str(sandbox / "wandb-data"),
        WANDB_CONFIG_DIR=str(sandbox / "wandb-config"),
        WANDB_ARTIFACT_DIR=str(sandbox / "wandb-artifacts"),
        MLFLOW_ENABLE_ASYNC_LOGGING="false",
        MLFLOW_ALLOW_FILE_STORE="true",  # MLflow 3.x refuses "file:" tracking URIs without it
        GIT_CONFIG_NOSYSTEM="1",
        PYTHONWARNINGS="ignore",
    )
    for d in ("home", "wandb", "wandb-cache", "wandb-data", "wandb-config"):
        (sandbox / d).mkdir(parents=True, exist_ok=True)
    return env


def run_snippet(
    python: str, code: str, args: list[str], env: dict[str, str], timeout: float, what: str
) -> tuple[dict[str, Any], float]:
    """Run ``code`` in ``python``; returns (its result dict, the whole process's wall seconds)."""
    t = time.perf_counter()
    try:
        proc = subprocess.run(
            [python, "-c", code, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as e:
        raise AnchorFailed(f"{what} timed out after {timeout:.0f} s") from e
    except OSError as e:
        raise AnchorFailed(f"{what}: cannot run {python}: {e}") from e
    wall = time.perf_counter() - t
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARK):
            return json.loads(line[len(MARK) :]), wall
    tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-3:]
    raise AnchorFailed(f"{what} exited {proc.returncode}: " + " | ".join(tail))


def check_call(cmd: list[str], env: dict[str, str], cwd: Path, timeout: float) -> None:
    try:
        proc = subprocess.run(
            cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as e:
        raise AnchorFailed(f"{' '.join(cmd)} timed out") from e
    if proc.returncode:
        tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-3:]
        raise AnchorFailed(f"{' '.join(cmd)} exited {proc.returncode}: " + " | ".join(tail))


def inodes(path: Path) -> set[tuple[int, int]]:
    """(dev, ino) of a file, or of every file below a directory."""
    paths = [path] if not path.is_dir() else [p for p in path.rglob("*") if p.is_file()]
    return {(st.st_dev, st.st_ino) for st in (p.stat() for p in paths)}


def make_tree(path: Path, files: int, dirs: int, size: int) -> None:
    """``files`` random files of ``size`` bytes in ``dirs`` directories, unless already there."""
    if path.is_dir() and sum(1 for p in path.rglob("*") if p.is_file()) == files:
        return
    rm(path)
    print(f"writing {files} files of {size} bytes in {dirs} dirs to {path} ...", flush=True)
    for i in range(files):
        d = path / f"d{i % dirs:03d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:06d}.bin").write_bytes(os.urandom(size))


def make_state_dict(size: int, tensors: int) -> dict[str, Any]:
    """``tensors`` float32 tensors of ``size`` bytes in all (torch imported only for this workload)."""
    import torch

    torch.manual_seed(0)
    return {f"layer{i}.weight": torch.randn(size // 4 // tensors) for i in range(tensors)}


class Bench:
    """One workload: a file, a directory (``src`` is one), or a checkpoint (``state_dict``: ours
    logs it with `add_state_dict`; every other tool is timed as `torch.save` to a new file plus its
    own ingest of that file, which is what using it for a checkpoint costs)."""

    def __init__(
        self,
        src: Path,
        work: Path,
        python: str | None,
        timeout: float,
        state_dict: dict[str, Any] | None = None,
    ) -> None:
        self.src = src
        self.work = work
        self.python = python
        self.timeout = timeout
        self.state_dict = state_dict
        self.src_keys = inodes(src) if state_dict is None else set()

    def _add(self, art: artifacts.Artifact) -> None:
        if self.state_dict is not None:
            art.add_state_dict(self.state_dict)
        elif self.src.is_dir():
            art.add_dir(self.src)
        else:
            art.add_file(self.src)

    def _save(self, path: Path) -> float:
        """`torch.save` of the checkpoint to a new file (timed), for the tools that take files."""
        import torch

        os.sync()
        t = time.perf_counter()
        torch.save(self.state_dict, path)
        return time.perf_counter() - t

    # -- ours and cp, in this process ------------------------------------------------------------
    def ours(self, keep: bool = False) -> dict[str, Any]:
        box = fresh_dir(self.work / "ours")
        os.environ["ARTIFACTS_CACHE_DIR"] = str(box / "cache")  # stat cache + index start empty
        os.sync()
        t0 = time.perf_counter()
        store = artifacts.open_store(box / "store", user="bench")
        try:
            t1 = time.perf_counter()
            art = artifacts.Artifact("bench-file", type="dataset")
            self._add(art)
            t2 = time.perf_counter()
            store.log_artifact(art)
            t3 = time.perf_counter()
        finally:
            store.close()
        res: dict[str, Any] = {
            "seconds": t3 - t0,
            "disk": disk_bytes(box),
            "parts": {"open_store": t1 - t0, "Artifact+add": t2 - t1, "log_artifact": t3 - t2},
        }
        if keep:
            res["files"] = big_files(box, MIB)
        else:
            rm(box)
        return res

    def ours_readd(self, repeat: int) -> list[float]:
        """Re-log the unchanged file into the store of the last ``ours`` run (kept): stat cache hits."""
        box = self.work / "ours"
        os.environ["ARTIFACTS_CACHE_DIR"] = str(box / "cache")
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            store = artifacts.open_store(box / "store", user="bench")
            try:
                art = artifacts.Artifact("bench-file", type="dataset")
                self._add(art)
                store.log_artifact(art)
                times.append(time.perf_counter() - t)
            finally:
                store.close()
        return times

    def cp(self) -> dict[str, Any]:
        box = fresh_dir(self.work / "cp")
        if self.state_dict is not None:  # the floor of a checkpoint: torch.save to a new file
            seconds = self._save(box / "model.pt")
            res = {"seconds": seconds, "disk": disk_bytes(box)}
            rm(box)
            return res
        os.sync()
        t = time.perf_counter()
        subprocess.run(
            ["cp", "-r", str(self.src), str(box / "out")], check=True, timeout=self.timeout
        )
        seconds = time.perf_counter() - t
        res = {"seconds": seconds, "disk": disk_bytes(box)}
        rm(box)
        return res

    # -- the anchors, in subprocesses of the anchors' python ---------------------------------------
    def probe(self) -> dict[str, str | None]:
        if not self.python:
            return dict.fromkeys(ANCHORS)
        env = anchor_env(fresh_dir(self.work / "probe"))
        try:
            found, _ = run_snippet(
                self.python, PROBE, [json.dumps(ANCHORS)], env, 120, "probing the anchors python"
            )
        except AnchorFailed as e:
            print(f"cannot use --anchors-python {self.python}: {e}")
            found = dict.fromkeys(ANCHORS)
        rm(self.work / "probe")
        return found

    def dvc(self, keep: bool = False) -> dict[str, Any]:
        assert self.python
        box = fresh_dir(self.work / "dvc")
        env = anchor_env(box)
        repo = fresh_dir(box / "repo")
        check_call(["git", "init", "-q"], env, repo, self.timeout)
        check_call([self.python, "-m", "dvc", "init", "-q"], env, repo, self.timeout)
        saved = 0.0
        if self.state_dict is not None:
            saved = self._save(repo / self.name)
        elif self.src.is_dir():
            shutil.copytree(self.src, repo / self.name)  # copy2: keeps the backdated mtimes
        else:
            shutil.copy2(self.src, repo / self.name)  # keeps the backdated mtime
        os.sync()
        res, wall = run_snippet(self.python, DVC, [str(repo), self.name], env, self.timeout, "dvc add")
        self._with_save(res, saved)
        res["process"] = wall
        res["disk"] = disk_bytes(box, inodes(repo / self.name))  # the workspace copy is the input
        if keep:
            res["files"] = big_files(box, MIB)
        else:
            rm(box)
        return res

    def dvc_readd(self, repeat: int) -> list[float]:
        """``dvc add`` again in the repository of the last ``dvc`` run (kept): its state DB answers."""
        assert self.python
        box = self.work / "dvc"
        env = anchor_env(box)
        times = []
        for _ in range(repeat):
            res, _ = run_snippet(
                self.python,
                DVC,
                [str(box / "repo"), self.name],
                env,
                self.timeout,
                "dvc add (re-add)",
            )
            times.append(res["seconds"])
        return times

    @property
    def name(self) -> str:
        """The input's name in the tools' workspaces."""
        return "model.pt" if self.state_dict is not None else self.src.name

    def _with_save(self, res: dict[str, Any], saved: float) -> None:
        """Count the `torch.save` that made a checkpoint's file as part of the tool's time."""
        if self.state_dict is not None:
            res["seconds"] += saved
            res["parts"] = {"torch.save": saved, **res.get("parts", {})}

    def wandb(self, keep: bool = False) -> dict[str, Any]:
        return self._snippet_anchor("wandb", WANDB, "wandb", keep)

    def mlflow(self, keep: bool = False) -> dict[str, Any]:
        return self._snippet_anchor("mlflow", MLFLOW, "mlruns", keep)

    def _snippet_anchor(self, name: str, snippet: str, data_dir: str, keep: bool) -> dict[str, Any]:
        """Run one anchor's snippet in a fresh sandbox; time, disk use and (with ``keep``) its files."""
        assert self.python
        box = fresh_dir(self.work / name)
        env = anchor_env(box)
        src, saved = self.src, 0.0
        if self.state_dict is not None:
            src = box / self.name
            saved = self._save(src)
        os.sync()
        res, wall = run_snippet(
            self.python, snippet, [str(box / data_dir), str(src)], env, self.timeout, name
        )
        self._with_save(res, saved)
        res["process"] = wall
        res["disk"] = disk_bytes(box, self.src_keys or inodes(src))
        if keep:
            res["files"] = big_files(box, MIB)
        else:
            rm(box)
        return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", default="256M", help="file size, e.g. 256M, 1G (default 256M)")
    ap.add_argument("--file", help="use this file instead of a generated one (its mtime is kept)")
    ap.add_argument(
        "--workload",
        choices=("file", "files", "checkpoint"),
        default="file",
        help="one large file (default); many small files (--files of 4 KiB in 100 dirs); or a "
        "checkpoint (a state_dict of --size in --tensors float32 tensors)",
    )
    ap.add_argument("--files", type=int, default=20_000, help="small files (default 20000)")
    ap.add_argument("--tensors", type=int, default=24, help="checkpoint tensors (default 24)")
    ap.add_argument("--repeat", type=int, default=3, help="fresh runs per tool (default 3)")
    ap.add_argument(
        "--anchors-python",
        default=os.environ.get("ANCHORS_PYTHON"),
        help="python of a venv with dvc, wandb, mlflow-skinny (default $ANCHORS_PYTHON)",
    )
    ap.add_argument("--dir", default=tempfile.gettempdir(), help="where the temp dirs live")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per anchor subprocess")
    ap.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up run")
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")

    work = Path(tempfile.mkdtemp(prefix="artifacts-anchors-", dir=args.dir))
    saved_cache_dir = os.environ.get("ARTIFACTS_CACHE_DIR")
    try:
        run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if saved_cache_dir is None:
            os.environ.pop("ARTIFACTS_CACHE_DIR", None)
        else:
            os.environ["ARTIFACTS_CACHE_DIR"] = saved_cache_dir


def run(args: argparse.Namespace, work: Path) -> None:
    state_dict = None
    if args.file:
        src = Path(args.file).resolve()
    elif args.workload == "checkpoint":
        state_dict = make_state_dict(parse_size(args.size), args.tensors)
        src = work / "input" / "model.pt"  # each tool's run saves its own (timed) copy
    else:
        src = work / "input" / (
            "tree" if args.workload == "files" else f"bench-{parse_size(args.size)}.bin"
        )
        src.parent.mkdir()
        if args.workload == "files":
            make_tree(src, args.files, 100, 4096)
        else:
            make_random_file(src, parse_size(args.size))
        old = time.time() - 60  # not "racy": stat caches trust it at once
        for p in [src, *src.rglob("*")]:
            os.utime(p, (old, old))
    if state_dict is not None:
        size = sum(t.numel() * t.element_size() for t in state_dict.values())
    else:
        inputs = [p for p in src.rglob("*") if p.is_file()] if src.is_dir() else [src]
        size = sum(p.stat().st_size for p in inputs)
        for p in inputs:
            read_through(p)

    python = args.anchors_python
    if python and not (shutil.which(python) or Path(python).is_file()):
        print(f"--anchors-python {python} does not exist")
        python = None
    bench = Bench(src, work, python, args.timeout, state_dict)
    versions = bench.probe()
    tools: list[str] = ["cp", "ours"]
    for anchor, ver in versions.items():
        if ver is None:
            why = (
                f"not in {python}"
                if python
                else f"{args.anchors_python} not found"
                if args.anchors_python
                else "no --anchors-python / $ANCHORS_PYTHON given"
            )
            print(f"skipped: {anchor} not installed ({why}; {VENV_HINT})")
        else:
            tools.append(anchor)
    funcs = {
        "cp": bench.cp,
        "ours": bench.ours,
        "dvc": bench.dvc,
        "wandb": bench.wandb,
        "mlflow": bench.mlflow,
    }
    results: dict[str, list[dict[str, Any]]] = {t: [] for t in tools}
    failed: dict[str, str] = {}
    first = 0 if args.no_warmup else -1
    for r in range(first, args.repeat):
        last = r == args.repeat - 1
        print(f"run {r + 1}/{args.repeat} ..." if r >= 0 else "warm-up run ...", flush=True)
        for tool in tools:
            if tool in failed:
                continue
            try:
                # the last run of ours and dvc is kept for the re-add and the file listings
                res = funcs[tool](keep=True) if last and tool != "cp" else funcs[tool]()
            except AnchorFailed as e:
                failed[tool] = str(e)
                print(f"failed: {tool}: {e}", flush=True)
                continue
            if r >= 0:
                results[tool].append(res)

    readd: dict[str, list[float]] = {}
    readd_n = max(5, args.repeat)
    if results["ours"]:
        readd["ours"] = bench.ours_readd(readd_n)
    if "dvc" in tools and "dvc" not in failed and results["dvc"]:
        try:
            readd["dvc"] = bench.dvc_readd(readd_n)
        except AnchorFailed as e:
            print(f"failed: dvc re-add: {e}")

    report(args, src, size, versions, python, tools, results, failed, readd)


def report(
    args: argparse.Namespace,
    src: Path,
    size: int,
    versions: dict[str, str | None],
    python: str | None,
    tools: list[str],
    results: dict[str, list[dict[str, Any]]],
    failed: dict[str, str],
    readd: dict[str, list[float]],
) -> None:
    done = [t for t in tools if results[t] and t not in failed]
    if os.environ.get("BENCH_VERBOSE"):
        for t in done:
            print(f"  {t}: " + " ".join(f"{r['seconds']:.3f}" for r in results[t]))
    med = {t: statistics.median(r["seconds"] for r in results[t]) for t in done}
    ckpt = args.workload == "checkpoint" and not args.file
    saved = " (torch.save + its ingest)" if ckpt else ""
    add = "add_state_dict" if ckpt else "add_dir" if src.is_dir() else "add_file"
    labels = {
        "cp": "torch.save (new file)" if ckpt else "cp -r" if src.is_dir() else "cp",
        "ours": f"ours (open_store+{add}+log_artifact)",
        "dvc": f"dvc add ({versions.get('dvc')}){saved}",
        "wandb": f"W&B offline ({versions.get('wandb')}){saved}",
        "mlflow": f"MLflow file store ({versions.get('mlflow')}){saved}",
    }

    def opt(t: str, key: str) -> Any:
        vals = [r[key] for r in results[t] if key in r]
        return statistics.median(vals) if vals else ""

    rows = []
    for t in done:
        rows.append(
            (
                labels[t],
                med[t],
                min(r["seconds"] for r in results[t]),
                f"{size / MIB / med[t]:.0f}",
                f"{med[t] / med['cp']:.2f}x" if "cp" in med else "",  # cp: torch.save for a checkpoint
                f"{med[t] / med['ours']:.2f}x" if "ours" in med else "",
                opt(t, "import"),
                opt(t, "process"),
                f"{results[t][-1]['disk'] / MIB:.1f}",
            )
        )
    print()
    print(load_line())
    print(
        (
            f"checkpoint: {size / MIB:.0f} MiB state_dict of {args.tensors} float32 tensors"
            if ckpt
            else f"directory: {size / MIB:.0f} MiB in {args.files} files of random bytes"
            if src.is_dir()
            else f"file: {size / MIB:.0f} MiB of random bytes"
        )
        + f", page-cached; {args.repeat} interleaved fresh runs per tool; anchors python: "
        + f"{python or '-'}"
    )
    print(
        table(
            rows,
            (
                "tool",
                "median s",
                "best s",
                "MiB/s",
                "/ torch.save" if ckpt else "/ cp",
                "/ ours",
                "import s",
                "process s",
                "on disk MiB",
            ),
        )
    )
    print(
        "(median s: the timed part only; import s: the anchor's imports, before its clock starts; "
        "process s: the whole subprocess, interpreter start-up and exit included; on disk MiB: what the "
        "tool left besides the input file)"
    )

    parts = [t for t in done if any("parts" in r for r in results[t])]
    if parts:
        print()
        print("where the time goes (medians, s):")
        for t in parts:
            names = list(results[t][0]["parts"])
            print(
                f"  {t}: "
                + ", ".join(
                    f"{n} {statistics.median(r['parts'][n] for r in results[t]):.3f}" for n in names
                )
            )

    if readd:
        print()
        rrows = []
        for t, times in readd.items():
            m = statistics.median(times)
            rrows.append(
                (
                    "ours" if t == "ours" else f"dvc add ({versions.get('dvc')})",
                    f"{m * 1e3:.1f}",
                    f"{min(times) * 1e3:.1f}",
                    f"{m / statistics.median(readd['ours']):.1f}x" if "ours" in readd else "",
                )
            )
        print(f"re-add of the unchanged file ({len(next(iter(readd.values())))} runs each):")
        print(table(rrows, ("tool", "median ms", "best ms", "/ ours")))
        print(
            "(ours: open_store + add_file + log_artifact, a stat-cache hit; dvc: `dvc add` timed inside "
            "the process after its imports, answered by its state DB)"
        )

    print()
    print("large files each tool left behind (last run; input file not listed unless linked):")
    for t in done:
        files = results[t][-1].get("files")
        if files is not None:
            print(f"  {t}: " + ("; ".join(files) if files else "none"))
    for t, why in failed.items():
        print(f"failed: {t} (see above)" if len(why) > 200 else f"failed: {t}: {why}")


if __name__ == "__main__":
    main()
