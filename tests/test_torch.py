"""Torch checkpoints stored tensor by tensor, vocabularies, and the GRU example end to end."""

from __future__ import annotations

import json
import os
import pickle
import random
import subprocess
import sys
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import artifacts
from artifacts import Artifact
from artifacts.manifest import canonical_json
from artifacts.names import check_path
from artifacts.torch import (
    STATE_FORMAT,
    CheckpointError,
    add_state_dict,
    checkpoint_artifact,
    decode_key_path,
    encode_key_path,
    load_state_dict,
    restore_checkpoint,
    restore_model,
)
from artifacts.vocab import Vocabulary, VocabularyError, add_vocabulary, load_vocabulary
from tests.conftest import Backend

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def open_(b: Backend) -> artifacts.Store:
    return artifacts.open_store(b.url, storage_options=b.storage_options)


def stored(store: artifacts.Store) -> tuple[int, int]:
    """(number of blobs, total bytes) in the store."""
    blobs = list(store.blobs.iter_blobs())
    return len(blobs), sum(b.size for b in blobs)


def raw(t: torch.Tensor) -> bytes:
    return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def assert_same(a: Any, b: Any) -> None:
    """Equal structure, types and bits (NaNs included)."""
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, torch.Tensor):
        assert (a.dtype, a.shape) == (b.dtype, b.shape)
        assert raw(a) == raw(b)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    elif isinstance(a, float) and a != a:
        assert b != b
    else:
        assert a == b


def sample_state() -> dict[Any, Any]:
    g = torch.Generator().manual_seed(0)
    base = torch.randn(6, 5, generator=g)
    return OrderedDict(
        [
            ("f32", base),
            ("f16", base.half()),
            ("bf16", base.bfloat16()),
            ("i64", torch.arange(-5, 7, dtype=torch.int64).reshape(3, 4)),
            ("u8", torch.arange(200, 256, dtype=torch.uint8)),
            ("bool", base > 0),
            ("c64", torch.complex(base, -base)),
            ("transposed", base.t()),
            ("strided", base[::2, 1::2]),
            ("expanded", torch.arange(3.0).expand(4, 3)),
            ("scalar", torch.tensor(3.25)),
            ("empty", torch.empty(0, 7)),
            ("nan", torch.tensor([float("nan"), float("inf"), -0.0])),
            ("layer.0.weight", base[:2]),
        ]
    )


