"""copy_to / `artifacts sync`: versions, runs, history, aliases and lineage move between stores."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import artifacts
from artifacts import Artifact
from tests.conftest import Backend


def open_(b: Backend, user: str = "alice") -> artifacts.Store:
    return artifacts.open_store(b.url, user=user, storage_options=b.storage_options)


def populate(store: artifacts.Store) -> None:
    with store.start_run(project="sent", job_type="prepare", config={"seed": 1}) as run:
        run.log_artifact(
            Artifact("reviews", "dataset", metadata={"src": "rt"}).add_bytes("a.csv", b"x,1\n" * 50)
        )
    with store.start_run(project="sent", job_type="train", config={"lr": 0.1}) as run:
        run.use_artifact("reviews:latest")
        for epoch in range(3):
            run.log({"loss": 1.0 / (epoch + 1)}, step=epoch)
            art = Artifact("gru", "model", metadata={"epoch": epoch})
            art.add_bytes("w.bin", bytes([epoch]) * 4096).add_bytes("frozen.bin", b"F" * 8192)
            run.log_artifact(art, aliases=["best"] if epoch == 1 else [])
    with store.start_run(project="sent", job_type="eval") as run:
        run.use_artifact("gru:best")
        run.log({"acc": 0.9})
    store.log_artifact(Artifact("scratch", "misc").add_bytes("s", b"gone"))
    store.delete_version("scratch:v0")
    store.set_alias("gru:v2", "latest-good")
    store.remove_alias("gru", "latest-good")


def answers(store: artifacts.Store) -> dict[str, Any]:
    """What a user sees, with run ids kept (they are copied) and nothing store-specific."""
    live = [a for a in store.artifacts() if a.versions]  # deleted versions are not copied
    out: dict[str, Any] = {"artifacts": [(a.name, a.type, a.versions, a.size) for a in live]}
    for a in store.artifacts():
        for v in store.versions(a.name):
            out[v.ref] = {
                "digest": v.digest,
                "aliases": v.aliases,
                "metadata": dict(v.metadata),
                "created_at": v.created_at,
                "producer": v.produced_by().id if v.produced_by() else None,
                "consumers": sorted(r.id for r in v.consumed_by()),
                "files": {f.path: v.read_bytes(f.path) for f in v.files()},
            }
    for r in store.runs():
        out[f"run/{r.id}"] = (r.project, r.job_type, r.status, r.config, r.summary, r.history())
    lin = store.lineage("gru:best", "both")
    out["lineage"] = (sorted(n.id for n in lin.nodes), sorted(map(str, lin.edges)))
    return out


@pytest.mark.s3
def test_local_to_s3_to_local_keeps_lineage_and_answers(
    local_backend: Backend, s3_backend: Backend, tmp_path: Path
) -> None:
    src = open_(local_backend)
    populate(src)
    s3 = open_(s3_backend, user="bob")
    report = src.copy_to(s3)
    assert report.versions == 4 and report.runs == 3 and report.skipped == 0
    back = open_(Backend("local", str(tmp_path / "back")), user="carol")
    s3.copy_to(back)
    expect = answers(src)
    assert answers(s3) == expect and answers(back) == expect
    assert "scratch" not in [a.name for a in s3.artifacts()] or not s3.versions("scratch")
    # quota accounting is the copying user's; every copied entry names its source
    assert s3.usage("bob") == src.usage("alice") and s3.usage("alice") == 0
    entries = [json.loads(e.data) for e in back.log.read_after(0)]
    assert entries and all(e["source"]["store"] == s3.info["id"] for e in entries)
    assert {e["source"]["user"] for e in entries} == {"bob"}
    assert back.verify().ok and s3.verify().ok
    # restoring from the copy gives the same bytes
    assert back.artifact("gru:best").read_bytes("w.bin") == bytes([1]) * 4096


def test_resync_copies_nothing_twice_and_picks_up_new_work(tmp_path: Path) -> None:
    src = open_(Backend("local", str(tmp_path / "src")))
    dst = open_(Backend("local", str(tmp_path / "dst")))
    populate(src)
    first = src.copy_to(dst)
    head = dst.log.head()
    again = src.copy_to(dst)
    assert again.entries == 0 and again.blobs == 0 and again.skipped == first.entries
    assert dst.log.head() == head
    # new work in the source: only that moves; a re-logged identical version stays one version
    with src.start_run(project="sent", job_type="finetune") as run:
        run.use_artifact("gru:best")
        art = (
            Artifact("gru", "model")
            .add_bytes("w.bin", b"new" * 100)
            .add_bytes("frozen.bin", b"F" * 8192)
        )
        run.log_artifact(art)
    third = src.copy_to(dst)
    assert third.versions == 1 and third.runs == 1 and third.blobs == 1  # frozen.bin was there
    assert third.bytes == 300
    assert [v.digest for v in dst.versions("gru")] == [v.digest for v in src.versions("gru")]


def test_destination_numbers_versions_by_its_own_log(tmp_path: Path) -> None:
    src = open_(Backend("local", str(tmp_path / "src")))
    dst = open_(Backend("local", str(tmp_path / "dst")))
    dst.log_artifact(Artifact("gru", "model").add_bytes("mine", b"dst's own"), aliases=["best"])
    populate(src)
    src.copy_to(dst, ["gru:best"])
    # gru:v1 of the source (and nothing of v0 or v2, not upstream of it) is v1 here; the alias moved
    assert [v.version for v in dst.versions("gru")] == [0, 1]
    assert dst.artifact("gru:best").digest == src.artifact("gru:best").digest
    assert dst.artifact("gru:best").version == 1
    src.copy_to(dst)  # then everything: v0 and v2 of the source follow as v2 and v3
    assert [v.digest for v in dst.versions("gru")][1:] == [
        src.artifact(r).digest for r in ("gru:v1", "gru:v0", "gru:v2")
    ]
    # with lineage: the dataset and the runs behind gru:best, and the eval run that used it
    eval_run = src.artifact("gru:best").consumed_by()[0]
    assert [r.id for r in dst.artifact("gru:best").consumed_by()] == [eval_run.id]
    assert dst.artifact("reviews").digest == src.artifact("reviews").digest
    # without lineage, only the version
    other = open_(Backend("local", str(tmp_path / "other")))
    report = src.copy_to(other, ["reviews"], with_lineage=False)
    assert report.runs == 0 and other.artifact("reviews").produced_by() is None


@pytest.mark.parametrize("first", [["reviews"], ["gru:best"]])
def test_partial_syncs_keep_every_edge_of_a_run_copied_finished(
    tmp_path: Path, first: list[str]
) -> None:
    """A first sync of some refs copies their runs finished; a later sync of other refs still attaches
    the outputs and inputs those runs had, so the lineage ends as a full sync would leave it."""
    src = open_(Backend("local", str(tmp_path / "src")))
    populate(src)
    full = open_(Backend("local", str(tmp_path / "full")))
    src.copy_to(full)
    dst = open_(Backend("local", str(tmp_path / "dst")))
    src.copy_to(dst, first)
    src.copy_to(dst)
    for name in ("gru", "reviews"):  # the destination numbers versions by its own log
        by_digest = {v.digest: v for v in dst.versions(name)}
        for want in src.versions(name):
            got = by_digest[want.digest]
            producer = want.produced_by()
            assert producer is not None and got.produced_by() is not None, want.ref
            assert got.produced_by().id == producer.id, want.ref  # type: ignore[union-attr]
            assert sorted(r.id for r in got.consumed_by()) == sorted(
                r.id for r in want.consumed_by()
            ), want.ref
    lin = (dst.lineage("gru:best", "both"), full.lineage("gru:best", "both"))
    assert len(lin[0].edges) == len(lin[1].edges) and len(lin[0].nodes) == len(lin[1].nodes)
    assert dst.verify().ok


def test_a_copied_edge_cannot_claim_another_run(tmp_path: Path) -> None:
    """``source.run_seq`` only opens the finished run that entry really copied; naming another source
    entry is refused by the rules, as every reader decides it."""
    from artifacts.catalog.entries import build

    src = open_(Backend("local", str(tmp_path / "src")))
    populate(src)
    dst = open_(Backend("local", str(tmp_path / "dst")))
    src.copy_to(dst, ["reviews"])
    train = next(r for r in dst.runs() if r.job_type == "train")
    prepare = next(r for r in dst.runs() if r.job_type == "prepare")
    starts = {
        obj["run"]["id"]: seq
        for seq, obj in ((raw.seq, json.loads(raw.data)) for raw in src.log.read_after(0))
        if obj["op"] == "run_started"
    }
    entry = {
        "run_id": train.id,
        "name": "reviews",
        "version": 0,
        "source": {"store": src.info["id"], "seq": 10**6, "run_seq": starts[prepare.id]},
    }
    with pytest.raises(artifacts.ArtifactsError, match="finished"):
        dst.catalog.commit(build("artifact_used", entry))
    assert prepare.id not in [r.id for r in dst.artifact("reviews").consumed_by()]
    entry["run_id"] = prepare.id  # the run that source entry started: taken
    entry["source"]["seq"] = 10**6 + 1
    dst.catalog.commit(build("artifact_used", entry))
    assert prepare.id in [r.id for r in dst.artifact("reviews").consumed_by()]


def test_destination_quota_applies_to_the_copying_user(tmp_path: Path) -> None:
    src = open_(Backend("local", str(tmp_path / "src")))
    populate(src)
    dst = open_(Backend("local", str(tmp_path / "dst")), user="admin")
    dst.set_quota("bob", 10_000)
    as_bob = open_(Backend("local", str(tmp_path / "dst")), user="bob")
    with pytest.raises(artifacts.QuotaExceededError, match="bob.*nothing was copied"):
        src.copy_to(as_bob)
    assert as_bob.log.head() == 1 and not list(as_bob.blobs.iter_blobs())
    dst.set_quota("bob", None)
    assert src.copy_to(as_bob).versions == 4


def test_sigkill_mid_sync_then_resume(tmp_path: Path) -> None:
    src_url, dst_url = str(tmp_path / "src"), str(tmp_path / "dst")
    src = open_(Backend("local", src_url))
    for i in range(150):
        src.log_artifact(Artifact(f"a{i % 3}", "data").add_bytes("f", f"content {i}".encode()))
    code = (
        "import artifacts, sys\n"
        "s = artifacts.open_store(sys.argv[1]); d = artifacts.open_store(sys.argv[2])\n"
        "s.copy_to(d)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen([sys.executable, "-c", code, src_url, dst_url], env=env)
    log = Path(dst_url) / "log"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if log.is_dir() and len(os.listdir(log)) >= 20:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    dst = open_(Backend("local", dst_url))
    done = dst.log.head()
    assert 15 <= done < 150, "the sync was not killed half-way"
    report = src.copy_to(dst)
    assert report.skipped == done and report.entries == 150 - done
    for name in ("a0", "a1", "a2"):
        assert [v.digest for v in dst.versions(name)] == [v.digest for v in src.versions(name)]
    seqs = [json.loads(e.data)["source"]["seq"] for e in dst.log.read_after(0)]
    assert sorted(seqs) == list(range(1, 151))  # each source entry exactly once
    assert src.copy_to(dst).entries == 0


def test_cli_sync(tmp_path: Path) -> None:
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    populate(open_(Backend("local", src)))
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    cmd = [sys.executable, "-m", "artifacts.cli", "sync", src, dst]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("copied 4 versions and 3 runs")
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "is up to date" in r.stdout
    r = subprocess.run([*cmd, "nosuch:v3"], capture_output=True, text=True, env=env)
    assert r.returncode == 1 and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1
    r = subprocess.run([*cmd[:-1], src], capture_output=True, text=True, env=env)
    assert r.returncode == 1 and "same store" in r.stderr


SYNC = (
    "import artifacts, json, sys\n"
    "s = artifacts.open_store(sys.argv[1])\n"
    "d = artifacts.open_store(sys.argv[2], storage_options=json.loads(sys.argv[3]))\n"
    "print(s.copy_to(d).to_json())\n"
)


def test_two_syncs_at_once_into_one_store_copy_each_entry_once(
    shared_backend: Backend, tmp_path: Path
) -> None:
    """Two nodes syncing the same source into one team store at the same moment: the store's rule
    refuses a second copy of a source entry, so neither duplicates a version or a run."""
    src_url = str(tmp_path / "src")
    src = open_(Backend("local", src_url))
    populate(src)
    for i in range(30):
        src.log_artifact(Artifact(f"a{i % 2}", "data").add_bytes("f", f"content {i}".encode()))
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    argv = [src_url, shared_backend.url, json.dumps(shared_backend.storage_options)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SYNC, *argv], env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    reports = [json.loads(p.communicate(timeout=600)[0]) for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    dst = open_(shared_backend)
    copied = [json.loads(e.data)["source"]["seq"] for e in dst.log.read_after(0)]
    assert len(copied) == len(set(copied)), "a source entry was copied twice"
    assert sum(r["entries"] for r in reports) == len(copied)
    assert all(r["entries"] + r["skipped"] == len(copied) for r in reports)
    assert dst.index.rejected() == []
    assert answers(dst) == answers(src)
    assert src.copy_to(dst).entries == 0


def test_what_was_copied_is_rebuilt_from_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The index's record of copies is a cache like the rest: a machine with an empty cache (or an
    index of an older format, rebuilt on open) knows from the log alone what was copied."""
    src = open_(Backend("local", str(tmp_path / "src")))
    populate(src)
    dst_url = str(tmp_path / "dst")
    first = src.copy_to(open_(Backend("local", dst_url)))
    monkeypatch.setenv("ARTIFACTS_CACHE_DIR", str(tmp_path / "other-machine"))
    dst = open_(Backend("local", dst_url))
    again = src.copy_to(dst)
    assert again.entries == 0 and again.skipped == first.entries


