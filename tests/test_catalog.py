"""The catalog contract: runs, versions, aliases, lineage, quotas, index rebuild; on every backend."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest

import artifacts
from artifacts import Artifact
from artifacts.catalog.entries import VersionLogged
from tests.conftest import Backend


def open_(b: Backend, user: str | None = None) -> artifacts.Store:
    return artifacts.open_store(b.url, user=user, storage_options=b.storage_options)


def art(name: str, payload: bytes, type: str = "dataset", **kw: object) -> Artifact:
    return Artifact(name, type, **kw).add_bytes("data.bin", payload)


def blob_count(store: artifacts.Store) -> int:
    return sum(1 for _ in store.blobs.iter_digests())


class TestVersions:
    def test_numbering_refs_and_content(self, backend: Backend) -> None:
        store = open_(backend)
        v0 = store.log_artifact(art("reviews", b"one", metadata={"rows": 1}))
        v1 = store.log_artifact(art("reviews", b"two"), aliases=["best"])
        assert (v0.ref, v1.ref) == ("reviews:v0", "reviews:v1")
        assert v0.metadata["rows"] == 1 and v0.user == "alice" and v0.type == "dataset"
        assert store.artifact("reviews").ref == "reviews:v1"
        assert store.artifact("reviews:latest").ref == "reviews:v1"
        assert store.artifact("reviews:v0").read_bytes("data.bin") == b"one"
        assert store.artifact("reviews:best").aliases == ("best",)
        assert [f.path for f in v1.files()] == ["data.bin"] and v1.size == 3
        assert [v.version for v in store.versions("reviews")] == [0, 1]
        [summary] = store.artifacts()
        assert (summary.name, summary.versions, summary.size) == ("reviews", 2, 6)

    def test_identical_content_is_not_a_new_version_but_records_producer(
        self, backend: Backend
    ) -> None:
        store = open_(backend)
        with store.start_run(project="p") as r1:
            first = r1.log_artifact(art("m", b"weights", type="model"))
        with store.start_run(project="p") as r2:
            again = r2.log_artifact(art("m", b"weights", type="model"), aliases=["prod"])
        assert again.ref == first.ref == "m:v0"
        assert again.aliases == ("prod",)
        assert first.produced_by() == r1
        assert {r.id for r in again.producers()} == {r1.id, r2.id}
        assert [v.ref for v in store.run(r2.id).outputs()] == ["m:v0"]

    def test_aliases_move_and_reserved_names(self, backend: Backend) -> None:
        store = open_(backend)
        store.log_artifact(art("m", b"a", type="model"), aliases=["best"])
        store.log_artifact(art("m", b"b", type="model"))
        store.set_alias("m:v1", "best")
        assert store.artifact("m:best").version == 1
        assert store.artifact("m:v0").aliases == ()
        store.remove_alias("m", "best")
        with pytest.raises(artifacts.NotFoundError, match="best"):
            store.artifact("m:best")
        for bad in ("latest", "v7", "a b", ""):
            with pytest.raises(artifacts.InvalidNameError):
                store.set_alias("m:v0", bad)

    def test_delete_version_keeps_numbers_gapless(self, backend: Backend) -> None:
        store = open_(backend)
        for payload in (b"0", b"1"):
            store.log_artifact(art("d", payload), aliases=["x"])
        store.delete_version("d:v1")
        with pytest.raises(artifacts.NotFoundError, match="deleted"):
            store.artifact("d:v1")
        assert store.artifact("d").ref == "d:v0"
        with pytest.raises(artifacts.NotFoundError):
            store.artifact("d:x")  # the alias went with the deleted version
        assert store.log_artifact(art("d", b"2")).ref == "d:v2"  # numbers are never reused
        with pytest.raises(artifacts.InvalidNameError):
            store.delete_version("d")

    def test_bad_input(self, backend: Backend) -> None:
        store = open_(backend)
        for name in ("", "a/b", "a:b", "has space", "x" * 129, ".hidden"):
            with pytest.raises(artifacts.InvalidNameError):
                Artifact(name, "dataset")
        with pytest.raises(artifacts.NotFoundError, match="no artifact named 'nope'"):
            store.artifact("nope:v0")
        store.log_artifact(art("d", b"x"))
        with pytest.raises(artifacts.InvalidStateError, match="type"):
            store.log_artifact(art("d", b"y", type="model"))
        with pytest.raises(artifacts.InvalidValueError, match="empty"):
            store.log_artifact(Artifact("e", "dataset"))
        with pytest.raises(artifacts.InvalidValueError, match="JSON"):
            Artifact("e", "dataset", metadata={"f": object()})
        for path in ("../x", "/etc/passwd", "a/../../b", "a//b", "C:/x"):
            with pytest.raises(artifacts.InvalidPathError):
                Artifact("e", "dataset").add_bytes(path, b"x")


class TestRuns:
    def test_run_records_everything(self, backend: Backend) -> None:
        store = open_(backend)
        with store.start_run(
            project="p", config={"lr": 0.1}, name="first", job_type="train", group="g"
        ) as run:
            run.log({"loss": 1.0})
            run.log({"loss": 0.5, "acc": 0.7}, step=5)
            run.summary["test_acc"] = 0.9
            assert run.status == "running"
        rec = store.run(run.id)
        assert rec.status == "finished" and rec.user == "alice" and rec.config == {"lr": 0.1}
        assert (rec.name, rec.group, rec.job_type, rec.project) == ("first", "g", "train", "p")
        assert rec.summary == {"loss": 0.5, "acc": 0.7, "test_acc": 0.9}
        assert rec.history() == [{"loss": 1.0, "_step": 0}, {"loss": 0.5, "acc": 0.7, "_step": 5}]
        assert rec.host and rec.command and rec.env["versions"]["python"]
        assert [r.id for r in store.runs(project="p")] == [run.id]
        assert store.runs(project="other") == []

    def test_failed_block_marks_run_failed(self, backend: Backend) -> None:
        store = open_(backend)
        with pytest.raises(RuntimeError), store.start_run(project="p") as run:
            raise RuntimeError("boom")
        assert store.run(run.id).status == "failed"

    def test_finished_run_refuses_logging(self, backend: Backend) -> None:
        store = open_(backend)
        with store.start_run(project="p") as run:
            with pytest.raises(artifacts.InvalidValueError):
                run.log({"bad": object()})
        for action in (lambda: run.log({"x": 1}), lambda: run.log_artifact(art("d", b"x"))):
            with pytest.raises(artifacts.InvalidStateError, match="finished"):
                action()
        live = store.start_run(project="p")
        elsewhere = open_(backend).run(live.id)
        with pytest.raises(artifacts.InvalidStateError, match="read-only"):
            elsewhere.log({"x": 1})
        live.finish()

    def test_init_shortcut(self, backend: Backend) -> None:
        run = artifacts.init(
            project="p", config={"a": 1}, url=backend.url, storage_options=backend.storage_options
        )
        run.log({"x": 1})
        run.finish()
        assert open_(backend).run(run.id).summary == {"x": 1}


def _pipeline(store: artifacts.Store) -> dict[str, str]:
    """dataset -> prepare run -> vocabulary -> train run -> model -> evaluate run (metric)."""
    with store.start_run(project="p", job_type="prepare") as prep:
        prep.log_artifact(art("reviews", b"csv"))
    with store.start_run(project="p", job_type="vocab") as voc:
        voc.use_artifact("reviews:latest")
        voc.log_artifact(art("vocab", b"tokens", type="vocabulary"))
    with store.start_run(project="p", job_type="train") as train:
        train.use_artifact("reviews:v0")
        train.use_artifact("vocab:latest")
        train.log_artifact(art("gru", b"weights", type="model"), aliases=["best"])
    with store.start_run(project="p", job_type="evaluate") as ev:
        ev.use_artifact("gru:best")
        ev.summary["test_acc"] = 0.8
    return {"prep": prep.id, "voc": voc.id, "train": train.id, "eval": ev.id}


class TestLineage:
    def test_upstream_downstream_and_renderings(self, backend: Backend) -> None:
        store = open_(backend)
        ids = _pipeline(store)
        up = store.lineage("gru:best")
        assert {n.id for n in up.versions()} == {"gru:v0", "vocab:v0", "reviews:v0"}
        assert {n.attrs["run_id"] for n in up.runs()} == {ids["train"], ids["voc"], ids["prep"]}
        assert ("run/" + ids["train"], "gru:v0", "produced") in {
            (e.source, e.target, e.kind) for e in up.edges
        }
        down = store.lineage("reviews:v0", direction="downstream")
        assert "run/" + ids["eval"] in {n.id for n in down.nodes}
        assert down.node("run/" + ids["eval"]).attrs["summary"] == {"test_acc": 0.8}
        shallow = store.lineage("gru:v0", depth=1)
        assert {n.id for n in shallow.versions()} == {"gru:v0", "vocab:v0", "reviews:v0"}
        assert "run/" + ids["prep"] not in {n.id for n in shallow.nodes}
        metric = store.lineage("run/" + ids["eval"])
        assert "reviews:v0" in {n.id for n in metric.versions()}
        d = up.to_dict()
        assert json.loads(json.dumps(d))["root"] == "gru:v0"
        assert up.to_dot().startswith("digraph") and "->" in up.to_dot()
        assert up.to_mermaid().startswith("flowchart") and "-->|produced|" in up.to_mermaid()
        assert "produced by" in up.to_tree()
        assert store.artifact("gru:v0").produced_by().id == ids["train"]
        assert [r.id for r in store.artifact("gru:v0").consumed_by()] == [ids["eval"]]
        assert [v.ref for v in store.run(ids["train"]).inputs()] == ["reviews:v0", "vocab:v0"]

    def test_index_rebuild_and_second_machine_agree(
        self, backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        store = open_(backend)
        _pipeline(store)
        before = (
            store.lineage("gru:best", direction="both").to_dict(),
            [(a.name, a.versions) for a in store.artifacts()],
            store.usage(),
        )
        store.reindex()
        rebuilt = (
            store.lineage("gru:best", direction="both").to_dict(),
            [(a.name, a.versions) for a in store.artifacts()],
            store.usage(),
        )
        monkeypatch.setenv("ARTIFACTS_CACHE_DIR", str(tmp_path / "other-machine"))
        other = open_(backend, user="bob")
        seen = (
            other.lineage("gru:best", direction="both").to_dict(),
            [(a.name, a.versions) for a in other.artifacts()],
            other.usage("alice"),
        )
        assert before == rebuilt == seen
        assert other.index.path != store.index.path


class TestQuota:
    def test_quota_refused_before_upload(self, backend: Backend) -> None:
        store = open_(backend)
        assert store.is_admin()
        store.set_quota("alice", 10)
        store.log_artifact(art("d", b"123456"))
        assert store.usage() == 6 and store.quota() == 10
        store.log_artifact(art("e", b"123456"))  # the same blob: counted once
        assert store.usage() == 6
        blobs, head = blob_count(store), store.index.last_seq
        with pytest.raises(artifacts.QuotaExceededError, match="quota"):
            store.log_artifact(art("d", b"0123456789"))
        assert blob_count(store) == blobs and store.index.last_seq == head
        store.delete_version("d:v0")
        assert store.usage() == 6  # e:v0 still holds the blob
        store.set_quota("alice", None)
        store.log_artifact(art("d", b"0123456789"))

    def test_only_admins(self, backend: Backend) -> None:
        open_(backend).log_artifact(art("d", b"x"))
        bob = open_(backend, user="bob")
        with pytest.raises(artifacts.PermissionDeniedError):
            bob.set_quota("bob", 10**9)
        with pytest.raises(artifacts.PermissionDeniedError):
            bob.delete_version("d:v0")
        open_(backend).add_admin("bob")
        bob.set_quota("alice", 5)
        assert bob.quota("alice") == 5

    def test_commit_time_check_rejects_over_quota_entry(self, backend: Backend) -> None:
        """An entry that passed the pre-upload check but lost to a racing commit is refused at the head."""
        store = open_(backend)
        store.set_quota("alice", 8)
        store.log_artifact(art("a", b"12345"))
        manifest = artifacts.manifest.Manifest.build(
            [artifacts.FileEntry("data.bin", store.blobs.put_bytes(b"67890").digest, 5)]
        )
        entry = VersionLogged(name="b", type="dataset", digest=manifest.digest, manifest=manifest)
        with pytest.raises(artifacts.QuotaExceededError):
            store.catalog.commit(entry)
        assert store.usage() == 5 and [a.name for a in store.artifacts()] == ["a"]


class TestLog:
    def test_malformed_entry_is_reported_and_skipped(self, backend: Backend) -> None:
        store = open_(backend)
        store.log_artifact(art("d", b"x"))
        seq = store.index.last_seq + 1
        store.root.create_exclusive(f"log/{seq:020d}.json", b"{not json")
        store.log_artifact(art("d", b"y"))
        assert store.artifact("d").ref == "d:v1"
        assert [s for s, _ in store.index.rejected()] == [seq]
        report = store.verify()
        assert not report.ok and any(str(seq) in p for p in report.problems)

    def test_foreign_entry_breaking_rules_is_rejected_by_every_reader(
        self, backend: Backend
    ) -> None:
        store = open_(backend)
        seq = store.index.last_seq + 1
        entry = {
            "format": 1,
            "seq": seq,
            "op": "quota_set",
            "user": "mallory",
            "ts": "x",
            "target": "alice",
            "bytes": 1,
        }
        store.root.create_exclusive(f"log/{seq:020d}.json", json.dumps(entry).encode())
        store.log_artifact(art("d", b"fine"))
        assert store.quota("alice") is None
        assert "admin" in dict(store.index.rejected())[seq]


def _writer(url: str, options: dict, cache: str, worker: int, n: int, out: str) -> None:
    os.environ["ARTIFACTS_CACHE_DIR"] = cache
    store = artifacts.open_store(url, user=f"u{worker % 2}", storage_options=options)
    done = []
    for i in range(n):
        try:
            v = store.log_artifact(art("shared", f"{worker}-{i}".encode()))
        except artifacts.QuotaExceededError:
            continue
        done.append(v.ref)
        Path(out).write_text("\n".join(done))
        store.set_alias(v.ref, "head")


def test_eight_processes_commit_gapless_versions(shared_backend: Backend, tmp_path: Path) -> None:
    """8 OS processes log versions of one name and move one alias at once: no gap, no loss."""
    store = open_(shared_backend)
    store.set_quota("u0", 4 * 3)  # each of u0's versions holds 3 distinct bytes: at most 4 fit
    ctx = multiprocessing.get_context("spawn")
    n = 4
    procs = [
        ctx.Process(
            target=_writer,
            args=(
                shared_backend.url,
                shared_backend.storage_options,
                str(tmp_path / f"cache{w}"),
                w,
                n,
                str(tmp_path / f"out{w}"),
            ),
        )
        for w in range(8)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    committed = set()
    for w in range(8):
        out = tmp_path / f"out{w}"
        if out.exists():
            committed |= set(out.read_text().split())
    versions = store.versions("shared")
    assert [v.version for v in versions] == list(range(len(versions)))
    assert {v.ref for v in versions} >= committed
    assert len(committed) == len(versions)
    assert store.usage("u0") == 12  # the quota filled up exactly, never past it
    u1 = [v for v in versions if v.user == "u1"]
    assert len(u1) == 4 * n  # u1 has no quota: every one of its commits landed
    assert store.artifact("shared:head").ref in committed
    assert store.verify().ok


def test_a_commit_holds_the_index_only_across_a_local_create(
    shared_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On local disk the commit's index transaction stays open across the log create (about a ms:
    the entry is applied once); on S3 a create may take seconds of retries, so the transaction is
    closed before it and another process of this index is never kept waiting on the network. Seen
    from a second SQLite connection to the same index file, as another process would open it."""
    import sqlite3

    store = open_(shared_backend)
    store.log_artifact(Artifact("warm", "data").add_bytes("a", b"0"))  # the index exists
    log = store.catalog.log
    real = log.create
    seen: list[bool] = []

    def create(seq: int, data: bytes) -> None:
        other = sqlite3.connect(store.catalog.index.path, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
            seen.append(False)
        except sqlite3.OperationalError as e:
            assert "locked" in str(e)
            seen.append(True)
        finally:
            other.close()
        real(seq, data)

    monkeypatch.setattr(log, "create", create)
    v = store.log_artifact(Artifact("held", "data").add_bytes("a", b"1"))
    assert seen == [shared_backend.kind == "local"]
    assert (v.version, store.artifact("held:latest").version) == (0, 0)
    store.close()
    again = open_(shared_backend)  # a fresh replay agrees with what the commit applied
    assert again.artifact("held:latest").digest == v.digest
