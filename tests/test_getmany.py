"""The get of many files from a local store as one batch (storage._getmany), and what checkout does
with it: one stat-cache query, every blob checked for presence before anything is written, blobs
verified (or known verified through the stat cache), destinations whole or absent."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

import artifacts
import storage
import storage._getmany as getmany
from storage import IntegrityError, NotFoundError, StatCache
from storage.batch import SMALL_MAX
from tests.conftest import Backend
from tests.test_storage import CountingCallback, b3, open_store


def _blobs(store: Any, n: int, size: int = 300) -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        data = i.to_bytes(4, "big") * (size // 4)
        out.append((store.put_bytes(data).digest, data))
    return out


def _age(root: Path) -> None:
    """Blobs written a minute ago: outside the stat cache's racy window (see storage.statcache)."""
    then = time.time() - 60
    for p in (root / "blobs").rglob("*"):
        if p.is_file():
            os.utime(p, (then, then))


def _counting(monkeypatch: pytest.MonkeyPatch, obj: Any, name: str) -> list[int]:
    calls: list[int] = []
    real = getattr(obj, name)

    def counted(*a: Any, **kw: Any) -> Any:
        calls.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(obj, name, counted)
    return calls


def test_many_files_in_one_batch_verified_then_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = StatCache(tmp_path / "stat.sqlite")
    root = tmp_path / "store"
    store = storage.open_blob_store(str(root), stat_cache=cache)
    blobs = _blobs(store, 150)  # more than one slice of the pool
    big = os.urandom(SMALL_MAX + 5)  # the streamed kernel copy, not read whole
    blobs.append((store.put_bytes(big).digest, big))
    _age(root)
    lookups = _counting(monkeypatch, cache, "lookup_many")
    hashed = _counting(monkeypatch, getmany, "hash_bytes")
    pairs = [(d, tmp_path / "out" / f"d{i % 7}" / f"f{i}") for i, (d, _) in enumerate(blobs)]
    pairs.append((blobs[0][0], tmp_path / "out" / "again"))  # one blob, two files
    cb = CountingCallback()
    store.get_files(pairs, callback=cb)
    assert all(p.read_bytes() == data for (_, p), (_, data) in zip(pairs, blobs, strict=False))
    assert (tmp_path / "out" / "again").read_bytes() == blobs[0][1]
    assert cb.total == sum(len(d) for _, d in blobs) + len(blobs[0][1])
    assert lookups == [1] and len(hashed) == 151  # each small file hashed as read
    assert not [p for p in (tmp_path / "out").rglob(".*")]  # no temp file left
    hashed.clear()
    store.get_files([(d, tmp_path / "out2" / f"f{i}") for i, (d, _) in enumerate(blobs)])
    assert hashed == []  # every blob was verified on this machine and is unchanged since
    assert all((tmp_path / "out2" / f"f{i}").read_bytes() == d for i, (_, d) in enumerate(blobs))


def test_a_blob_changed_since_it_was_trusted_is_hashed_again(tmp_path: Path) -> None:
    cache = StatCache(tmp_path / "stat.sqlite")
    root = tmp_path / "store"
    store = storage.open_blob_store(str(root), stat_cache=cache)
    (digest, data), (d2, _) = _blobs(store, 2)
    _age(root)
    store.get_files([(digest, tmp_path / "a"), (d2, tmp_path / "b")])
    blob = root / "blobs" / digest[:2] / digest[2:]
    blob.write_bytes(b"\xff" * len(data))  # rotted in place, same size: its stat changed
    with pytest.raises(IntegrityError, match=digest):
        store.get_files([(digest, tmp_path / "c")])
    assert not (tmp_path / "c").exists()
    store.get_files([(digest, tmp_path / "d")], verify=False)  # asked not to verify
    assert (tmp_path / "d").read_bytes() == b"\xff" * len(data)


def test_a_missing_blob_is_named_before_anything_is_written(local_backend: Backend) -> None:
    store = open_store(local_backend)
    (digest, _), (gone, _) = _blobs(store, 2)
    store.delete(gone)
    out = Path(local_backend.url).parent / "out"
    with pytest.raises(NotFoundError, match=gone):
        store.get_files([(digest, out / "a"), (gone, out / "b")])
    assert not out.exists()


def test_a_failing_write_leaves_no_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = storage.open_blob_store(str(tmp_path / "store"))
    blobs = _blobs(store, 3)
    real = os.replace

    def replace(src: Any, dst: Any) -> None:
        if str(dst).endswith("f1"):
            raise OSError(28, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError):
        store.get_files([(d, tmp_path / "out" / f"f{i}") for i, (d, _) in enumerate(blobs)])
    assert not (tmp_path / "out" / "f1").exists()
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def test_every_backend_gets_the_same_files(backend: Backend, tmp_path: Path) -> None:
    """Local stores take the batch; memory and S3 the concurrent fetch: the same result."""
    store = open_store(backend)
    blobs = _blobs(store, 20)
    pairs = [(d, tmp_path / "out" / f"s{i % 3}" / f"f{i}") for i, (d, _) in enumerate(blobs)]
    store.get_files(pairs)
    got = [(p.read_bytes(), d) for d, p in pairs]
    assert all(data == b and b3(data) == d for (data, d), (_, b) in zip(got, blobs, strict=True))


def test_a_get_into_a_partial_folder_asks_the_stat_cache_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second get into the folder of a first one (killed, or with a file damaged since) checks
    what is there in one stat-cache query and fetches only what is missing or wrong."""
    src = tmp_path / "in"
    for i in range(30):
        (src / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 3}" / f"f{i}").write_bytes(bytes([i]) * (100 + i))
    with artifacts.open_store(tmp_path / "store", user="u") as store:
        v = store.log_artifact(artifacts.Artifact("many", type="dataset").add_dir(src))
        out = tmp_path / "out"
        v.download(out)
        (out / "d0" / "f0").write_bytes(b"damaged")
        (out / "d1" / "f1").unlink()
        cache = store.blobs.stat_cache
        assert cache is not None
        lookups = _counting(monkeypatch, cache, "lookup_many")
        fetched: list[str] = []
        real = store.blobs.get_files

        def get_files(pairs: Any, **kw: Any) -> None:
            pairs = list(pairs)
            fetched.extend(Path(p).relative_to(out).as_posix() for _, p in pairs)
            real(pairs, **kw)

        monkeypatch.setattr(store.blobs, "get_files", get_files)
        v.download(out)
    assert sorted(fetched) == ["d0/f0", "d1/f1"]
    assert len(lookups) == 2  # the files in place, then the blobs to fetch
    for i in range(30):
        assert (out / f"d{i % 3}" / f"f{i}").read_bytes() == bytes([i]) * (100 + i)