@pytest.mark.s3
def test_a_corrupt_source_blob_stops_a_batched_sync_before_any_entry(
    local_backend: Backend, s3_backend: Backend
) -> None:
    """Small blobs go to S3 in concurrent batches; each is checked against its digest before any
    entry that names it is committed."""
    src = open_(local_backend)
    art = Artifact("many", "dataset")
    for i in range(40):
        art.add_bytes(f"f{i}.txt", b"file %d\n" % i * 50)
    v = src.log_artifact(art)
    bad = v.local_blob_path("f7.txt")
    assert bad is not None
    os.chmod(bad, 0o644)
    bad.write_bytes(bad.read_bytes()[::-1])  # same size, other bytes
    dst = open_(s3_backend, user="bob")
    with pytest.raises(artifacts.IntegrityError, match="is corrupt"):
        src.copy_to(dst)
    assert dst.artifacts() == [] and dst.log.head() == 0
    bad.write_bytes(b"file 7\n" * 50)  # repaired: the sync goes through, verified
    report = src.copy_to(dst)
    assert report.versions == 1 and report.blobs >= 1  # the rest went up in the first attempt
    got = dst.artifact("many")
    assert all(got.read_bytes(f"f{i}.txt") == b"file %d\n" % i * 50 for i in range(40))
