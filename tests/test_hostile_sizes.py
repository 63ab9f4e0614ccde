"""Hostile sizes in store content: quadratic work and unbounded allocation (issue 11 item 11).

Each case writes what an attacker with write access to the bucket would (a blob, a log entry, a
heartbeat, through the store's own backend) and checks that every reader gets one clear line or a
fast, linear answer. Timing bounds here are generous guards against the quadratic behaviour (a 40k-token
vocabulary took 24 s to refuse); the measured figures are in benchmarks/README.md.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

import artifacts
from artifacts import Artifact, ArtifactsError, IntegrityError, StoreWarning, bounds
from artifacts.catalog.log import log_path
from artifacts.chunks import chunk_path, heartbeat_path, json_lines, read_chunks, read_heartbeat
from artifacts.manifest import canonical_json
from artifacts.tensors import STATE_FORMAT, CheckpointError
from artifacts.vocab import VOCAB_FORMAT, Vocabulary, VocabularyError, load_vocabulary
from storage import hash_bytes
from tests.conftest import Backend
from tests.test_cli import Cli


def open_(b: Backend, user: str | None = None) -> artifacts.Store:
    return artifacts.open_store(b.url, user=user, storage_options=b.storage_options)


def _foreign_version(store: artifacts.Store, name: str, files: dict[str, dict[str, Any]]) -> int:
    """Commit a ``version_logged`` entry for ``files`` by hand (as a foreign writer: no prev, no
    commit id), with the manifest digest it must carry; returns its sequence number."""
    store.sync()
    seq = store.index.last_seq
    template = json.loads(store.root.read(f"log/{seq:020d}.json"))
    assert template["op"] == "version_logged"
    manifest = {"files": files, "format": 1}
    body = {
        **{k: v for k, v in template.items() if k not in ("prev", "commit")},
        "name": name,
        "manifest": manifest,
        "digest": hash_bytes(canonical_json(manifest)),
        "seq": seq + 1,
    }
    store.root.create_exclusive(f"log/{seq + 1:020d}.json", json.dumps(body).encode())
    return seq + 1


def _rejected(store: artifacts.Store, seq: int) -> str:
    report = store.verify(quick=True)
    hits = [p for p in report.problems if f"log entry {seq} was rejected" in p]
    assert hits, report.problems
    return hits[0]


# -- vocabularies ------------------------------------------------------------------------------------
def _vocab_bytes(tokens: list[str]) -> bytes:
    doc = {"format": VOCAB_FORMAT, "tokens": tokens, "specials": ["<pad>", "<unk>"]}
    return canonical_json({**doc, "unk_token": "<unk>", "pad_token": "<pad>"})


def test_a_40k_token_vocabulary_with_a_repeat_is_refused_fast(backend: Backend) -> None:
    n = 40_000
    tokens = ["<pad>", "<unk>", *(f"t{i}" for i in range(n - 3)), f"t{n - 4}"]  # the last repeats
    store = open_(backend)
    bad = store.log_artifact(Artifact("v", "vocabulary").add_bytes("vocab.json", _vocab_bytes(tokens)))
    start = time.perf_counter()
    with pytest.raises(VocabularyError, match=rf"token 't{n - 4}' appears more than once "
                       rf"\(at indices {n - 2} and {n - 1}\)"):
        load_vocabulary(bad)
    assert time.perf_counter() - start < 5  # 24 s with a tokens.count() per token
    good = store.log_artifact(
        Artifact("v", "vocabulary").add_bytes("vocab.json", _vocab_bytes(tokens[:-1]))
    )
    start = time.perf_counter()
    assert len(load_vocabulary(good)) == n - 1
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize(
    ("tokens", "match"),
    [
        (["<pad>", "<unk>", "a", "b", "a"], r"'a' appears more than once \(at indices 2 and 4\)"),
        (["<pad>", "<pad>", "<unk>"], r"'<pad>' appears more than once \(at indices 0 and 1\)"),
        (["<pad>", "<unk>", "x" * 10_000, "x" * 10_000], r"'xxx+\.\.\. appears more than once"),
        (["<pad>", "<unk>", 1], "every token must be a string"),
    ],
)
def test_vocabulary_repeats_name_the_token_and_both_positions(tokens: list[Any], match: str) -> None:
    with pytest.raises(VocabularyError, match=match) as e:
        Vocabulary(tokens=tuple(tokens))
    assert len(str(e.value)) < 300  # a 10k-character token is shortened, not echoed


# -- tensors: shapes checked against the bytes before anything is allocated --------------------------
HOSTILE_SHAPES = [
    [2**40, 2**40],  # 4 TiB of float32 for a 4-byte blob
    [-1],
    [2**64],  # past int64: torch would overflow
    [0, 2**64],  # zero bytes, but no real tensor has this shape
    [1] * 65,  # more dimensions than torch or safetensors allow
    [1] * 1_000,
    [10**4000] * 200,  # 800 kB of digits: multiplying them out would run for minutes
    [True],
    [1.0],
    "4",
    None,
]


@pytest.mark.parametrize("shape", HOSTILE_SHAPES, ids=lambda s: str(s)[:20])
def test_hostile_tensor_shapes_are_one_error(
    memory_backend: Backend, tmp_path: Path, shape: Any
) -> None:
    pytest.importorskip("torch")
    from artifacts.safetensors import save_safetensors

    store = open_(memory_backend)
    tree = {"dict": [["w", {"tensor": "tensors/w"}]]}
    art = Artifact("bad", "model").add_bytes(
        "state.json", canonical_json({"format": STATE_FORMAT, "tree": tree})
    )
    v = store.log_artifact(art.add_bytes("tensors/w", b"\0" * 4, meta={"dtype": "float32", "shape": shape}))
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=r"bad:v0: tensors/w: (malformed shape|4 bytes stored)"):
        v.load_state_dict()
    with pytest.raises(IntegrityError, match=r"bad:v0: tensors/w: (malformed shape|4 bytes stored)"):
        save_safetensors(v, tmp_path / "out.safetensors")
    assert time.perf_counter() - start < 5
    assert not (tmp_path / "out.safetensors").exists()


def test_a_manifest_entry_smaller_than_its_blob_is_refused_before_reading_it(
    backend: Backend,
) -> None:
    """An entry that calls an 8 MiB blob 4 bytes: every reader reads at most 5 bytes of it."""
    store = open_(backend)
    big = b"\1" * (8 << 20)
    store.log_artifact(Artifact("big", "model").add_bytes("b", big))
    digest = hash_bytes(big)
    tree = {"dict": [["w", {"tensor": "tensors/w"}]]}
    state = canonical_json({"format": STATE_FORMAT, "tree": tree})
    store.log_artifact(Artifact("bad", "model").add_bytes("state.json", state))
    files = {
        "state.json": {"digest": hash_bytes(state), "size": len(state)},
        "tensors/w": {"digest": digest, "size": 4, "dtype": "float32", "shape": [1]},
        "vocab.json": {"digest": digest, "size": 4},
    }
    _foreign_version(store, "bad", files)
    v = open_(backend).artifact("bad:v1")
    with pytest.raises(IntegrityError, match="holds more than 4 bytes"):
        v.read_bytes("vocab.json")
    with pytest.raises(IntegrityError, match="holds more than 4 bytes"):
        load_vocabulary(v)
    if pytest.importorskip("torch"):
        with pytest.raises(IntegrityError, match="holds (more than 4|8388608) bytes"):
            v.load_state_dict()


# -- manifests with many entries ------------------------------------------------------------------
def test_a_20k_file_manifest_opens_lists_and_verifies_linearly(
    local_backend: Backend, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """20,000 entries naming one 4 MiB blob: verify hashes the blob once, not 20,000 times (80 GB)."""
    store = open_(local_backend)
    blob = b"\2" * (4 << 20)
    store.log_artifact(Artifact("m", "dataset").add_bytes("x", blob))
    entry = {"digest": hash_bytes(blob), "size": len(blob)}
    n = 20_000
    seq = _foreign_version(store, "m", {f"d{i % 100:02d}/f{i:05d}": entry for i in range(n)})
    monkeypatch.setenv("ARTIFACTS_CACHE_DIR", str(tmp_path / "cold"))
    start = time.perf_counter()
    cold = open_(local_backend)
    v = cold.artifact("m:v1")
    assert v.version == 1 and len(v.files()) == n and cold.index.last_seq == seq
    assert v.size == n * len(blob)
    assert v.verify() == n
    Cli(local_backend.url).ok("ls", "m:v1")
    assert time.perf_counter() - start < 30  # about 2 s; verify alone took minutes


def test_manifests_and_entries_over_the_bounds_are_rejected_by_every_reader(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bounds, "MAX_FILES", 100)
    monkeypatch.setattr(bounds, "MAX_ENTRY_BYTES", 64 * 1024)
    store = open_(backend)
    store.log_artifact(Artifact("m", "dataset").add_bytes("x", b"1"))
    entry = {"digest": hash_bytes(b"1"), "size": 1}
    many = _foreign_version(store, "m", {f"f{i}": entry for i in range(101)})
    store.log_artifact(Artifact("m", "dataset").add_bytes("y", b"1"))  # a later honest entry
    fat = _foreign_version(store, "m", {"f": {**entry, "pad": "x" * 70_000}})
    long_path = _foreign_version(store, "m", {"a/" * 2100 + "f": entry})
    fresh = open_(backend)
    assert [v.version for v in fresh.versions("m")] == [0, 1]  # the honest ones only
    assert "lists 101 files; a version holds at most 100" in _rejected(fresh, many)
    assert "a log entry may have at most 65536" in _rejected(fresh, fat)
    assert "more than 4096" in _rejected(fresh, long_path)
    Cli(backend.url, backend.storage_options).ok("ls", "m")
    art = Artifact("m", "dataset")
    for i in range(100):
        art.add_bytes(f"f{i}", b"1")
    with pytest.raises(artifacts.InvalidValueError, match="more than 100 files"):
        art.add_bytes("f100", b"1")
    with pytest.raises(artifacts.InvalidPathError, match="more than 4096"):
        Artifact("m", "dataset").add_bytes("a" * 4097, b"1")
    with pytest.raises(artifacts.InvalidValueError, match="may have at most 65536"):
        store.log_artifact(Artifact("m", "dataset", metadata={"pad": "x" * 70_000}).add_bytes("z", b"2"))
    assert [v.version for v in open_(backend).versions("m")] == [0, 1]


# -- log entries and packs: read one byte past their bound, no further ----------------------------
def test_a_bounded_read_stops_one_byte_past_the_limit(backend: Backend) -> None:
    root = open_(backend).root
    data = bytes(range(256)) * 400
    root.write("t/big", data)
    root.write("t/empty", b"")
    assert root.read("t/big", limit=999) == data[:1000]
    assert root.read("t/big", limit=len(data)) == root.read("t/big") == data
    assert root.read("t/empty", limit=10) == b""  # (a Range GET would be HTTP 416 here)
    got = root.read_many(["t/big", "t/empty", "t/missing"], limit=999)
    assert got == {"t/big": data[:1000], "t/empty": b""}
    assert root.read_many(["t/big"], limit=len(data)) == {"t/big": data}


def _bytes_read() -> int:
    """Bytes this process has read from files and sockets so far (Linux)."""
    with open("/proc/self/io") as f:
        return int(next(line for line in f if line.startswith("rchar:")).split()[1])


def test_a_50_gib_log_entry_or_pack_is_refused_having_read_one_byte_past_the_bound(
    local_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bounds, "MAX_ENTRY_BYTES", 64 * 1024)
    monkeypatch.setattr(bounds, "MAX_PACK_BYTES", 64 * 1024)
    monkeypatch.setenv("ARTIFACTS_PACK_SIZE", "3")
    monkeypatch.setenv("ARTIFACTS_SUB_PACKS", "")
    store = open_(local_backend)
    for i in range(3):  # entries 1 to 3: packed by the third
        store.log_artifact(Artifact("m", "dataset").add_bytes("x", b"%d" % i))
    store.reader.background.wait(30)
    root = Path(local_backend.url)
    pack = root / "packs" / f"{1:020d}-{3:020d}.pack"
    assert pack.is_file()
    pack.unlink()
    fat, seq = 50 * 2**30, store.index.last_seq + 1
    for path in (pack, root / log_path(seq)):  # sparse: no disk, but a whole read is 50 GiB
        with open(path, "wb") as f:
            f.truncate(fat)
    for i in range(2):  # honest entries after it, to the end of its pack's range
        store.log_artifact(Artifact("m", "dataset").add_bytes("y", b"%d" % i))
    store.reader.background.wait(30)
    assert not (root / "packs" / f"{4:020d}-{6:020d}.pack").exists()  # its range is left unpacked
    monkeypatch.setenv("ARTIFACTS_CACHE_DIR", str(root.parent / "cold"))
    before = _bytes_read()
    with pytest.warns(StoreWarning, match=f"pack packs/{1:020d}-{3:020d}.pack holds more than 65536"):
        fresh = open_(local_backend)
    assert _bytes_read() - before < 16 * 2**20  # (a whole read: 50 GiB, or a MemoryError)
    assert [v.version for v in fresh.versions("m")] == [0, 1, 2, 3, 4]  # the chain holds past it
    reason = _rejected(fresh, seq)
    assert f"{log_path(seq)} holds more than 65536 bytes; a log entry may have at most 65536" in reason
    assert "\n" not in reason
    assert any(f"{1:020d}-{3:020d}.pack holds more than 65536" in p for p in fresh.verify().problems)


def _snapshotted(b: Backend, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The root of a local store of three versions with a snapshot at entry 2."""
    monkeypatch.setenv("ARTIFACTS_SNAPSHOT_EVERY", "2")
    store = open_(b)
    for i in range(3):
        store.log_artifact(Artifact("m", "dataset").add_bytes("x", b"%d" % i))
    store.reader.background.wait(30)
    return Path(b.url)


