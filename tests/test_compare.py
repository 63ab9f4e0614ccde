"""Run comparison and version diffs: from manifests alone, and tensor values through the torch adapter."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from test_cli import Cli

import artifacts
from artifacts.torch import add_state_dict, tensor_differences


def _store(backend: Any) -> artifacts.Store:
    return artifacts.open_store(backend.url, storage_options=backend.storage_options)


def test_compare_runs_config_summary_and_inputs(backend: Any) -> None:
    store = _store(backend)
    for i in range(2):
        d = artifacts.Artifact("reviews", type="dataset")
        d.add_bytes("train.csv", f"rows {i}".encode())
        store.log_artifact(d)
    ids = []
    for i, ref in enumerate(["reviews:v0", "reviews:v1", "reviews:v1"]):
        cfg = {
            "lr": [1e-3, 1e-4, 1e-4][i],
            "opt": {"name": "adam", "beta": 0.9},
            "seed": i if i else 1,
        }
        if i == 2:
            cfg["extra"] = True
        with store.start_run(project="p", config=cfg) as run:
            run.use_artifact(ref)
            run.log({"val_acc": 0.5 + i / 10})
        ids.append(run.id)
    cmp = store.compare_runs([ids[0][:6], ids[1], ids[2]])
    assert cmp.runs == tuple(ids)
    assert cmp.config == {"extra": [None, None, True], "lr": [1e-3, 1e-4, 1e-4], "seed": [1, 1, 2]}
    assert cmp.same_config == {"opt.beta": 0.9, "opt.name": "adam"}
    assert cmp.summary == {"val_acc": [0.5, 0.6, 0.7]}
    assert cmp.inputs[ids[0]] == ["reviews:v0"]
    assert cmp.different_inputs == {"reviews": ["reviews:v0", "reviews:v1", "reviews:v1"]}
    assert '"same_config"' in cmp.to_json()
    with pytest.raises(artifacts.InvalidValueError, match="2 to"):
        store.compare_runs([ids[0]])
    with pytest.raises(artifacts.InvalidValueError, match="twice"):
        store.compare_runs([ids[0], ids[0][:5]])
    with pytest.raises(artifacts.NotFoundError):
        store.compare_runs([ids[0], "ffffffffffff"])


def test_diff_files_tensors_and_bytes(backend: Any) -> None:
    store = _store(backend)
    emb = torch.arange(4000, dtype=torch.float32).reshape(1000, 4)
    a = artifacts.Artifact("gru", type="model")
    add_state_dict(
        a,
        {
            "emb": emb,
            "fc": torch.zeros(2, 2),
            "gone": torch.ones(3),
            "mask": torch.tensor([True, False]),
        },
    )
    a.add_bytes("notes.txt", b"v0")
    va = store.log_artifact(a)
    b = artifacts.Artifact("gru", type="model")
    fc = torch.tensor([[0.0, 0.25], [-3.5, 0.0]])
    add_state_dict(
        b,
        {
            "emb": emb,
            "fc": fc,
            "mask": torch.tensor([True, True]),
            "new": torch.zeros(2, 3, dtype=torch.float16),
        },
    )
    b.add_bytes("notes.txt", b"v0")
    vb = store.log_artifact(b)
    d = store.diff(va.ref, vb.ref)
    assert [c.path for c in d.added] == ["tensors/new"] and d.added[0].dtype_b == "float16"
    assert d.added[0].shape_b == [2, 3] and d.added[0].size_a is None
    assert [c.path for c in d.removed] == ["tensors/gone"]
    assert [c.path for c in d.changed] == ["state.json", "tensors/fc", "tensors/mask"]
    assert d.unchanged == 2  # emb and notes.txt
    assert all(c.max_abs_diff is None for c in d.changed)
    sizes_b = {f.digest: f.size for f in vb.files()}
    shared = {f.digest for f in va.files()} & set(sizes_b)
    assert d.bytes_shared == sum(sizes_b[x] for x in shared) >= emb.numel() * 4
    assert d.bytes_new == sum(s for x, s in sizes_b.items() if x not in shared)
    full = tensor_differences(va, vb, d)
    values = {c.path: c.max_abs_diff for c in full.changed}
    assert values == {"state.json": None, "tensors/fc": 3.5, "tensors/mask": 1.0}
    assert tensor_differences(va, va).changed == ()
    same = store.diff(va.ref, va.ref)
    assert (same.added, same.removed, same.changed, same.bytes_new) == ((), (), (), 0)


def test_cli_compare_and_diff(local_backend: Any) -> None:
    cli = Cli(local_backend.url)
    cli.ok("init")
    store = cli.store()
    ids = []
    for lr in (1e-3, 1e-4):
        with store.start_run(project="p", config={"lr": lr, "bs": 32}) as run:
            run.log({"val_acc": lr * 1000})
        ids.append(run.id)
    for scale in (1.0, 1.5):
        a = artifacts.Artifact("gru", type="model")
        add_state_dict(a, {"w": torch.ones(3) * scale})
        store.log_artifact(a)
    store.close()
    lines = cli.ok("compare", ids[0][:5], ids[1][:5]).stdout.splitlines()
    assert lines[0].split() == ids and lines[1].startswith("config (1 differ)")
    assert lines[2].split() == ["lr", "0.001", "0.0001"] and lines[4].split() == [
        "val_acc",
        "1",
        "0.1",
    ]
    assert "1 config keys are the same" in lines[-1]
    assert cli.json("compare", *ids)["same_config"] == {"bs": 32}
    cli.fails("compare", ids[0], match="at least two")
    out = cli.ok("diff", "gru:v0", "gru:v1").stdout
    assert out.startswith("gru:v0 -> gru:v1: 1 changed, 0 added, 0 removed, 1 unchanged")
    assert "max |diff| 0.5" in out
    assert "max |diff|" not in cli.ok("diff", "gru:v0", "gru:v1", "--no-values").stdout
    changed = cli.json("diff", "gru:v0", "gru:v1")["changed"]
    assert [(c["path"], c["max_abs_diff"]) for c in changed] == [("tensors/w", 0.5)]
    cli.fails("diff", "gru:v0", "gru:v7", match="gru:v7 not found")