# -- state_dict round trips ---------------------------------------------------------------------
class TestRoundTrip:
    def test_bit_exact_every_dtype_and_layout(self, backend: Backend) -> None:
        store = open_(backend)
        state = sample_state()
        v = store.log_artifact(Artifact("ck", "model").add_state_dict(state))
        entry = v.file("tensors/bf16")
        assert (entry.meta["dtype"], entry.meta["shape"]) == ("bfloat16", [6, 5])
        assert v.file("tensors/strided").meta["shape"] == [3, 2]
        assert v.file("tensors/strided").size == 3 * 2 * 4
        out = v.load_state_dict()
        assert_same(state, out)
        assert type(out) is OrderedDict
        assert out["transposed"].is_contiguous()
        out["f32"][0, 0] = 123.0  # tensors are writable, and writing never reaches the store
        assert_same(store.artifact("ck:v0").load_state_dict()["f32"], state["f32"])

    def test_nested_structures_and_plain_values(self, memory_backend: Backend) -> None:
        store = open_(memory_backend)
        state = {
            "state": {0: {"step": torch.tensor(3.0), "buf": torch.ones(2)}, 1: {}},
            "groups": [{"lr": 0.1, "betas": (0.9, 0.999), "params": [0, 1], "name": None}],
            "weird keys": {"a/b": torch.zeros(1), "": 1, ".": 2, "..": 3, "#x": 4, 1.5: 5, True: 6},
            (1, "t"): "tuple key",
            "floats": [float("inf"), float("-inf"), float("nan"), 1e-300, 2.0],
            "np": np.arange(6, dtype=np.int32).reshape(2, 3),
            "np_scalar": np.float64(0.5),
            "dtype": torch.float16,
            "empty": [],
        }
        art = Artifact("n", "model").add_state_dict(state, prefix="opt")
        v = store.log_artifact(art)
        assert {f.path for f in v.files()} >= {
            "opt/state.json",
            "opt/tensors/state/#0/step",
            "opt/tensors/weird%20keys/a%2Fb",
        }
        out = load_state_dict(v, "opt/")
        expected = dict(state, np_scalar=0.5)
        assert_same(expected, out)

    def test_shared_tensors_are_one_blob(self, memory_backend: Backend) -> None:
        store = open_(memory_backend)
        w = torch.randn(32, 32)
        v = store.log_artifact(Artifact("tied", "model").add_state_dict({"enc": w, "dec": w}))
        assert v.file("tensors/enc").digest == v.file("tensors/dec").digest
        assert stored(store)[0] == 3  # one tensor blob, state.json, the manifest

    @settings(
        max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(
        st.lists(
            st.one_of(
                st.text(max_size=12),
                st.integers(),
                st.booleans(),
                st.none(),
                st.tuples(st.integers(), st.text(max_size=3)),
            ),
            min_size=1,
            max_size=5,
        )
    )
    def test_key_paths_round_trip_and_are_valid_paths(self, keys: list[Any]) -> None:
        path = encode_key_path(keys)
        check_path("tensors/" + path)
        assert decode_key_path(path) == tuple(keys)
        assert all(type(a) is type(b) for a, b in zip(decode_key_path(path), keys, strict=True))


class TestDedup:
    def test_unchanged_tensors_write_no_bytes(self, backend: Backend) -> None:
        store = open_(backend)
        torch.manual_seed(0)
        model = nn.Sequential(nn.Embedding(1000, 64), nn.Linear(64, 64), nn.Linear(64, 2))
        store.log_artifact(Artifact("m", "model").add_state_dict(model.state_dict()))
        n0, b0 = stored(store)
        # Same tensors plus a small new entry: a new version, whose tensors cost nothing.
        art = Artifact("m", "model").add_state_dict(model.state_dict()).add_json("e.json", [1])
        v1 = store.log_artifact(art)
        n1, b1 = stored(store)
        assert v1.version == 1
        assert (n1 - n0, b1 - b0) == (2, len(b"[1]") + store.blobs.size(v1.digest))
        # A fine-tune step on the last layer only: its two tensors are the only new tensor bytes.
        with torch.no_grad():
            model[2].weight.add_(1.0)
            model[2].bias.add_(1.0)
        v2 = store.log_artifact(Artifact("m", "model").add_state_dict(model.state_dict()))
        n2, b2 = stored(store)
        changed = (64 * 2 + 2) * 4
        assert (n2 - n1, b2 - b1) == (3, changed + store.blobs.size(v2.digest))
        assert v2.size > 10 * changed  # the version is whole; the store holds only the change

    def test_checkpoint_of_frozen_embedding_stores_only_changes(
        self, local_backend: Backend
    ) -> None:
        store = open_(local_backend)
        torch.manual_seed(0)
        model = nn.Sequential(nn.Embedding(2000, 32), nn.Flatten(), nn.Linear(32 * 4, 2))
        model[0].weight.requires_grad_(False)
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad])
        x = torch.randint(0, 2000, (8, 4))
        versions = []
        for epoch in range(3):
            opt.zero_grad()
            model(x).sum().backward()
            opt.step()
            before = stored(store)[1]
            changed = sum(p.numel() * 4 * 3 for p in model[2].parameters())  # params + 2 moments
            versions.append(
                store.log_artifact(
                    checkpoint_artifact("ft", model=model, optimizer=opt, epoch=epoch)
                )
            )
            growth = stored(store)[1] - before
            if epoch > 0:
                assert changed <= growth <= 1.05 * changed + 16 * 1024, (growth, changed)
        emb = versions[0].file("model/tensors/0.weight")
        assert {v.file("model/tensors/0.weight").digest for v in versions} == {emb.digest}


class TestOptimizer:
    def test_adam_and_scheduler_round_trip(self, backend: Backend) -> None:
        store = open_(backend)
        torch.manual_seed(0)
        model = nn.GRU(8, 16)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.8, 0.99), amsgrad=True)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
        for _ in range(3):
            opt.zero_grad()
            model(torch.randn(5, 3, 8))[0].pow(2).mean().backward()
            opt.step()
            sched.step()
        art = Artifact("opt", "model")
        add_state_dict(art, opt.state_dict(), "optimizer/")
        add_state_dict(art, sched.state_dict(), "scheduler/")
        v = store.log_artifact(art)
        loaded = v.load_state_dict("optimizer/")
        assert_same(opt.state_dict(), loaded)
        assert loaded["param_groups"][0]["betas"] == (0.8, 0.99)
        opt2 = torch.optim.Adam(model.parameters(), lr=1.0)
        opt2.load_state_dict(loaded)
        assert_same(opt.state_dict(), opt2.state_dict())
        sched2 = torch.optim.lr_scheduler.StepLR(opt2, step_size=9)
        sched2.load_state_dict(v.load_state_dict("scheduler"))
        assert_same(sched.state_dict(), sched2.state_dict())


