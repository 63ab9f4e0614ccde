"""Hostile content in a store is refused with one line, never a crash (issue 18 item 5).

Whoever can write to a bucket can write anything: state.json trees that abuse ``_metadata`` or nest
past the recursion limit, log entries whose ``metadata``/``config`` are lists, snapshots whose rows do,
JSON documents nested 100,000 deep under every name a loader reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import artifacts
from artifacts import Artifact, ArtifactsError
from artifacts.untrusted import check_depth, load_json
from tests._snapshots import rewrite_newest_snapshot
from tests.conftest import Backend
from tests.test_cli import Cli

DEEP = b"[" * 100_000 + b"]" * 100_000


def open_(b: Backend) -> artifacts.Store:
    return artifacts.open_store(b.url, storage_options=b.storage_options)


def test_load_json_refuses_deep_and_mistyped_documents() -> None:
    for data in (DEEP, b'{"a": ' * 50_000 + b"1" + b"}" * 50_000):
        with pytest.raises(ValueError, match="nested"):
            load_json(data, "x", expect=None)
    with pytest.raises(ValueError, match="not an object but list"):
        load_json(b"[1]", "x")
    with pytest.raises(ValueError, match="not JSON"):
        load_json(b"\xff", "x")
    with pytest.raises(ValueError, match="deeper than 3"):
        check_depth([[[[1]]]], "x", limit=3)
    assert load_json(b'{"a": [1]}', "x") == {"a": [1]}


def _state(tree: Any) -> bytes:
    text = tree if isinstance(tree, bytes) else json.dumps(tree).encode()
    return b'{"format": 1, "tree": ' + text + b"}"


def _nested_metadata(depth: int) -> bytes:
    return b'{"odict": [], "_metadata": ' * depth + b'{"odict": []}' + b"}" * depth


@pytest.mark.parametrize(
    "tree",
    [
        {"dict": [["w", 1]], "_metadata": {"dict": []}},  # a plain dict cannot carry _metadata
        _nested_metadata(5000),
        _nested_metadata(300),  # parses, but deeper than any state_dict
        b'{"list": [' * 3000 + b"1" + b"]}" * 3000,
    ],
    ids=["metadata-on-dict", "metadata-deep", "metadata-300", "list-deep"],
)
def test_hostile_state_json_is_a_checkpoint_error(backend: Backend, tree: Any) -> None:
    pytest.importorskip("torch")
    store = open_(backend)
    v = store.log_artifact(Artifact("ckpt", "model").add_bytes("state.json", _state(tree)))
    with pytest.raises(ArtifactsError, match="state.json|malformed"):
        v.load_state_dict()


def test_hostile_checkpoint_and_deep_state_file(backend: Backend) -> None:
    pytest.importorskip("torch")
    store = open_(backend)
    v = store.log_artifact(
        Artifact("c", "model")
        .add_bytes("state.json", DEEP)
        .add_bytes("checkpoint.json", b'{"parts": 5}')
        .add_bytes("model/state.json", _state({"dict": []}))
    )
    with pytest.raises(ArtifactsError, match="nested too deeply"):
        v.load_state_dict()
    import torch

    from artifacts.torch import restore_checkpoint

    with pytest.raises(ArtifactsError, match="checkpoint.json is malformed"):
        restore_checkpoint(v, model=torch.nn.Linear(1, 1))


def _raw_entry(store: artifacts.Store, **changes: Any) -> int:
    """Copy the last entry with ``changes`` as the next one (no prev: a foreign writer's)."""
    seq = store.index.last_seq
    body = json.loads(store.root.read(f"log/{seq:020d}.json"))
    body.pop("prev", None)
    body.pop("commit", None)
    nest = body.get("run") if body.get("op") == "run_started" else body
    for k, v in changes.items():
        nest[k] = v
    body["seq"] = seq + 1
    store.root.create_exclusive(f"log/{seq + 1:020d}.json", json.dumps(body).encode())
    return seq + 1


def test_entries_with_mistyped_json_fields_are_rejected_not_crashing(
    backend: Backend,
) -> None:
    cli = Cli(backend.url, backend.storage_options)
    store = open_(backend)
    store.log_artifact(Artifact("m", "dataset", metadata={"a": 1}).add_bytes("x", b"1"))
    bad_meta = _raw_entry(store, metadata=[1, 2])
    with store.start_run(project="p", config={"lr": 1}) as run:
        pass
    store.sync()
    started = json.loads(store.root.read(f"log/{store.index.last_seq - 1:020d}.json"))
    assert started["op"] == "run_started"
    body = dict(started, seq=store.index.last_seq + 1)
    body.pop("prev", None)
    body.pop("commit", None)
    body["run"] = dict(body["run"], id="evilrun00001", config=[1, 2])
    bad_config = store.index.last_seq + 1
    store.root.create_exclusive(f"log/{bad_config:020d}.json", json.dumps(body).encode())
    cli.ok("ls", "m")
    cli.ok("run", run.id)
    cli.fails("run", "evilrun00001", match="not found")
    report = open_(backend).verify()
    rejected = [p for p in report.problems if "was rejected" in p]
    assert any(f"log entry {bad_meta} " in p and "metadata" in p for p in rejected), rejected
    assert any(f"log entry {bad_config} " in p and "config" in p for p in rejected), rejected


@pytest.mark.parametrize(
    "update",
    [
        "UPDATE versions SET metadata='[1, 2]'",
        "UPDATE runs SET config='[1]'",
        "UPDATE runs SET tags='{}'",
        "UPDATE files SET meta='\"x\"'",
        "UPDATE runs SET config='not json'",
    ],
)
def test_snapshot_with_mistyped_rows_is_refused(
    local_backend: Backend, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, update: str
) -> None:
    monkeypatch.setenv("ARTIFACTS_SNAPSHOT_EVERY", "3")
    monkeypatch.setenv("ARTIFACTS_PACK_SIZE", "0")
    store = open_(local_backend)
    store.log_artifact(Artifact("m", "dataset", metadata={"a": 1}).add_bytes("x", b"1"))
    with store.start_run(project="p", config={"lr": 1}, tags=["t"]) as run:
        run.log({"loss": 1.0})
    store.reader.background.wait(30)
    store.close()
    rewrite_newest_snapshot(store.root, lambda c: c.execute(update))
    monkeypatch.setenv("ARTIFACTS_CACHE_DIR", str(tmp_path / "cold"))
    with pytest.warns(artifacts.StoreWarning, match="not a JSON"):
        again = open_(local_backend)
    cli = Cli(local_backend.url)
    assert again.artifact("m:v0").metadata == {"a": 1}
    assert dict(again.run(run.id).config) == {"lr": 1}
    cli.ok("ls", "m")
    cli.ok("run", run.id)
    again.close()


def test_ui_preview_of_a_deep_json_file_is_plain_text(backend: Backend) -> None:
    from artifacts.ui.views import file_preview

    store = open_(backend)
    v = store.log_artifact(Artifact("j", "dataset").add_bytes("deep.json", DEEP[:20_000] + DEEP[-20_000:]))
    view = file_preview(v, "deep.json")
    assert view["kind"] != "json" and view["text"].startswith("[[[")


def test_export_of_a_manifest_with_a_bad_tensor_key_is_one_error(
    backend: Backend, tmp_path: Path
) -> None:
    from artifacts.safetensors import save_safetensors

    store = open_(backend)
    bad = {
        "tensors/#%5B%5B%5B": b"\0\0\0\0",  # "#" marks a JSON key segment: this one is no JSON
        "tensors/#" + "%5B" * 300 + "%5D" * 300: b"\0\0\0\0",  # and this one too deep (> 200)
    }
    for path, data in bad.items():
        v = store.log_artifact(
            Artifact("t", "model").add_bytes(path, data, meta={"dtype": "float32", "shape": [1]})
        )
        with pytest.raises(ArtifactsError, match="names no tensor"):
            save_safetensors(v, tmp_path / "out.safetensors")
