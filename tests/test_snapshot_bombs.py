"""A snapshot's data is inflated in pieces up to `bounds.max_snapshot_bytes`: a zlib bomb (its digest is
the store's own, so it proves nothing) is refused with one line and the store opens from the log,
memory staying at a few pieces; honest data of many pieces still loads, a cut-short stream is still
refused, and a writer does not write a snapshot no reader would take."""

from __future__ import annotations

import dataclasses
import os
import tracemalloc
import warnings
import zlib
from pathlib import Path

import pytest

import artifacts
from artifacts import Artifact, StoreWarning, bounds
from artifacts.catalog import snapshots as snaps
from artifacts.manifest import canonical_json
from storage import hash_bytes
from tests._snapshots import checked_copy
from tests.conftest import Backend


def open_(b: Backend) -> artifacts.Store:
    return artifacts.open_store(b.url, storage_options=b.storage_options)


def _snapshotted(
    b: Backend, monkeypatch: pytest.MonkeyPatch, meta: int = 0, versions: int = 3
) -> artifacts.Store:
    """A store of ``versions`` versions (``meta`` random bytes of metadata each, as hex) with a
    snapshot at the one before last, and a cold cache for the next open."""
    monkeypatch.setenv("ARTIFACTS_SNAPSHOT_EVERY", str(versions - 1))
    store = open_(b)
    for i in range(versions):
        note = {"note": os.urandom(meta).hex()} if meta else None
        store.log_artifact(Artifact("m", "dataset", metadata=note).add_bytes("x", b"%d" % i))
    store.reader.background.wait(30)
    monkeypatch.setenv("ARTIFACTS_CACHE_DIR", str(Path(b.url).parent / "cold"))
    return store


def _replace_data(store: artifacts.Store, data: bytes) -> snaps.Snapshot:
    """Give the newest snapshot ``data`` under a descriptor whose digest and size match it."""
    old = snaps.read_descriptor(store.root, snaps.list_snapshots(store.root)[0])
    new = dataclasses.replace(old, digest=hash_bytes(data), size=len(data))
    store.root.create_exclusive(new.data_path, data)
    store.root.create_exclusive(new.path, canonical_json(new.to_dict()))
    store.root.delete(old.path)
    return new


def _zeros_deflated(mib: int) -> bytes:
    """zlib of ``mib`` MiB of zeros, cheaply: after a full flush every MiB of zeros deflates to the
    same bytes, so they are repeated, then an empty final block and the Adler-32 (for zeros: 1 and
    the length mod 65521) close the stream."""
    z, piece = zlib.compressobj(9), bytes(2**20)
    first = z.compress(piece) + z.flush(zlib.Z_FULL_FLUSH)
    again = z.compress(piece) + z.flush(zlib.Z_FULL_FLUSH)
    adler = (mib * 2**20 % 65521) << 16 | 1
    return first + again * (mib - 1) + b"\x03\x00" + adler.to_bytes(4, "big")


def test_the_bomb_is_a_valid_stream() -> None:
    assert zlib.decompress(_zeros_deflated(3)) == bytes(3 * 2**20)


def test_a_zlib_bomb_is_refused_in_bounded_memory_and_the_store_opens_from_the_log(
    local_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _snapshotted(local_backend, monkeypatch)
    bomb = _zeros_deflated(2048)  # 2 GiB
    limit = bounds.max_snapshot_bytes(len(bomb))
    assert limit < 2**30 < 2 * 2**30  # what it would inflate to: far past the bound
    new = _replace_data(store, bomb)
    tracemalloc.start()
    try:
        with pytest.warns(StoreWarning) as caught:
            fresh = open_(local_backend)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    lines = [str(w.message) for w in caught if "inflates" in str(w.message)]
    assert lines == [
        f"snapshot {new.path}: its data inflates to more than {limit} bytes, the most {len(bomb)}"
        " compressed bytes may (bounds.max_snapshot_bytes); falling back to an older snapshot,"
        " packs or the log"
    ]
    assert peak < 64 * 2**20  # (zlib.decompress of it all: 2 GiB, or a MemoryError)
    assert [v.version for v in fresh.versions("m")] == [0, 1, 2]  # from the log instead
    assert any("inflates to more than" in p for p in fresh.verify().problems)


_BIG = 5  # versions of 800 KB of hex metadata: a snapshot of over 1 MiB compressed, several pieces


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda d: d[: len(d) // 2], r"is corrupt: it does not decompress \(incomplete or truncated stream\)"),
        (lambda d: d[:-4], r"is corrupt: it does not decompress \(incomplete or truncated stream\)"),
        (lambda d: b"", r"is corrupt: it does not decompress \(incomplete or truncated stream\)"),
        (lambda d: b"garbage" + d, r"is corrupt: it does not decompress \(Error -3 .*incorrect header check\)"),
    ],
    ids=["half", "no-checksum", "empty", "garbage"],
)
def test_a_damaged_stream_is_still_refused(
    local_backend: Backend, monkeypatch: pytest.MonkeyPatch, damage: object, match: str
) -> None:
    store = _snapshotted(local_backend, monkeypatch, meta=400_000, versions=_BIG)
    desc = snaps.read_descriptor(store.root, snaps.list_snapshots(store.root)[0])
    data = store.root.read(desc.data_path)
    assert len(data) > 2**20
    new = _replace_data(store, damage(data))  # type: ignore[operator]
    with pytest.warns(StoreWarning, match=f"snapshot {new.path}: its data {match}"):
        fresh = open_(local_backend)
    assert [v.version for v in fresh.versions("m")] == list(range(_BIG))
    assert not list((Path(local_backend.url).parent / "cold").rglob("snapshot-*.sqlite"))


