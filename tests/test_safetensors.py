"""safetensors in and out, checked against the `safetensors` library itself; hostile headers."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

import artifacts
from artifacts import Artifact
from artifacts.safetensors import SafetensorsError, parse_header, read_header
from artifacts.torch import checkpoint_artifact
from tests.conftest import Backend


def open_(b: Backend) -> artifacts.Store:
    return artifacts.open_store(b.url, storage_options=b.storage_options)


def base_tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "embed.weight": torch.randn(64, 16, generator=g),
        "gru.weight_ih": torch.randn(48, 16, generator=g).to(torch.bfloat16),
        "head.bias": torch.zeros(3, dtype=torch.float64),
        "mask": torch.tensor([True, False, True]),
        "steps": torch.arange(5, dtype=torch.int64),
        "empty": torch.empty(0, 4),
        "scalar": torch.tensor(7, dtype=torch.int16),
        "half": torch.randn(3, 3, generator=g).half(),
        "u8": torch.arange(7, dtype=torch.uint8),
    }


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert torch.equal(a[k].view(-1).view(torch.uint8), b[k].view(-1).view(torch.uint8)), k


def test_round_trip_through_the_store(backend: Backend, tmp_path: Path) -> None:
    tensors = base_tensors()
    src = tmp_path / "model.safetensors"
    save_file(tensors, str(src), metadata={"format": "pt", "source": "hub"})
    store = open_(backend)
    v = store.log_artifact(Artifact("m", "model").add_safetensors(src))
    # restored as a state_dict, without the safetensors library
    same(v.load_state_dict(), tensors)
    assert {f.meta["dtype"] for f in v.files() if "dtype" in f.meta} >= {"bfloat16", "bool"}
    # exported: the library reads it back, with the ingested metadata
    out1, out2 = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    v.save_safetensors(out1)
    store.artifact("m:v0").save_safetensors(out2)
    same(load_file(str(out1)), tensors)
    assert out1.read_bytes() == out2.read_bytes()  # deterministic
    assert read_header(out1).metadata == {"format": "pt", "source": "hub"}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left
    # re-ingesting the export gives the very same version (same manifest)
    again = store.log_artifact(Artifact("m", "model").add_safetensors(out1))
    assert again.version == 0 and again.digest == v.digest


def test_state_dict_checkpoints_export_and_share_blobs(
    local_backend: Backend, tmp_path: Path
) -> None:
    model = torch.nn.Sequential(torch.nn.Embedding(50, 8), torch.nn.Linear(8, 2))
    store = open_(local_backend)
    ck = store.log_artifact(checkpoint_artifact("gru", model=model, epoch=1))
    out = tmp_path / "gru.safetensors"
    ck.save_safetensors(out)  # a checkpoint_artifact exports its model/ part by default
    same(load_file(str(out)), {k: v.detach() for k, v in model.state_dict().items()})
    # the same weights ingested from the file are the blobs the checkpoint already holds
    sd = store.log_artifact(Artifact("gru-st", "model").add_safetensors(out))
    ck_blobs = {f.digest for f in ck.files() if "dtype" in f.meta}
    assert {f.digest for f in sd.files() if "dtype" in f.meta} <= ck_blobs
    with pytest.raises(SafetensorsError, match="no tensors under"):
        ck.save_safetensors(tmp_path / "x.safetensors", prefix="nothing/")


def test_two_fine_tunes_of_one_base_share_its_tensors(
    local_backend: Backend, tmp_path: Path
) -> None:
    base = base_tensors()
    ft1 = {**base, "head.bias": torch.ones(3, dtype=torch.float64)}
    ft2 = {**base, "head.bias": torch.full((3,), 2.0, dtype=torch.float64)}
    store = open_(local_backend)
    sizes = []
    for i, t in enumerate((base, ft1, ft2)):
        p = tmp_path / f"{i}.safetensors"
        save_file(t, str(p))
        store.log_artifact(Artifact("llm", "model").add_safetensors(p))
        sizes.append(sum(b.size for b in store.blobs.iter_blobs()))
    # each fine-tune added only its changed tensor (24 bytes) and a small state.json/manifest
    assert sizes[1] - sizes[0] < 2000 and sizes[2] - sizes[1] < 2000
    full = sum(t.numel() * t.element_size() for t in base.values())
    assert full > 5000
    v1, v2 = store.artifact("llm:v1"), store.artifact("llm:v2")
    t1 = {f.path: f.digest for f in v1.files() if "dtype" in f.meta}
    t2 = {f.path: f.digest for f in v2.files() if "dtype" in f.meta}
    assert [p for p in t1 if t1[p] != t2[p]] == ["tensors/head.bias"]
    same(v2.load_state_dict(), ft2)


def test_quota_precheck_counts_tensor_ranges(local_backend: Backend, tmp_path: Path) -> None:
    p = tmp_path / "m.safetensors"
    save_file({"w": torch.zeros(1000)}, str(p))
    store = open_(local_backend)
    store.set_quota("alice", 1000)
    with pytest.raises(artifacts.QuotaExceededError, match="nothing was uploaded"):
        store.log_artifact(Artifact("m", "model").add_safetensors(p))
    assert not list(store.blobs.iter_blobs())


def header_file(
    tmp_path: Path, header: object, data: bytes = b"", raw: bytes | None = None
) -> Path:
    body = raw if raw is not None else json.dumps(header).encode()
    p = tmp_path / "bad.safetensors"
    p.write_bytes(struct.pack("<Q", len(body)) + body + data)
    return p


F4 = {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}


@pytest.mark.parametrize(
    ("header", "data", "match"),
    [
        ({"a": {**F4, "data_offsets": [0, 8]}}, b"\0" * 4, "not .begin, end. within"),
        ({"a": F4, "b": {**F4, "data_offsets": [2, 6]}}, b"\0" * 8, "overlaps"),
        ({"a": F4, "b": {**F4, "data_offsets": [5, 9]}}, b"\0" * 9, "gap at 4"),
        ({"a": F4}, b"\0" * 8, "cover 4 of the 8 bytes"),
        ({"a": {**F4, "shape": [2**40, 2**40]}}, b"\0" * 4, "need .* bytes, its offsets span 4"),
        ({"a": {**F4, "shape": [1] * 65}}, b"\0" * 4, "at most 64"),
        ({"a": {**F4, "shape": [-1]}}, b"\0" * 4, "negative"),
        ({"a": {**F4, "shape": [True]}}, b"\0" * 4, "non-integer"),
        ({"a": {**F4, "dtype": "F128"}}, b"\0" * 4, "unknown dtype 'F128'"),
        ({"a": {**F4, "dtype": ["F32"]}}, b"\0" * 4, "unknown dtype"),
        ({"a": {**F4, "extra": 1}}, b"\0" * 4, "exactly dtype, shape and data_offsets"),
        ({"a": {**F4, "data_offsets": [4, 0]}}, b"\0" * 4, "data_offsets"),
        ({"a": {**F4, "data_offsets": [0.0, 4]}}, b"\0" * 4, "data_offsets"),
        ({"__metadata__": {"k": 1}}, b"", "__metadata__"),
        ([1, 2], b"", "does not start with"),
        ({"": F4}, b"\0" * 4, "empty"),
    ],
)
def test_hostile_headers_are_refused(
    tmp_path: Path, header: object, data: bytes, match: str
) -> None:
    p = header_file(tmp_path, header, data)
    with pytest.raises(SafetensorsError, match=match):
        Artifact("m", "model").add_safetensors(p)


def test_hostile_header_lengths_and_bytes(tmp_path: Path) -> None:
    cases = [
        (struct.pack("<Q", 2**63) + b"{}", "claims 9223372036854775808 bytes; the limit"),
        (struct.pack("<Q", 1000) + b"{}", "claims 1000 bytes but the file has 2"),
        (b"\x01\x02", "shorter than the 8-byte"),
        (struct.pack("<Q", 4) + b"\xff\xfe{}", "does not start with"),
        (struct.pack("<Q", 4) + b"{\xff}}", "not JSON"),
        (struct.pack("<Q", 14) + b'{"a":1, "a":2}', "appears twice"),
        (struct.pack("<Q", 6005) + b'{"a":' + b"[" * 3000 + b"]" * 3000, "not JSON"),
    ]
    for raw, match in cases:
        p = tmp_path / "h.safetensors"
        p.write_bytes(raw)
        with pytest.raises(SafetensorsError, match=match):
            read_header(p)
    with pytest.raises(artifacts.NotFoundError):
        read_header(tmp_path / "missing.safetensors")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(header=st.binary(max_size=300), data_size=st.integers(0, 2**64))
def test_fuzzed_header_bytes_give_one_error_or_a_valid_tiling(
    header: bytes, data_size: int
) -> None:
    try:
        h = parse_header(header, data_size)
    except SafetensorsError as e:
        assert "\n" not in str(e)
        return
    pos = h.data_start
    for t in h.tensors:  # anything accepted tiles the data exactly
        assert t.start == pos
        pos = t.end
    assert pos == h.data_start + data_size


_dims = st.lists(st.integers(0, 2**62), max_size=4)
_entry = st.fixed_dictionaries(
    {
        "dtype": st.sampled_from(["F32", "I8", "BF16", "BOOL", "X"]),
        "shape": _dims,
        "data_offsets": st.lists(st.integers(-2, 64), min_size=2, max_size=2),
    }
)


@settings(max_examples=300, deadline=None)
@given(tensors=st.dictionaries(st.text(max_size=5), _entry, max_size=4), data=st.integers(0, 64))
def test_fuzzed_structured_headers_agree_with_the_library(tensors: dict, data: int) -> None:
    """Every header we accept, the safetensors library also loads (and to the same tensors)."""
    header = json.dumps(tensors).encode()
    try:
        h = parse_header(header, data)
    except SafetensorsError:
        return
    from safetensors import deserialize

    blob = struct.pack("<Q", len(header)) + header + bytes(range(data))
    lib = {name: (info["shape"], bytes(info["data"])) for name, info in deserialize(blob)}
    ours = {t.name: (list(t.shape), blob[t.start : t.end]) for t in h.tensors}
    assert lib == ours


def test_cli_get_as_safetensors(local_backend: Backend, tmp_path: Path) -> None:
    src = tmp_path / "m.safetensors"
    save_file(base_tensors(), str(src))
    store = open_(local_backend)
    store.log_artifact(Artifact("m", "model").add_safetensors(src))
    out = tmp_path / "out.safetensors"
    cmd = [sys.executable, "-m", "artifacts.cli", "--store", local_backend.url, "-q"]
    r = subprocess.run([*cmd, "get", "m", str(out), "--as", "safetensors"], capture_output=True)
    assert r.returncode == 0, r.stderr
    same(load_file(str(out)), base_tensors())
    r = subprocess.run([*cmd, "get", "m", str(out), "--as", "safetensors"], capture_output=True)
    assert r.returncode == 1 and b"exists" in r.stderr and b"Traceback" not in r.stderr
    bad = header_file(tmp_path, {"a": {**F4, "data_offsets": [0, 8]}}, b"\0" * 4)
    r = subprocess.run([*cmd, "put", "x", str(bad), "--type", "model", "--safetensors"],
                       capture_output=True)  # fmt: skip
    assert r.returncode == 1 and r.stderr.count(b"\n") == 1 and b"data_offsets" in r.stderr
