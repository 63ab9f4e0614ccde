"""Crash safety and races with real OS processes, on a local directory and on S3 (moto on loopback).

- A writer committing versions, runs, alias moves and deletions in a loop is SIGKILLed at random moments;
  after every kill the store verifies clean and every commit that returned before the kill is there.
- Writers, an alias mover, a deleter and gc run at once; at the end versions are gapless, aliases point
  at live versions, replaying the log entry by entry never shows a user over quota, and verify is clean.

Processes are forked from one warm interpreter (see `tests/_workers.py`), so a kill cycle costs a fork.
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import artifacts
from artifacts.index import Index
from tests._workers import read_journal
from tests.conftest import Backend

REPO = Path(__file__).resolve().parent.parent
#: SIGKILLs per backend: at least 50 in all.
KILLS = {"local": 32, "s3": 20}
#: Seconds a child gets before the kill: local commits take milliseconds, S3 ones tens of them.
WINDOW = {"local": (0.01, 0.35), "s3": (0.15, 1.0)}


class Zygote:
    """A warm interpreter that forks workers on request (``python -m tests._workers``)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests._workers"],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        self._buf = b""
        assert self._readline(60) == "ready"

    def _readline(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                raise TimeoutError("the worker zygote did not answer")
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError("the worker zygote died")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode()

    def _send(self, cmd: dict[str, Any]) -> None:
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())

    def run(self, fn: str, **kwargs: Any) -> int:
        self._send({"cmd": "run", "fn": fn, "kwargs": kwargs})
        return int(self._readline(30))

    def wait(self, pid: int, timeout: float = 120) -> int:
        """Reap ``pid`` and return its wait status; SIGKILL it first if it runs past ``timeout``."""
        self._send({"cmd": "wait", "pid": pid})
        try:
            return int(self._readline(timeout))
        except TimeoutError:
            os.kill(pid, signal.SIGKILL)
            self._readline(30)
            raise AssertionError(f"worker {pid} ran longer than {timeout} s") from None

    def close(self) -> None:
        self._send({"cmd": "quit"})
        self.proc.stdin.close()
        self.proc.wait(30)


@pytest.fixture(scope="module")
def zygote() -> Iterator[Zygote]:
    z = Zygote()
    yield z
    z.close()


def open_(b: Backend, user: str | None = None) -> artifacts.Store:
    return artifacts.open_store(b.url, user=user, storage_options=b.storage_options)