def test_honest_data_of_many_pieces_inflates_to_its_bytes_and_loads(
    local_backend: Backend, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    store = _snapshotted(local_backend, monkeypatch, meta=400_000, versions=_BIG)
    desc = snaps.read_descriptor(store.root, snaps.list_snapshots(store.root)[0])
    data = store.root.read(desc.data_path)
    assert len(data) > 2**20  # several pieces in, more out
    assert checked_copy(store.root, desc, str(tmp_path)).read_bytes() == zlib.decompress(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error", StoreWarning)  # no snapshot refused
        fresh = open_(local_backend)
    assert fresh.reader.unusable == set()
    assert [v.version for v in fresh.versions("m")] == list(range(_BIG))


def test_a_writer_does_not_write_a_snapshot_no_reader_would_take(
    local_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bounds, "SNAPSHOT_INFLATE_FLOOR", 0)
    monkeypatch.setattr(bounds, "SNAPSHOT_INFLATE_RATIO", 2)  # an index inflates ~2:1 or more
    store = _snapshotted(local_backend, monkeypatch)
    assert snaps.all_snapshots(store.root) == []
    assert [v.version for v in open_(local_backend).versions("m")] == [0, 1, 2]


def _bytes_read() -> int:
    """Bytes this process has read from files and sockets so far (Linux)."""
    with open("/proc/self/io") as f:
        return int(next(line for line in f if line.startswith("rchar:")).split()[1])


@pytest.mark.parametrize("head", ["honest", "garbage"])
def test_a_50_gib_snapshot_its_descriptor_vouches_for_is_refused_having_read_a_few_pieces(
    local_backend: Backend, monkeypatch: pytest.MonkeyPatch, head: str
) -> None:
    """The data is store content, and so is the size its descriptor gives: a snapshot claiming 50 GiB
    of data that is there (sparse) is streamed, refused at its first bad piece (garbage, or bytes
    past the end of an honest stream), never read whole into memory (as it was, up to the claim)."""
    store = _snapshotted(local_backend, monkeypatch)
    old = snaps.read_descriptor(store.root, snaps.list_snapshots(store.root)[0])
    fat = 50 * 2**30
    new = dataclasses.replace(old, digest="0" * 64, size=fat)  # no digest is checked before it
    data = Path(local_backend.url) / new.data_path
    data.parent.mkdir(exist_ok=True)
    with open(data, "wb") as f:
        if head == "honest":
            f.write(store.root.read(old.data_path))
        f.truncate(fat)  # sparse: no disk, but a whole read is 50 GiB
    store.root.create_exclusive(new.path, canonical_json(new.to_dict()))
    store.root.delete(old.path)
    why = "goes on past the end of its compressed stream" if head == "honest" else "decompress"
    before = _bytes_read()
    tracemalloc.start()
    try:
        with pytest.warns(StoreWarning, match=f"snapshot {new.path}: its data is corrupt: .*{why}"):
            fresh = open_(local_backend)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert _bytes_read() - before < 16 * 2**20 and peak < 16 * 2**20
    assert [v.version for v in fresh.versions("m")] == [0, 1, 2]  # from the log instead
    assert not list((Path(local_backend.url).parent / "cold").rglob("snapshot-*.sqlite"))
