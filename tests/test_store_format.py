"""The store format is a promise: a store written by an earlier main opens with the same answers.

``tests/fixtures/store_v1`` was written by main at 2c25c21 (before typed log entries) with
``tests/fixtures/make_store_v1.py``; the expected answers below are what that code answered.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import artifacts

FIXTURE = Path(__file__).parent / "fixtures" / "store_v1"


@pytest.fixture
def old_store(tmp_path: Path) -> artifacts.Store:
    dest = tmp_path / "store_v1"
    shutil.copytree(FIXTURE, dest)
    return artifacts.open_store(dest, user="alice")


def test_store_written_by_main_2c25c21_opens_with_its_answers(old_store: artifacts.Store) -> None:
    s = old_store
    assert [(a.name, a.type, a.versions, a.size) for a in s.artifacts()] == [
        ("model", "model", 2, 22),
        ("reviews", "dataset", 1, 37),
        ("scratch", "dataset", 0, 0),
    ]
    model = s.artifact("model:best")
    assert (model.ref, model.description, model.aliases) == ("model:v1", "epoch 1", ("best",))
    assert model.digest == "2b992a4bd325b83819a8c9138ba96b3145059ec3999aae97087a5b29ddeb9748"
    assert s.artifact("model:v0").aliases == ()  # "first" was set, then removed
    assert s.artifact("reviews:raw").ref == "reviews:v0"
    with pytest.raises(artifacts.NotFoundError):
        s.artifact("scratch:v0")  # deleted
    assert s.admins() == ["alice", "bob"]
    assert (s.quota("bob"), s.quota("carol"), s.usage("alice")) == (10_000_000, None, 59)
    runs = s.runs()
    assert [(r.job_type, r.status, r.summary) for r in runs] == [
        ("prepare", "finished", {"rows": 2}),
        ("train", "finished", {"loss": 0.5}),
    ]
    assert runs[1].history() == [{"_step": 0, "loss": 1.0}, {"_step": 1, "loss": 0.5}]
    assert [str(v) for v in runs[1].inputs()] == ["reviews:v0"]
    assert [str(v) for v in runs[1].outputs()] == ["model:v0", "model:v1"]
    assert (runs[1].name, runs[1].group, runs[1].config) == ("t1", "g", {})
    assert model.produced_by() == runs[1]
    assert model.read_bytes("weights.json") == b'{"w":[1,2]}'
    lineage = s.lineage("model:best")
    assert sorted(n.id for n in lineage.nodes) == sorted(
        ["model:v1", "reviews:v0", f"run/{runs[0].id}", f"run/{runs[1].id}"]
    )
    report = s.verify()
    assert report.ok, report.problems
    assert report.entries_checked == 16


def test_old_store_accepts_new_commits(old_store: artifacts.Store) -> None:
    a = artifacts.Artifact("model", type="model")
    a.add_json("weights.json", {"w": [9]})
    assert old_store.log_artifact(a).ref == "model:v2"
    assert old_store.verify().ok