# -- safety: nothing is unpickled -----------------------------------------------------------------
class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))  # unpickling this creates the marker file


def _forbid_pickle(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*a: Any, **k: Any) -> Any:
        raise AssertionError("pickle used on store content")

    for mod, attr in [
        (pickle, "load"),
        (pickle, "loads"),
        (pickle, "Unpickler"),
        (torch, "load"),
    ]:
        monkeypatch.setattr(mod, attr, boom)


@pytest.mark.parametrize("kind", ["memory", "local"])
def test_pickle_payload_in_checkpoint_is_never_executed(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_(request.getfixturevalue(f"{kind}_backend"))
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Evil(marker))
    pt = tmp_path / "model.pt"
    torch.save({"w": _Evil(marker)}, pt)
    # The payload is live: unpickling it the way torch.load(weights_only=False) does runs it.
    pickle.loads(payload).close()
    assert marker.exists()
    marker.unlink()

    art = Artifact("evil", "model")
    art.add_bytes("model/tensors/w", payload, meta={"dtype": "uint8", "shape": [len(payload)]})
    art.add_bytes(
        "model/state.json",
        canonical_json(
            {"format": STATE_FORMAT, "tree": {"dict": [["w", {"tensor": "tensors/w"}]]}}
        ),
    )
    art.add_file(pt, "model/tensors.pt")
    art.add_bytes("rng/state.json", payload)  # a pickle where JSON is expected
    art.add_json("checkpoint.json", {"format": "artifacts.checkpoint/1", "parts": ["model", "rng"]})
    v = store.log_artifact(art)

    _forbid_pickle(monkeypatch)
    out = v.load_state_dict("model/")
    assert out["w"].dtype == torch.uint8 and bytes(out["w"].numpy()) == payload
    with pytest.raises(CheckpointError, match="rng/state.json"):
        v.load_state_dict("rng/")
    with pytest.raises(CheckpointError):
        restore_checkpoint(v, model=nn.Linear(1, 1))
    assert not marker.exists()


# -- bad input ------------------------------------------------------------------------------------
def _handmade(store: artifacts.Store, tree: Any, entries: dict[str, tuple[bytes, dict]]) -> Any:
    art = Artifact("bad", "model")
    art.add_bytes("state.json", canonical_json({"format": STATE_FORMAT, "tree": tree}))
    for path, (data, meta) in entries.items():
        art.add_bytes(path, data, meta=meta)
    return store.log_artifact(art)


