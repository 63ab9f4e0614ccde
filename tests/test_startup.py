"""`artifacts --help`, `--version` and `ls` import only what they need (checked in a fresh interpreter
through `sys.modules`, not by timing): no torch, numpy, pandas, s3fs/aiobotocore, UI or SQLite helpers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HEAVY = (
    "torch",
    "numpy",
    "pandas",
    "s3fs",
    "aiobotocore",
    "botocore",
    "boto3",
    "sqlite_utils",
    "safetensors",
    "starlette",
    "jinja2",
    "uvicorn",
)
PROBE = """
import json, sys
from artifacts.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("@@MODULES " + json.dumps(sorted(sys.modules)))
"""


def _modules(*args: str) -> tuple[set[str], str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=env, timeout=120
    )
    line = next(x for x in proc.stdout.splitlines() if x.startswith("@@MODULES "))
    return {m.split(".")[0] for m in json.loads(line[10:])}, proc.stdout


def test_help_and_version_import_nothing_heavy() -> None:
    for args in (["--help"], ["--version"], ["ls", "--help"]):
        loaded, stdout = _modules(*args)
        assert not loaded & set(HEAVY), f"artifacts {' '.join(args)} imported {loaded & set(HEAVY)}"
        assert "fsspec" not in loaded, args  # not even the storage backends
    assert "artifacts, version" in _modules("--version")[1]


def test_ls_imports_only_the_catalog(tmp_path: Path) -> None:
    store = tmp_path / "store"
    data = tmp_path / "f.txt"
    data.write_text("hello")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cli = [sys.executable, "-m", "artifacts.cli", "--store", str(store)]
    subprocess.run([*cli, "init"], check=True, capture_output=True, env=env, timeout=120)
    subprocess.run(  # creates the store and its index in this test's cache dir
        [
            sys.executable,
            "-m",
            "artifacts.cli",
            "--store",
            str(store),
            "put",
            "-t",
            "dataset",
            "d",
            str(data),
        ],
        check=True,
        capture_output=True,
        env=env,
        timeout=120,
    )
    loaded, stdout = _modules("--store", str(store), "ls")
    assert "d" in stdout
    assert not loaded & set(HEAVY), f"artifacts ls imported {loaded & set(HEAVY)}"


def test_version_imports_no_command_internals() -> None:
    """`--version` (target: under 150 ms) loads the command modules and nothing a command imports
    for its own work: no run/store machinery, no logging, sockets, decimal arithmetic or CSV."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, "--version"], capture_output=True, text=True, env=env, timeout=120
    )
    line = next(x for x in proc.stdout.splitlines() if x.startswith("@@MODULES "))
    loaded = set(json.loads(line[10:]))
    for name in ("artifacts.run", "artifacts.store", "logging", "socket", "decimal", "csv", "secrets"):
        assert name not in loaded, name


def test_module_form_has_every_command() -> None:
    """``python -m artifacts.cli`` runs the module as ``__main__``: commands registered from other
    modules must land on that group too (`ui` and `report` once registered on a second copy)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for cmd in ("ui", "report", "sync", "runs"):
        proc = subprocess.run(
            [sys.executable, "-m", "artifacts.cli", cmd, "--help"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert proc.returncode == 0 and f"artifacts {cmd}" in proc.stdout, (cmd, proc.stderr)


def test_unchanged_reput_of_a_local_store_imports_no_fsspec(tmp_path: Path) -> None:
    """fsspec costs about 60 ms of start-up (asyncio, importlib.metadata): a command that moves no
    bytes on a local store (an unchanged re-put, `ls`) does not import it; a put that stores does."""
    data = tmp_path / "data"
    data.mkdir()
    old = 1_700_000_000  # older than the stat cache's racy window
    for i in range(3):
        (data / f"f{i}.txt").write_text(f"file {i}")
        os.utime(data / f"f{i}.txt", (old, old))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    store = ["--store", str(tmp_path / "store")]
    first = subprocess.run(
        [sys.executable, "-c", PROBE, *store, "put", "-t", "dataset", "d", str(data)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert "logged d:v0" in first.stdout, first.stderr
    again, stdout = _modules(*store, "put", "d", str(data))
    assert "unchanged" in stdout
    assert not again & {"fsspec", "asyncio"}, again & {"fsspec", "asyncio"}
    listed, stdout = _modules(*store, "ls")
    assert "d" in stdout and not listed & {"fsspec", "asyncio"}