def _exit_info(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exited with code {os.WEXITSTATUS(status)}"


def _replay(store: artifacts.Store, path: Path) -> tuple[Index, list[Any]]:
    """A fresh index of ``store`` built from its log alone (what a new machine would see)."""
    idx = Index(path, store_id=store.info["id"], admins=[store.info["created_by"]])
    return idx, store.log.read_after(0)


# -- crashes -----------------------------------------------------------------------------------------
class _Committed:
    """What the journal says returned before the kill, checked against the store after every kill."""

    def __init__(self, journal: Path) -> None:
        self.journal = journal
        self.checked = 0
        self.versions: dict[str, str] = {}
        self.maybe_deleted: set[str] = set()
        self.deleted: set[str] = set()
        self.runs: dict[str, str | None] = {}

    def check(self, store: artifacts.Store, cycle: str) -> None:
        lines = read_journal(str(self.journal))
        store.sync()
        new = lines[self.checked :]
        self.checked = len(lines)
        for kind, *rest in new:
            if kind == "v":
                self.versions[rest[0]] = rest[1]
            elif kind == "D":
                self.maybe_deleted.add(rest[0])
            elif kind == "d":
                self.deleted.add(rest[0])
            elif kind == "r":
                self.runs.setdefault(rest[0], None)
            elif kind == "f":
                self.runs[rest[0]] = rest[1]
        for ref, digest in self.versions.items():
            name, _, v = ref.partition(":v")
            if ref in self.deleted:
                with pytest.raises(artifacts.NotFoundError):
                    store.index.resolve(name, int(v))
                continue
            try:
                row = store.index.resolve(name, int(v))
            except artifacts.NotFoundError:
                assert ref in self.maybe_deleted, f"{cycle}: committed {ref} is gone"
                continue
            assert row["digest"] == digest, f"{cycle}: {ref} changed"
        for ref, digest in self.versions.items():  # the new ones: read them back
            if [k for k, *r in new if k == "v" and r[0] == ref] and ref not in self.maybe_deleted:
                version = store.artifact(ref)
                assert version.digest == digest
                assert version.read_bytes(
                    "unique.txt" if version.name != "metrics" else "result.json"
                )
        for run_id, history in self.runs.items():
            run = store.run(run_id)
            if history is not None:
                assert run.status == "finished", f"{cycle}: run {run_id} is {run.status}"
                assert run.history(), f"{cycle}: run {run_id} lost its metrics"


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_writer_killed_at_random_moments_loses_nothing(
    kind: str,
    request: pytest.FixtureRequest,
    zygote: Zygote,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backend: Backend = request.getfixturevalue(f"{kind}_backend")
    store = open_(backend)
    files = tmp_path / "files"
    files.mkdir()
    rng = random.Random(f"crash-{kind}")
    for i in range(3):
        (files / f"f{i}.bin").write_bytes(rng.randbytes(rng.randint(64, 768) * 1024))
    os.utime(files, (1, 1))
    for f in files.iterdir():
        os.utime(f, (1_000_000, 1_000_000))  # old enough for the stat cache to trust
    journal = tmp_path / "journal"
    child_cache = (
        tmp_path / "child-cache"
    )  # reused: the killed writer's index must survive its kills
    committed = _Committed(journal)
    lo, hi = WINDOW[kind]
    kills = 0
    for cycle in range(KILLS[kind]):
        pid = zygote.run(
            "crash_writer",
            url=backend.url,
            options=backend.storage_options,
            cache=str(child_cache),
            journal=str(journal),
            seed=cycle,
            files_dir=str(files),
        )
        time.sleep(rng.uniform(lo, hi))
        os.kill(pid, signal.SIGKILL)
        status = zygote.wait(pid)
        assert os.WIFSIGNALED(status), f"kill {cycle}: the writer {_exit_info(status)} before it"
        kills += 1
        store.sync()
        report = store.verify()
        assert report.ok, f"after kill {cycle}: {report.problems}"
        committed.check(store, f"after kill {cycle}")
    assert kills == KILLS[kind]
    assert len(committed.versions) > KILLS[kind], "the writer hardly committed anything"

    # a writer left alone after all those kills finishes normally (a hang would show here, not above)
    pid = zygote.run(
        "crash_writer",
        url=backend.url,
        options=backend.storage_options,
        cache=str(child_cache),
        journal=str(journal),
        seed=10_000,
        files_dir=str(files),
        max_ops=25,
    )
    status = zygote.wait(pid, timeout=90)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"the writer {_exit_info(status)}"
    committed.check(store, "after an uninterrupted run")

    # gc with nothing in flight keeps everything committed; the killed writer's own index and a new
    # machine's agree with ours
    store.gc(grace_period=0)
    assert store.verify().ok
    committed.check(store, "after gc")
    for cache in (child_cache, tmp_path / "new-machine"):
        monkeypatch.setenv("ARTIFACTS_CACHE_DIR", str(cache))
        other = open_(backend)
        for name in ("data", "model", "metrics"):
            ours = [(v.ref, v.digest, v.aliases) for v in store.versions(name)]
            assert [(v.ref, v.digest, v.aliases) for v in other.versions(name)] == ours
        assert other.index.rejected() == []
        other.close()


# -- races -------------------------------------------------------------------------------------------
ROLES = ["writer-u0", "writer-u1", "writer-u0", "aliases", "deleter", "gc"]
OPS = {"writer": 14, "aliases": 16, "deleter": 8, "gc": 3}
QUOTA = 12_000  # u0: about three of the shared blobs; u0's writers hit it and the deleter frees it


def test_writers_alias_movers_deleter_and_gc_race(
    shared_backend: Backend, zygote: Zygote, tmp_path: Path
) -> None:
    store = open_(shared_backend)  # alice created the store: an admin, so she may delete anyone's
    store.set_quota("u0", QUOTA)
    stop = tmp_path / "stop"
    start_at = time.time() + (1.0 if shared_backend.kind == "local" else 2.0)
    pids = {}
    for i, role in enumerate(ROLES):
        pids[role + str(i)] = zygote.run(
            "race_worker",
            role=role,
            url=shared_backend.url,
            options=shared_backend.storage_options,
            cache=str(tmp_path / f"cache{i}"),
            journal=str(tmp_path / f"journal{i}"),
            seed=i,
            ops=OPS[role.split("-")[0]],
            start_at=start_at,
            stop_file=str(stop),
        )
    statuses = {}
    for key, pid in pids.items():
        if key.startswith("gc"):
            continue
        statuses[key] = zygote.wait(pid)
    stop.touch()
    statuses["gc"] = zygote.wait(pids[f"gc{ROLES.index('gc')}"])
    for key, status in statuses.items():
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"{key} {_exit_info(status)}"

    journals = {i: read_journal(str(tmp_path / f"journal{i}")) for i in range(len(ROLES))}
    assert all(j and j[-1][0] == "done" for j in journals.values()), "a worker did not finish"
    lines = [ln for j in journals.values() for ln in j]
    committed = {ln[1]: ln[2] for ln in lines if ln[0] == "v"}
    deleted = {ln[1] for ln in lines if ln[0] == "D"}
    assert committed and any(ln[0] == "d" for ln in lines) and any(ln[0] == "a" for ln in lines)
    assert any(ln[0] == "q" for ln in lines), "u0's writers never reached the quota"
    gc_passes = [ln for ln in lines if ln[0] == "g"]
    assert len(gc_passes) >= OPS["gc"]

    # replay the log entry by entry into a fresh index: u0 is never over quota after any entry
    idx, entries = _replay(store, tmp_path / "replay.sqlite")
    for e in entries:
        assert idx.apply([e]) == [], f"entry {e.seq} was rejected"
        quota = idx.quota("u0")
        if quota is not None:
            assert idx.usage("u0") <= quota, f"u0 over quota after entry {e.seq}"
    store.sync()
    for name in ("alpha", "beta"):
        numbers = [r["version"] for r in idx.versions(name, include_deleted=True)]
        assert numbers == list(range(len(numbers))), f"{name}: versions not gapless: {numbers}"
        assert numbers == [r["version"] for r in store.index.versions(name, include_deleted=True)]
    for ref, digest in committed.items():
        name, _, v = ref.partition(":v")
        row = idx._conn.execute(
            "SELECT digest, deleted FROM versions WHERE name=? AND version=?", (name, int(v))
        ).fetchone()
        assert row is not None and row["digest"] == digest, f"committed {ref} is not in the log"
        assert not row["deleted"] or ref in deleted, f"{ref} was deleted by nobody"
    dangling = idx._conn.execute(
        "SELECT a.name, a.alias FROM aliases a LEFT JOIN versions v"
        " ON v.name = a.name AND v.version = a.version WHERE v.id IS NULL OR v.deleted != 0"
    ).fetchall()
    assert not dangling, f"aliases on dead versions: {[tuple(r) for r in dangling]}"
    for name in ("alpha", "beta"):
        for alias in idx._conn.execute("SELECT alias FROM aliases WHERE name=?", (name,)):
            assert store.artifact(f"{name}:{alias[0]}").read_bytes("own.txt")
    idx.close()

    report = store.verify()
    assert report.ok, report.problems
    store.gc(grace_period=0)  # nothing in flight now: sweep everything unreferenced
    assert store.verify().ok
    for name in ("alpha", "beta"):
        for v in store.versions(name):
            assert v.read_bytes("own.txt")