class TestBadInput:
    def test_missing_tensor_entry(self, memory_backend: Backend) -> None:
        store = open_(memory_backend)
        v = _handmade(store, {"dict": [["w", {"tensor": "tensors/w"}]]}, {})
        with pytest.raises(CheckpointError, match=r"bad:v0: tensors/w.*missing"):
            v.load_state_dict()

    def test_unknown_dtype_and_size_mismatch(self, memory_backend: Backend) -> None:
        store = open_(memory_backend)
        tree = {"dict": [["w", {"tensor": "tensors/w"}]]}
        v = _handmade(store, tree, {"tensors/w": (b"12345678", {"dtype": "object", "shape": [1]})})
        with pytest.raises(CheckpointError, match=r"tensors/w: unknown dtype 'object'"):
            v.load_state_dict()
        v = _handmade(store, tree, {"tensors/w": (b"1234567", {"dtype": "float32", "shape": [2]})})
        with pytest.raises(CheckpointError, match=r"tensors/w: 7 bytes stored but .* need 8"):
            v.load_state_dict()
        v = _handmade(store, tree, {"tensors/w": (b"1234", {"dtype": "float32", "shape": "4"})})
        with pytest.raises(CheckpointError, match="malformed shape"):
            v.load_state_dict()

    def test_escaping_tensor_reference_is_refused(self, memory_backend: Backend) -> None:
        store = open_(memory_backend)
        v = _handmade(store, {"dict": [["w", {"tensor": "../../etc/passwd"}]]}, {})
        with pytest.raises(CheckpointError, match="invalid path"):
            v.load_state_dict()

    def test_not_a_state_dict(self, memory_backend: Backend) -> None:
        store = open_(memory_backend)
        v = store.log_artifact(Artifact("x", "model").add_bytes("state.json", b"[1, 2]"))
        with pytest.raises(CheckpointError, match="state.json is not a state_dict"):
            v.load_state_dict()
        with pytest.raises(CheckpointError, match="no state_dict under prefix 'model/'.*under ''"):
            v.load_state_dict("model")

    def test_unstorable_values(self) -> None:
        with pytest.raises(CheckpointError, match=r"cannot store a object at 'a'/'b'"):
            add_state_dict(Artifact("x", "model"), {"a": {"b": object()}})
        with pytest.raises(CheckpointError, match="takes a dict"):
            add_state_dict(Artifact("x", "model"), [torch.ones(1)])  # type: ignore[arg-type]
        with pytest.raises(CheckpointError, match="sparse"):
            add_state_dict(Artifact("x", "model"), {"s": torch.eye(2).to_sparse()})

    def test_restore_model_lists_key_shape_and_dtype_problems(
        self, memory_backend: Backend
    ) -> None:
        store = open_(memory_backend)
        model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
        v = store.log_artifact(Artifact("m", "model").add_state_dict(model.state_dict(), "model/"))
        other = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2), nn.Linear(2, 2))
        with pytest.raises(
            CheckpointError, match=r"missing keys \(in the model.*\(2\): 2.weight, 2.bias"
        ):
            restore_model(other, v)
        res = restore_model(other, v, strict=False)
        assert res.missing_keys == ["2.weight", "2.bias"] and res.unexpected_keys == []
        assert torch.equal(other[0].weight, model[0].weight)
        smaller = nn.Sequential(nn.Linear(4, 3))
        with pytest.raises(CheckpointError, match=r"unexpected keys .*1.weight, 1.bias"):
            restore_model(smaller, v)
        wider = nn.Sequential(nn.Linear(4, 5), nn.Linear(5, 2))
        with pytest.raises(
            CheckpointError,
            match=r"0.weight: stored float32\[3, 4\], the model has float32\[5, 4\]",
        ):
            restore_model(wider, v)
        with pytest.raises(
            CheckpointError, match=r"stored float32\[3, 4\], the model has float64\[3, 4\]"
        ):
            restore_model(nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2)).double(), v)

    def test_corrupt_local_blob(self, local_backend: Backend) -> None:
        store = open_(local_backend)
        v = store.log_artifact(Artifact("m", "model").add_state_dict({"w": torch.ones(256)}))
        path = v.local_blob_path("tensors/w")
        assert path is not None
        os.chmod(path, 0o644)
        path.write_bytes(b"\x00" * 1024)
        with pytest.raises(artifacts.IntegrityError, match="tensors/w"):
            v.load_state_dict()
        assert torch.equal(v.load_state_dict(verify=False)["w"], torch.zeros(256))
        path.write_bytes(b"\x00" * 10)
        with pytest.raises(artifacts.IntegrityError, match="holds 10 bytes"):
            v.load_state_dict()
        path.unlink()
        with pytest.raises(CheckpointError, match="missing from the store"):
            v.load_state_dict()

    def test_verified_blobs_are_not_rehashed_until_they_change(
        self, local_backend: Backend, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import artifacts.torch as at

        store = open_(local_backend)
        v = store.log_artifact(Artifact("m", "model").add_state_dict({"w": torch.ones(256)}))
        path = v.local_blob_path("tensors/w")
        assert path is not None
        old = time.time() - 60
        os.utime(path, (old, old))  # older than the stat cache's racy window
        hashed: list[int] = []
        real_hash = at.hash_bytes
        monkeypatch.setattr(at, "hash_bytes", lambda b: hashed.append(1) or real_hash(b))
        mapped: list[str] = []
        real_from_file = torch.from_file
        monkeypatch.setattr(
            torch, "from_file", lambda f, **kw: mapped.append(f) or real_from_file(f, **kw)
        )
        for _ in range(3):
            assert torch.equal(v.load_state_dict()["w"], torch.ones(256))
        assert len(hashed) == 1 and mapped == [str(path)] * 3  # memory-mapped, hashed once
        os.chmod(path, 0o644)
        path.write_bytes(torch.zeros(256).numpy().tobytes())  # same size, new content
        os.utime(path, (old, old))  # even with the old mtime back, ctime tells
        with pytest.raises(artifacts.IntegrityError, match="tensors/w"):
            v.load_state_dict()

    def test_a_checkpoint_restored_right_after_logging_is_not_rehashed(
        self, local_backend: Backend, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import artifacts.torch as at
        from storage import written

        store = open_(local_backend)
        big = torch.arange(300_000, dtype=torch.float32)  # above written.REMEMBER_MIN
        sd = {"big": big, "small": torch.ones(4)}
        v = store.log_artifact(Artifact("m", "model").add_state_dict(sd))
        hashed: list[int] = []
        real_hash = at.hash_bytes
        monkeypatch.setattr(at, "hash_bytes", lambda b: hashed.append(len(b)) or real_hash(b))
        restored = v.load_state_dict()  # within the stat cache's racy window: it alone would hash
        assert torch.equal(restored["big"], big) and torch.equal(restored["small"], sd["small"])
        assert hashed == [16]  # only the small tensor: this process wrote the big one's blob
        path = v.local_blob_path("tensors/big")
        assert path is not None
        os.chmod(path, 0o644)
        with open(path, "r+b") as f:  # damaged in place right away: the stat key tells
            f.write(b"\xff\xff\xff\xff")
        with pytest.raises(artifacts.IntegrityError, match="tensors/big"):
            v.load_state_dict()
        written.forget_all()  # another process: no memory of our writes, the racy rule applies
        v2 = store.log_artifact(Artifact("m2", "model").add_state_dict({"w": big + 1}))
        written.forget_all()
        hashed.clear()
        v2.load_state_dict()
        assert hashed == [big.numel() * 4]

    def test_not_a_vocabulary(self, memory_backend: Backend) -> None:
        store = open_(memory_backend)
        v = store.log_artifact(
            Artifact("voc", "vocabulary")
            .add_json("vocab.json", {"tokens": ["a"]})
            .add_bytes("x.bin", b"\x80")
        )
        with pytest.raises(VocabularyError, match=r"voc:v0: vocab.json is not a vocabulary"):
            load_vocabulary(v)
        with pytest.raises(VocabularyError, match=r"voc:v0: x.bin is not a vocabulary \(not JSON"):
            load_vocabulary(v, "x.bin")
        with pytest.raises(VocabularyError, match=r"voc:v0: nope.json: no such entry"):
            load_vocabulary(v, "nope.json")
        with pytest.raises(VocabularyError, match="specials"):
            Vocabulary(tokens=("a", "<pad>"), specials=("<pad>",), unk_token=None)


# -- vocabulary -----------------------------------------------------------------------------------
class TestVocabulary:
    def test_build_is_deterministic_and_canonical(self, backend: Backend) -> None:
        docs = [["the", "film", "is", "good"], ["the", "plot", "is", "bad"], ["good", "good", "!"]]
        vocab = Vocabulary.build(docs, min_freq=2)
        assert vocab.tokens == ("<pad>", "<unk>", "good", "is", "the")
        assert vocab.encode(["the", "unseen"]) == [4, 1] and vocab.pad_index == 0
        assert Vocabulary.build(list(reversed(docs)), min_freq=2).to_bytes() == vocab.to_bytes()
        assert len(Vocabulary.build(docs, max_size=4)) == 4
        store = open_(backend)
        v0 = store.log_artifact(add_vocabulary(Artifact("voc", "vocabulary"), vocab))
        v1 = store.log_artifact(
            add_vocabulary(Artifact("voc", "vocabulary"), Vocabulary.build(docs[::-1], min_freq=2))
        )
        assert v1.ref == v0.ref == "voc:v0"
        assert load_vocabulary(v0) == vocab

    @settings(
        max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(st.lists(st.lists(st.sampled_from("abcdefgh"), max_size=6), max_size=8), st.randoms())
    def test_order_independent(self, docs: list[list[str]], rnd: random.Random) -> None:
        shuffled = list(docs)
        rnd.shuffle(shuffled)
        a, b = Vocabulary.build(docs), Vocabulary.build(shuffled)
        assert a.to_bytes() == b.to_bytes()
        assert Vocabulary.from_bytes(a.to_bytes()) == a


# -- exact resume ---------------------------------------------------------------------------------
def _setup(seed: int) -> tuple[nn.Module, Any, Any]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 16), nn.Dropout(0.3), nn.Tanh(), nn.Linear(16, 2))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.8)
    return model, opt, sched


