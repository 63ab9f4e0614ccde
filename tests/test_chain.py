"""The log's hash chain checked on replay, and verify/gc blind spots (issue 18 item 4).

Every entry names (``prev``) the BLAKE3 digest of the bytes of the entry before it. An entry whose
``prev`` does not match is rejected with its sequence number by every reader alike: one that follows
the log entry by entry, one that rebuilds from scratch, one that starts from a snapshot.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import artifacts
from artifacts import Artifact
from storage import hash_bytes
from tests.conftest import Backend


def open_(b: Backend) -> artifacts.Store:
    return artifacts.open_store(b.url, storage_options=b.storage_options)


def log_rel(seq: int) -> str:
    return f"log/{seq:020d}.json"


def read_entry(store: artifacts.Store, seq: int) -> dict[str, Any]:
    return json.loads(store.root.read(log_rel(seq)))


def forge(store: artifacts.Store, **changes: Any) -> int:
    """The last entry copied as the next one, with ``changes`` (a plausible foreign writer)."""
    seq = store.index.last_seq
    body = {**read_entry(store, seq), "seq": seq + 1, "commit": "f" * 32, **changes}
    store.root.create_exclusive(log_rel(seq + 1), json.dumps(body).encode())
    return seq + 1


def rejected(store: artifacts.Store) -> list[int]:
    store.sync()
    return sorted(s for s, _ in store.index.rejected())


def test_entries_carry_the_digest_of_their_predecessor(backend: Backend) -> None:
    store = open_(backend)
    store.log_artifact(Artifact("m", "dataset").add_bytes("x", b"1"))
    store.set_alias("m:v0", "best")
    store.set_alias("m:v0", "prod")
    assert "prev" not in read_entry(store, 1)
    for seq in (2, 3):
        assert read_entry(store, seq)["prev"] == hash_bytes(store.root.read(log_rel(seq - 1)))
    assert rejected(store) == []


def test_an_entry_naming_another_predecessor_is_rejected_by_every_reader(
    shared_backend: Backend, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ARTIFACTS_SNAPSHOT_EVERY", "2")
    monkeypatch.setenv("ARTIFACTS_PACK_SIZE", "2")
    writer = open_(shared_backend)
    writer.log_artifact(Artifact("m", "dataset").add_bytes("x", b"1"))
    writer.set_alias("m:v0", "best")
    follower = open_(shared_backend)  # an index at seq 2, which will apply the forgery incrementally
    assert follower.index.last_seq == 2
    bad = forge(writer, prev="0" * 64, alias="evil")
    writer.set_alias("m:v0", "after")  # a good entry after the forged one: it chains on its bytes
    writer.reader.background.wait(30)
    for reader in (writer, follower):
        assert rejected(reader) == [bad]
    monkeypatch.setenv("ARTIFACTS_CACHE_DIR", str(tmp_path / "cold"))  # from a snapshot / packs
    cold = open_(shared_backend)
    monkeypatch.setenv("ARTIFACTS_SNAPSHOT_EVERY", "0")
    monkeypatch.setenv("ARTIFACTS_CACHE_DIR", str(tmp_path / "scratch"))
    scratch = open_(shared_backend)
    scratch.reindex()
    for reader in (writer, follower, cold, scratch):
        assert rejected(reader) == [bad]
        assert sorted(reader.artifact("m:v0").aliases) == ["after", "best"]
    problems = scratch.verify().problems
    assert any(p.startswith(f"log entry {bad} was rejected") and "prev" in p for p in problems)
    for reader in (writer, follower, cold, scratch):
        reader.close()


def test_an_entry_changed_after_its_successor_is_named_by_replay_and_verify(
    backend: Backend, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    store = open_(backend)
    store.log_artifact(Artifact("m", "dataset").add_bytes("x", b"1"))
    store.set_alias("m:v0", "best")
    store.set_alias("m:v0", "prod")
    rotten = dict(read_entry(store, 2), alias="bext")  # still valid JSON, still a valid entry
    store.root.write(log_rel(2), json.dumps(rotten).encode())
    monkeypatch.setenv("ARTIFACTS_CACHE_DIR", str(tmp_path / "fresh"))
    fresh = open_(backend)
    assert rejected(fresh) == [3]  # 3 names the digest of the entry 2 it was written after
    report = fresh.verify()
    assert not report.ok
    assert any(p.startswith("log entry 3 was rejected") and "entry 2" in p for p in report.problems)


def test_first_entry_with_a_prev_is_rejected(local_backend: Backend) -> None:
    store = open_(local_backend)
    body = {
        "format": 1,
        "seq": 1,
        "op": "quota_set",
        "user": "alice",
        "ts": "2026-01-01T00:00:00",
        "target": "alice",
        "bytes": 100,
        "prev": "0" * 64,
    }
    store.root.create_exclusive(log_rel(1), json.dumps(body).encode())
    assert rejected(store) == [1]
    assert "first entry" in store.index.rejected()[0][1]


def test_old_entries_without_prev_and_old_indexes_still_replay(
    local_backend: Backend,
) -> None:
    """Entries written before the chain carry no prev: they are accepted as before."""
    store = open_(local_backend)
    store.log_artifact(Artifact("m", "dataset").add_bytes("x", b"1"))
    body = read_entry(store, 1)
    body.pop("prev", None)
    two = forge(store, op="alias_set", name="m", version=0, alias="best")
    raw = read_entry(store, two)
    raw.pop("prev", None)
    for k in ("digest", "manifest", "metadata", "description", "aliases", "run_id", "type"):
        raw.pop(k, None)
    Path(store.root.local(log_rel(two))).write_text(json.dumps(raw))
    store.sync()
    assert rejected(store) == []
    store.set_alias("m:v0", "prod")
    assert read_entry(store, 3)["prev"] == hash_bytes(store.root.read(log_rel(2)))
    store.reindex()
    assert rejected(store) == []
    assert list(store.artifact("m:v0").aliases) == ["best", "prod"]


# -- verify and gc blind spots -----------------------------------------------------------------------
def test_a_rotten_run_finished_is_one_verify_finding(backend: Backend) -> None:
    store = open_(backend)
    with store.start_run(project="p") as run:
        run.log({"loss": 1.0})
    seq = store.index.last_seq
    body = read_entry(store, seq)
    assert body["op"] == "run_finished"
    store.root.write(log_rel(seq), json.dumps({**body, "history": "x"}).encode())
    report = store.verify()  # this index applied the entry before it rotted
    assert [p for p in report.problems if f"log entry {seq}" in p], report.problems
    assert len([p for p in report.problems if f"log entry {seq}" in p]) == 1


def test_stray_names_under_blobs_are_named_by_verify_and_left_by_gc(backend: Backend) -> None:
    store = open_(backend)
    v = store.log_artifact(Artifact("m", "dataset").add_bytes("x", b"1"))
    strays = ["blobs/AB/" + "c" * 62, "blobs/zz/" + "z" * 62, "blobs/ab/short", "blobs/loose"]
    for rel in strays:
        store.root.write(rel, b"not a blob")
    report = store.gc(grace_period=0)
    assert report.deleted == ()
    for rel in strays:
        assert store.root.exists(rel)
    problems = store.verify().problems
    for rel in strays:
        assert any(rel in p and "unexpected object" in p for p in problems), problems
    assert store.artifact("m:v0").read_bytes("x") == b"1" and store.verify(v.ref).ok


def test_a_directory_in_place_of_the_next_entry_is_named_not_the_network(
    local_backend: Backend,
) -> None:
    from tests.test_cli import Cli

    cli = Cli(local_backend.url)
    store = open_(local_backend)
    store.log_artifact(Artifact("m", "dataset").add_bytes("x", b"1"))
    Path(store.root.local(log_rel(2))).mkdir()
    for args in (("alias", "m:v0", "best"), ("ls",)):
        line = cli.fails(*args)
        assert "directory is in the way" in line and "network" not in line, line


@pytest.mark.parametrize(
    "err, says",
    [
        (28, "disk full"),  # ENOSPC: a DiskFullError (issue 11)
        (21, "directory is in the way"),  # EISDIR
        (30, "read-only"),  # EROFS
        (111, "cannot reach"),  # ECONNREFUSED: the network after all
    ],
)
def test_os_errors_name_their_cause(err: int, says: str) -> None:
    import os

    from storage.backend import backend_errors

    with pytest.raises(artifacts.ArtifactsError) as e, backend_errors("create log/1.json", "/s"):
        raise OSError(err, os.strerror(err))
    assert says in str(e.value) and "\n" not in str(e.value)
    if err != 111:
        assert "network" not in str(e.value)
