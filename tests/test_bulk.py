"""`Store.bulk`: the log entries, packs and snapshots it writes are the ones single calls write, its
index is a replay of that log, a refused call leaves no trace, a lost race is retried at the new head,
and a bulk SIGKILLed mid-batch leaves a store that opens, verifies and takes commits."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import artifacts
from artifacts.catalog.log import log_path
from tests.conftest import Backend
from tests.test_scale import cold, dump, replay_dump, small

ROOT = Path(__file__).resolve().parent.parent


def ops(api: Any, exists: Callable[[str], bool], n: int) -> None:
    """The history scale.py generates, plus a few alias removals."""
    for i in range(n):
        name = f"d{i % 4}"
        if i % 10 < 3 or not exists(name):
            api.log_artifact(artifacts.Artifact(name, "dataset").add_bytes("x", b"%d" % (i % 5)))
        elif i % 10 == 9 and name in ("d1",):
            with contextlib.suppress(artifacts.NotFoundError):
                api.remove_alias(name, f"t{(i - 1) % 3}")
        else:
            api.set_alias(f"{name}:latest", f"t{i % 3}")


def entries(store: artifacts.Store) -> list[dict[str, Any]]:
    """The log, with what differs between any two commits of the same change (time, commit id and
    the chain link, which hashes them) left out."""
    out, seq = [], 1
    while got := store.root.read_many([log_path(seq)]):
        e = json.loads(got[log_path(seq)])
        for k in ("ts", "commit"):
            e.pop(k)
        e["prev"] = e.pop("prev", None) is not None
        out.append(e)
        seq += 1
    return out


def scale_objects(store: artifacts.Store) -> tuple[list[str], list[str]]:
    packs = store.root.list_after("packs")
    snaps = [n[:20] for n in store.root.list_after("snapshots") if n != "hint.json"]
    return packs, snaps


def test_bulk_writes_the_entries_packs_and_snapshots_single_calls_write(
    local_backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small(monkeypatch, pack=4, every=10)
    one = artifacts.open_store(tmp_path / "one")
    ops(one, one.index.exists, 60)
    many = artifacts.open_store(tmp_path / "many")
    with many.bulk(batch=7) as b:
        ops(b, many.index.exists, 60)
        assert b.committed < 60  # the last batch is still staged ...
        assert many.index.last_seq == one.index.last_seq  # ... and read as if committed
    assert b.committed == one.index.last_seq
    one.close(wait=30)
    many.close(wait=30)
    one, many = artifacts.open_store(tmp_path / "one"), artifacts.open_store(tmp_path / "many")
    assert entries(many) == entries(one)
    assert scale_objects(many) == scale_objects(one)
    assert scale_objects(many)[1] == [f"{s:020d}" for s in range(10, many.index.last_seq + 1, 10)]
    assert dump(many.index._conn) == replay_dump(many)  # the staged index is the log's replay
    assert [(v.ref, v.aliases) for v in many.versions("d1")] == [
        (v.ref, v.aliases) for v in one.versions("d1")
    ]
    assert not many.verify().problems
    one.close()
    many.close()


def test_a_refused_call_raises_at_once_and_leaves_no_trace(local_backend: Backend) -> None:
    store = artifacts.open_store(local_backend.url)
    with store.bulk(batch=100) as b:
        b.log_artifact(artifacts.Artifact("m", "model").add_bytes("w", b"1"))
        with pytest.raises(artifacts.InvalidStateError, match="has type"):
            b.log_artifact(artifacts.Artifact("m", "dataset").add_bytes("w", b"2"))
        with pytest.raises(artifacts.NotFoundError):
            b.set_alias("nothing:latest", "best")
        v = b.set_alias("m:latest", "best")  # resolves the version staged above
        same = b.log_artifact(artifacts.Artifact("m", "model").add_bytes("w", b"1"))
        assert same.version == v.version == 0  # unchanged: no entry, as log_artifact decides
    assert store.index.last_seq == b.committed == 2
    assert store.artifact("m:best").version == 0
    assert not store.index.rejected()
    with pytest.raises(RuntimeError), store.bulk() as b:  # the caller's error: staged ones land
        b.log_artifact(artifacts.Artifact("m", "model").add_bytes("w", b"3"))
        raise RuntimeError("stop")
    assert store.artifact("m:latest").version == 1
    store.close()


def test_a_bulk_that_loses_a_race_goes_on_at_the_new_head(
    shared_backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    b_ = shared_backend
    store = artifacts.open_store(b_.url, storage_options=b_.storage_options)
    store.log_artifact(artifacts.Artifact("m", "model").add_bytes("w", b"0"))
    monkeypatch.setenv("ARTIFACTS_CACHE_DIR", str(tmp_path / "other"))  # another machine
    other = artifacts.open_store(b_.url, storage_options=b_.storage_options)
    with store.bulk(batch=100) as b:
        b.log_artifact(artifacts.Artifact("m", "model").add_bytes("w", b"1"))
        b.set_alias("m:v1", "best")
        other.log_artifact(artifacts.Artifact("o", "dataset").add_bytes("x", b"o"))
    assert store.index.last_seq == 4
    assert [v.ref for v in store.versions("m")] == ["m:v0", "m:v1"]
    assert store.artifact("m:best").version == 1 and store.artifact("o").version == 0
    with pytest.raises(artifacts.ConflictError, match="refused at the new head"):  # noqa: PT012
        with store.bulk(batch=100) as b:
            b.set_alias("m:v1", "prod")
            b.log_artifact(artifacts.Artifact("m", "model").add_bytes("w", b"2"))
            other.delete_version("m:v1")  # the staged alias now names a deleted version
    assert store.index.last_seq == 5 and not store.index.rejected()
    assert dump(store.index._conn) == replay_dump(store)
    store.close()
    other.close()


_BULK = """
import sys, artifacts
store = artifacts.open_store(sys.argv[1], storage_options=OPTS)
with store.bulk(batch=50) as b:
    for i in range(100000):
        b.log_artifact(artifacts.Artifact(f"d{i % 3}", "dataset").add_bytes("x", b"%d" % i))
        b.set_alias(f"d{i % 3}:latest", "best")