def _epoch(model: nn.Module, opt: Any, sched: Any) -> float:
    model.train()
    x = torch.randn(32, 6) * (1 + float(np.random.rand())) + random.random()
    loss = model(x).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()
    return loss.item()


@pytest.mark.parametrize("kind", ["memory", "local"])
def test_resume_continues_exactly(kind: str, request: pytest.FixtureRequest) -> None:
    store = open_(request.getfixturevalue(f"{kind}_backend"))

    def seed_all(s: int) -> None:
        torch.manual_seed(s)
        np.random.seed(s)
        random.seed(s)

    seed_all(1)
    model, opt, sched = _setup(7)
    straight = [_epoch(model, opt, sched) for _ in range(6)]

    seed_all(1)
    model_b, opt_b, sched_b = _setup(7)
    first = [_epoch(model_b, opt_b, sched_b) for _ in range(3)]
    v = store.log_artifact(
        checkpoint_artifact(
            "resume", model=model_b, optimizer=opt_b, scheduler=sched_b, epoch=2, extra={"n": 3}
        )
    )
    del model_b, opt_b, sched_b

    seed_all(99)  # a different process state: other init, other RNG positions
    model_c, opt_c, sched_c = _setup(123)
    info = restore_checkpoint(v, model=model_c, optimizer=opt_c, scheduler=sched_c)
    assert info == {"epoch": 2, "extra": {"n": 3}}
    rest = [_epoch(model_c, opt_c, sched_c) for _ in range(3)]
    assert first + rest == straight
    assert_same(model.state_dict(), model_c.state_dict())
    assert_same(opt.state_dict(), opt_c.state_dict())
    assert_same(sched.state_dict(), sched_c.state_dict())