def test_snapshot_data_longer_than_its_descriptor_says_is_refused_unread(
    local_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _snapshotted(local_backend, monkeypatch)
    (data,) = (root / "snapshot-data").iterdir()
    data.chmod(0o644)
    with open(data, "r+b") as f:  # its bytes, then a sparse 50 GiB
        f.truncate(50 * 2**30)
    monkeypatch.setenv("ARTIFACTS_CACHE_DIR", str(root.parent / "cold"))
    before = _bytes_read()
    with pytest.warns(StoreWarning, match="is longer than the [0-9]+ bytes its descriptor gives"):
        fresh = open_(local_backend)
    assert _bytes_read() - before < 16 * 2**20
    assert [v.version for v in fresh.versions("m")] == [0, 1, 2]  # from the log instead


def test_a_50_gib_store_json_or_snapshot_descriptor_is_refused_having_read_1_mib(
    local_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _snapshotted(local_backend, monkeypatch)
    (descriptor,) = (p for p in (root / "snapshots").iterdir() if p.name != "hint.json")
    for path in (descriptor, root / "snapshots" / "hint.json"):
        path.chmod(0o644)
        with open(path, "r+b") as f:  # sparse: a whole read is 50 GiB
            f.truncate(50 * 2**30)
    monkeypatch.setenv("ARTIFACTS_CACHE_DIR", str(root.parent / "cold"))
    before = _bytes_read()
    with pytest.warns(StoreWarning, match=f"snapshots/{descriptor.name} holds more than 1048576"):
        fresh = open_(local_backend)
    assert [v.version for v in fresh.versions("m")] == [0, 1, 2]  # from the log instead
    with open(root / "store.json", "r+b") as f:
        f.truncate(50 * 2**30)
    with pytest.raises(artifacts.IntegrityError, match="store.json holds more than 1048576 bytes"):
        open_(local_backend)
    assert _bytes_read() - before < 16 * 2**20


@pytest.mark.s3
def test_a_log_entry_over_the_bound_is_read_one_byte_past_it_on_s3(
    s3_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aiobotocore.response

    monkeypatch.setattr(bounds, "MAX_ENTRY_BYTES", 64 * 1024)
    store = open_(s3_backend)
    store.log_artifact(Artifact("m", "dataset").add_bytes("x", b"1"))
    seq = store.index.last_seq + 1
    store.root.create_exclusive(log_path(seq), b"{" + b" " * (8 * 2**20) + b"}")
    store.log_artifact(Artifact("m", "dataset").add_bytes("y", b"2"))
    body = aiobotocore.response.AioStreamingBody
    seen: list[int] = []
    real = body.read

    async def counted(self: Any, amt: int | None = None) -> bytes:
        chunk = await real(self, amt)
        seen.append(len(chunk))
        return bytes(chunk)

    monkeypatch.setattr(body, "read", counted)
    monkeypatch.setenv("ARTIFACTS_CACHE_DIR", str(Path(store.index.path).parent / "cold"))
    fresh = open_(s3_backend)
    assert [v.version for v in fresh.versions("m")] == [0, 1]
    assert 0 < sum(seen) < 2**20  # the 8 MiB entry: its first 64 KiB + 1 only
    assert f"{log_path(seq)} holds more than 65536 bytes" in _rejected(fresh, seq)


# -- live runs: chunks read in bounded rounds ------------------------------------------------------
def test_a_heartbeat_claiming_10_to_the_12_chunks_costs_one_round(backend: Backend) -> None:
    store = open_(backend)
    run = store.start_run(project="p", flush_interval=60)
    for i in range(3):
        run.log({"loss": float(i)})
    run.flush()
    beat = json.loads(store.root.read(heartbeat_path(run.id)))
    store.root.write(heartbeat_path(run.id), json.dumps({**beat, "chunks": 10**12}).encode())
    start = time.perf_counter()
    other = open_(backend).run(run.id)
    assert [r["loss"] for r in other.history()] == [0.0, 1.0, 2.0]
    with pytest.raises(ArtifactsError, match=r"chunk 2 of run .* is missing"):
        read_chunks(store.root, run.id, 1, 2**62)  # a finish entry's claim: one round, one error
    assert time.perf_counter() - start < 10  # before: a list of 10^12 paths (MemoryError)
    run.finish()


def test_hostile_chunk_rows_are_one_error_and_odd_characters_survive(backend: Backend) -> None:
    store = open_(backend)
    run = store.start_run(project="p", flush_interval=60)
    run.log({"text": "a\u2028b\x1cc\x85d"})  # str.splitlines() splits at each of these
    run.flush()
    other = open_(backend).run(run.id)
    assert other.history() == [{"_step": 0, "text": "a\u2028b\x1cc\x85d"}]
    header = canonical_json({"format": 1, "run": run.id, "n": 2, "t": 0.0, "summary": {}})
    deep = b'{"_step":1,"x":' + b"[" * 300 + b"]" * 300 + b"}"
    store.root.create_exclusive(chunk_path(run.id, 2), header + b"\n" + deep + b"\n")
    with pytest.raises(ArtifactsError, match="chunk 2 of run .* nested deeper than 200"):
        read_chunks(store.root, run.id)
    with pytest.raises(ValueError, match="line 1 is nested too deeply"):
        json_lines(b"[" * 100_000 + b"]" * 100_000)
    run._live.close()  # type: ignore[union-attr]  # the run "dies" with the bad chunk there (and
    # no flush at exit, which would wait out the S3 bound once the test server is gone)


def _run_with_small_chunks(
    b: Backend, monkeypatch: pytest.MonkeyPatch
) -> tuple[artifacts.Store, artifacts.Run]:
    monkeypatch.setattr(bounds, "MAX_CHUNK_BYTES", 64 * 1024)
    store = open_(b)
    return store, store.start_run(project="p", flush_interval=60)


def test_a_50_gib_chunk_or_heartbeat_is_refused_having_read_one_byte_past_the_bound(
    local_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, run = _run_with_small_chunks(local_backend, monkeypatch)
    run.log({"loss": 1.0})
    run.flush()
    run._live.close()  # type: ignore[union-attr]  # (no flush at exit over the files made below)
    root = Path(local_backend.url)
    for rel in (chunk_path(run.id, 2), heartbeat_path(run.id)):
        with open(root / rel, "wb") as f:  # sparse: a whole read is 50 GiB
            f.truncate(50 * 2**30)
    before = _bytes_read()
    with pytest.raises(ArtifactsError) as e:
        read_chunks(store.root, run.id)
    assert str(e.value) == (
        f"chunk 2 of run {run.id} ({chunk_path(run.id, 2)}) holds more than 65536 bytes; "
        "a chunk may have at most 65536"
    )
    assert read_heartbeat(store.root, run.id) is None  # as one cut short
    assert _bytes_read() - before < 4 * 2**20


def test_a_flush_over_the_chunk_bound_is_refused_and_kept(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, run = _run_with_small_chunks(backend, monkeypatch)
    for _ in range(3):
        run.log({"text": "x" * 30_000})
    with pytest.raises(artifacts.InvalidValueError, match="a chunk may have at most 65536: flush"):
        run.flush()
    assert store.root.list_after(f"runs/{run.id}/chunks") == []  # nothing no reader would take
    monkeypatch.setattr(bounds, "MAX_CHUNK_BYTES", 1024 * 1024)
    run.flush()  # the rows were kept
    assert [len(r["text"]) for r in open_(backend).run(run.id).history()] == [30_000] * 3
    run.finish()
