"""Crash safety and races with real OS processes, on a local directory and on S3 (moto on loopback).

- A writer committing versions (with shared, unique and large blobs), runs with metric histories, alias
  moves and deletions in a loop is SIGKILLed at random moments; after every kill the store verifies
  clean and every commit that returned before the kill is there and readable.
- Writers, an alias mover, a deleter and gc run at once; at the end versions are gapless, aliases point
  at live versions, replaying the log entry by entry never shows a user over quota, and verify is clean.

Processes are forked from one warm interpreter (see `tests/_workers.py`), so a kill cycle costs a fork.
`benchmarks/soak.py --long` runs the same campaigns for much longer.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import artifacts
from tests._workers import Zygote, crash_campaign, exit_info, race_campaign
from tests.conftest import Backend

#: SIGKILLs per backend: at least 50 in all.
KILLS = {"local": 32, "s3": 9}  # longer campaigns: benchmarks/soak.py
#: Seconds a child gets before the kill: local commits take milliseconds, S3 ones tens of them.
WINDOW = {"local": (0.01, 0.35), "s3": (0.15, 1.0)}
#: Size range of the writer's large blobs (KiB): kills land mid-upload too; moto is slow with big ones.
BIG_KIB = {"local": (256, 1024), "s3": (64, 256)}
#: The writer deletes versions beyond this many (every kill re-hashes every live blob: moto is slow).
KEEP = {"local": 30, "s3": 12}

ROLES = ["writer-u0", "writer-u1", "writer-u0", "aliases", "deleter", "gc"]
#: Operations per role; local commits are fast, so more of them there.
OPS = {
    "local": {"writer": 30, "aliases": 30, "deleter": 15, "gc": 3},
    "s3": {"writer": 14, "aliases": 16, "deleter": 8, "gc": 3},
}
#: gc's grace period: longer than any commit takes here between its uploads and its log entry (the
#: race starts with the shared blobs orphaned and backdated, so gc sweeps them from the start).
GRACE = {"local": 5.0, "s3": 10.0}
QUOTA = 12_000  # u0: about three of the shared blobs; u0's writers hit it and the deleter frees it


@pytest.fixture(scope="module")
def zygote() -> Iterator[Zygote]:
    z = Zygote()
    yield z
    z.close()


def test_writer_killed_at_random_moments_loses_nothing(
    shared_backend: Backend, zygote: Zygote, tmp_path: Path
) -> None:
    b = shared_backend
    stats = crash_campaign(
        zygote,
        b.url,
        b.storage_options,
        tmp_path,
        kills=KILLS[b.kind],
        window=WINDOW[b.kind],
        seed=f"crash-{b.kind}",
        big_kib=BIG_KIB[b.kind],
        keep=KEEP[b.kind],
    )
    assert stats["kills"] == KILLS[b.kind]
    assert stats["deleted"] and stats["runs"] and stats["gc_deleted"]
    print(f"crash campaign on {b.kind}: {stats}")


def test_writers_alias_movers_deleter_and_gc_race(
    shared_backend: Backend, zygote: Zygote, tmp_path: Path
) -> None:
    b = shared_backend
    stats = race_campaign(
        zygote,
        b.url,
        b.storage_options,
        tmp_path,
        roles=ROLES,
        ops=OPS[b.kind],
        quota=QUOTA,
        grace=GRACE[b.kind],
        start_delay=1.0 if b.kind == "local" else 2.0,
    )
    assert stats["commits"] and stats["deletes"] and stats["alias_moves"]
    assert stats["quota_refusals"], "u0's writers never reached the quota"
    assert stats["gc_passes"] >= OPS[b.kind]["gc"] and stats["gc_deleted"]
    print(f"race on {b.kind}: {stats}")


def test_processes_of_one_user_opening_a_store_at_once(
    local_backend: Backend, zygote: Zygote, tmp_path: Path
) -> None:
    """Several processes sharing one fresh cache directory (index and stat cache) open the store at
    the same moment and add files from many threads: no "database is locked", no "disk I/O error"."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(12):
        (src / f"f{i}.txt").write_text(f"file {i}")
        os.utime(src / f"f{i}.txt", (1_000_000, 1_000_000))  # old enough for the stat cache
    artifacts.open_store(local_backend.url).close()  # the store exists; the shared cache does not
    for attempt in range(5):
        cache = tmp_path / f"shared-cache-{attempt}"
        start_at = time.time() + 0.5
        pids = [
            zygote.run(
                "first_open_worker",
                url=local_backend.url,
                options={},
                cache=str(cache),
                src_dir=str(src),
                k=attempt * 10 + k,
                start_at=start_at,
            )
            for k in range(6)
        ]
        for pid in pids:
            status = zygote.wait(pid)
            assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, exit_info(status)
    store = artifacts.open_store(local_backend.url)
    assert len(store.versions("first")) == 30 and store.verify().ok