def test_restore_checkpoint_needs_a_checkpoint(memory_backend: Backend) -> None:
    store = open_(memory_backend)
    model = nn.Linear(2, 2)
    v = store.log_artifact(Artifact("m", "model").add_state_dict(model.state_dict(), "model/"))
    with pytest.raises(CheckpointError, match="not a checkpoint made by checkpoint_artifact"):
        restore_checkpoint(v, model=model)
    v = store.log_artifact(checkpoint_artifact("c", model=model, rng=False))
    with pytest.raises(CheckpointError, match="holds no optimizer state"):
        restore_checkpoint(v, model=model, optimizer=torch.optim.SGD(model.parameters(), lr=1))


# -- the example, end to end ----------------------------------------------------------------------
TINY = ["--max-reviews", "300", "--epochs", "2", "--hidden", "16", "--embed-dim", "16"]


def _script(name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    if check and out.returncode != 0:
        raise AssertionError(f"{name} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out


def test_example_end_to_end_reproduces_exactly(tmp_path: Path) -> None:
    url = str(tmp_path / "store")
    out = _script("train_gru.py", "--store", url, *TINY).stdout
    assert "reproduced exactly" in out and "produced by train" in out
    store = artifacts.open_store(url)
    [ev] = [r for r in store.runs() if r.job_type == "evaluate"]
    assert ev.summary["test_n"] == 30 and 0 <= ev.summary["test_acc"] <= 1
    assert {v.type for v in ev.inputs()} == {"model", "dataset", "vocabulary"}
    [ck] = [v for v in ev.inputs() if v.type == "model"]
    assert ck.aliases == ("best",)

    # A fresh process reproduces the logged metric exactly, from a run id or from a model ref.
    rep = _script("reproduce.py", ev.id, "--store", url).stdout
    assert "reproduced exactly" in rep and f"checkpoint {ck.ref}" in rep
    assert (
        "reproduced exactly" in _script("reproduce.py", "gru-sentiment:v1", "--store", url).stdout
    )

    # A logged number that the checkpoint does not give is reported, with exit status 1.
    with store.start_run(project="x", job_type="evaluate", config={"split": "test"}) as run:
        run.use_artifact(ck.ref)
        run.log({"test_acc": 0.123, "test_loss": 1.0, "test_correct": 1})
    bad = _script("reproduce.py", run.id, "--store", url, check=False)
    assert bad.returncode == 1 and "DIFFERENT" in bad.stdout

    ft = _script("finetune.py", "--store", url, "--epochs", "1").stdout
    assert "saved" in ft
    [ftv] = store.versions("gru-sentiment-finetune")
    assert (
        ftv.file("model/tensors/embedding.weight").digest
        == ck.file("model/tensors/embedding.weight").digest
    )


def test_example_on_s3_with_synthetic_data(s3_backend: Backend) -> None:
    opts = json.dumps(s3_backend.storage_options)
    out = _script(
        "train_gru.py", "--store", s3_backend.url, "--storage-options", opts, "--synthetic", *TINY
    ).stdout
    assert "synthetic-reviews:v0" in out and "reproduced exactly" in out
