"""Live history against real SIGKILLs, on a local directory and on S3 (moto on loopback).

A training process logging rows quickly with a short flush interval is SIGKILLed at random moments
(forked from a warm zygote, so a kill cycle costs a fork). After each kill, from this process (not the
killed one) with an index of its own: every row the worker's journal says was flushed is there, the
history is exactly the rows logged (a prefix, in order, the last step possibly still open), and every
row another reader saw live before the kill is still there. After the crash timeout every killed run
reads ``crashed``; closing half of them keeps their history; the store verifies clean.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import artifacts
from tests._live_workers import expected_row
from tests._workers import Zygote, exit_info, other_machine, read_journal
from tests.conftest import Backend

#: SIGKILLs per backend (30 in all).
KILLS = {"local": 22, "s3": 8}
#: Seconds a worker logs before it is killed.
WINDOW = {"local": (0.02, 0.3), "s3": (0.1, 0.6)}
INTERVAL = 0.02
CRASH_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def zygote() -> Iterator[Zygote]:
    z = Zygote()
    yield z
    z.close()


def _journal(path: Path, *head: str, timeout: float = 30.0) -> list[str]:
    """The first journal line starting with ``head``, waiting for the worker to write it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in read_journal(str(path)):
            if line[: len(head)] == list(head):
                return line
        time.sleep(0.005)
    raise AssertionError(f"the worker never wrote {head!r} to {path}")


def _check_rows(rows: list[dict[str, Any]], what: str) -> None:
    """Rows 0..n-1 exactly as logged; only the last may be an open step (no ``sq`` yet)."""
    for i, row in enumerate(rows):
        if i == len(rows) - 1 and row == {"i": i, "_step": i}:
            continue
        assert row == expected_row(i), f"{what}: row {i} is {row}"


def test_killed_training_keeps_every_flushed_row(
    shared_backend: Backend, zygote: Zygote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    b = shared_backend
    monkeypatch.setenv("ARTIFACTS_CRASH_TIMEOUT", str(CRASH_TIMEOUT))
    rng = random.Random(f"live-kills-{b.kind}")
    worker_cache = str(tmp_path / "worker-cache")
    killed: dict[str, list[dict[str, Any]]] = {}
    last_kill = 0.0
    for k in range(KILLS[b.kind]):
        journal = tmp_path / f"journal-{k}"
        pid = zygote.run(
            "tests._live_workers:live_writer",
            url=b.url,
            options=b.storage_options,
            cache=worker_cache,
            journal=str(journal),
            interval=INTERVAL,
            seed=k,
        )
        run_id = _journal(journal, "r")[1]
        time.sleep(rng.uniform(*WINDOW[b.kind]))
        seen: list[dict[str, Any]] = []
        if k % 2:  # another reader watches the live run, then the kill comes
            with other_machine(b.url, b.storage_options, tmp_path / "watcher") as watcher:
                live = watcher.run(run_id)
                assert live.status == "running"
                seen = live.history()
        os.kill(pid, signal.SIGKILL)
        status = zygote.wait(pid)
        last_kill = time.time()
        assert os.WIFSIGNALED(status), f"worker {k} {exit_info(status)} before the kill"
        flushed = max((int(ln[1]) for ln in read_journal(str(journal)) if ln[0] == "F"), default=0)
        with other_machine(b.url, b.storage_options, tmp_path / "reader") as reader:
            run = reader.run(run_id)
            rows = run.history()
        _check_rows(rows, f"kill {k}")
        assert len(rows) >= flushed, f"kill {k}: {flushed} rows were flushed, {len(rows)} read"
        _check_rows(seen, f"kill {k}, seen live")
        assert rows[: max(len(seen) - 1, 0)] == seen[:-1], f"kill {k}: rows seen live were lost"
        assert len(rows) >= len(seen)
        if rows:
            assert run.summary["i"] == len(rows) - 1
        killed[run_id] = rows
    assert len(killed) == KILLS[b.kind]
    assert sum(1 for rows in killed.values() if rows) >= KILLS[b.kind] // 2

    time.sleep(max(0.0, last_kill + CRASH_TIMEOUT + 0.1 - time.time()))
    with other_machine(b.url, b.storage_options, tmp_path / "closer") as store:
        assert {r.id: r.status for r in store.runs("live")} == dict.fromkeys(killed, "crashed")
        for n, (run_id, rows) in enumerate(sorted(killed.items())):
            if n % 2 == 0:
                closed = store.close_run(run_id)
                assert closed.status == "crashed" and closed.finished_at
                assert closed.history() == rows and closed._chunks is not None
                with pytest.raises(artifacts.InvalidStateError, match="already crashed"):
                    store.close_run(run_id)
        assert store.verify().ok
    with other_machine(b.url, b.storage_options, tmp_path / "after") as store:
        for run_id, rows in killed.items():
            assert store.run(run_id).history() == rows
            assert store.run(run_id).status == "crashed"


def test_live_rows_reach_another_process_within_two_intervals(
    local_backend: Backend, zygote: Zygote, tmp_path: Path
) -> None:
    b, interval, rows = local_backend, 0.5, 6
    journal = tmp_path / "journal"
    pid = zygote.run(
        "tests._live_workers:slow_writer",
        url=b.url,
        options=b.storage_options,
        cache=str(tmp_path / "worker-cache"),
        journal=str(journal),
        interval=interval,
        rows=rows,
    )
    run_id = _journal(journal, "r")[1]
    delays = []
    with other_machine(b.url, b.storage_options, tmp_path / "watcher") as store:
        for i in range(rows):
            logged = float(_journal(journal, "L", str(i))[2])
            while len(store.run(run_id).history()) <= i:
                assert time.time() - logged < 10, f"row {i} never became visible"
                time.sleep(0.02)
            delays.append(time.time() - logged)
    assert zygote.wait(pid) == 0
    assert max(delays) < 2 * interval, f"rows became visible after {delays} s"
    # and the command line follows the finished run to its end from yet another process
    out = subprocess.run(
        ["artifacts", "--store", b.url, "run", run_id, "--follow"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "ARTIFACTS_CACHE_DIR": str(tmp_path / "cli")},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    got = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert got == [{"i": i, "sq": i * i, "_step": i} for i in range(rows)]