"""


def test_a_bulk_sigkilled_mid_batch_leaves_a_usable_store(
    local_backend: Backend, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Local only: on S3 the batch's creates are the same calls one by one (the race test covers
    S3), and a kill there costs tens of seconds of moto round trips."""
    small(monkeypatch, pack=20, every=100)
    b_ = local_backend
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ARTIFACTS_CACHE_DIR": str(tmp_path / "k")}
    code = _BULK.replace("OPTS", repr(b_.storage_options))
    p = subprocess.Popen([sys.executable, "-c", code, b_.url], env=env)
    store = None
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:  # wait for a few batches to be in the log
            time.sleep(0.2)
            if store is None:
                try:
                    store = artifacts.open_store(b_.url, storage_options=b_.storage_options)
                except artifacts.ArtifactsError:
                    continue
            if store.root.exists(log_path(130)):
                break
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait(10)
    assert p.returncode == -signal.SIGKILL
    assert store is not None
    store.close()
    with cold(b_, monkeypatch, tmp_path) as (again, msgs):
        head = again.index.last_seq
        assert head >= 130 and not again.root.exists(log_path(head + 1))
        assert not again.index.rejected()
        assert dump(again.index._conn) == replay_dump(again)
        assert not again.verify().problems
        again.log_artifact(artifacts.Artifact("after", "dataset").add_bytes("x", b"1"))
        assert again.index.last_seq == head + 1
    # the killed writer's own index (its batch never committed there) catches up from the log
    monkeypatch.setenv("ARTIFACTS_CACHE_DIR", str(tmp_path / "k"))
    mine = artifacts.open_store(b_.url, storage_options=b_.storage_options)
    assert mine.index.last_seq == head + 1
    assert dump(mine.index._conn) == replay_dump(mine)
    mine.close()
