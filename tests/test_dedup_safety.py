"""Dedup can never be poisoned: the bytes stored under a digest are the bytes hashed, and a damaged blob
never satisfies a later put (issue 11 item 4), on local disk and on S3 (moto server on loopback).

A source file rewritten while it is being stored (a checkpoint saved again) must not end up under a digest
that is not its content. The rewrite is made deterministic with the progress callback the put reports to
(a real user-supplied hook, fired while the put runs), and made random with a real thread that keeps
rewriting the file while puts run.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Any

import blake3
import fsspec
import pytest
from conftest import Backend
from fsspec.callbacks import Callback

import artifacts
import storage
import storage.blobs
import storage.upload  # noqa
from storage import BlobStore


def b3(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def blobs_of(backend: Backend) -> BlobStore:
    return storage.open_blob_store(backend.url, backend.storage_options)


def raw_fs(backend: Backend) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, path = fsspec.url_to_fs(backend.url, **backend.storage_options)
    return fs, path.rstrip("/")


def stored(backend: Backend, digest: str) -> bytes:
    fs, root = raw_fs(backend)
    return fs.cat_file(f"{root}/{BlobStore.relpath(digest)}")


class RewriteOnce(Callback):
    """Rewrites ``path`` with ``new`` the first time the put reports anything (size or progress)."""

    def __init__(self, path: Path, new: bytes) -> None:
        super().__init__()
        self.path, self.new, self.fired = path, new, False

    def _fire(self) -> None:
        if not self.fired:
            self.fired = True
            self.path.write_bytes(self.new)

    def set_size(self, size: int | None) -> None:
        self._fire()

    def relative_update(self, inc: int = 1) -> None:
        self._fire()

    def call(self, *args: Any, **kwargs: Any) -> None:
        pass


@pytest.fixture(params=["local", "s3"])
def any_backend(request: pytest.FixtureRequest) -> Backend:
    return request.getfixturevalue(f"{request.param}_backend")


@pytest.fixture(params=["small", "multipart"])
def size_class(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """File sizes on both upload paths: one PUT from memory, and a multipart upload (limits lowered so
    that 12 MiB takes three 5 MiB parts)."""
    if request.param == "small":
        return 200_000
    monkeypatch.setattr(storage.blobs, "SINGLE_PUT_MAX", 1024 * 1024, raising=False)
    monkeypatch.setattr(storage.upload, "PART_SIZE", 5 * 1024 * 1024)
    return 12 * 1024 * 1024


def test_file_rewritten_during_put_is_stored_under_its_own_digest(
    any_backend: Backend, size_class: int, tmp_path: Path
) -> None:
    old, new = os.urandom(size_class), os.urandom(size_class)
    src = tmp_path / "ckpt.bin"
    src.write_bytes(old)
    blobs = blobs_of(any_backend)
    cb = RewriteOnce(src, new)
    try:
        r = blobs.put_file(src, callback=cb)
    except artifacts.IntegrityError as e:  # refusing is honest too, if nothing was stored
        assert "changed while it was being stored" in str(e)
        assert list(blobs.iter_digests()) == []
    else:
        assert cb.fired
        data = stored(any_backend, r.digest)
        assert b3(data) == r.digest and data in (old, new)
        assert blobs.verify_blob(r.digest)
    # every later honest put of either content restores exactly that content
    for content in (old, new):
        src.write_bytes(content)
        r2 = blobs.put_file(src)
        assert r2.digest == b3(content)
        assert blobs.read_bytes(r2.digest) == content
    for d in blobs.iter_digests():
        assert blobs.verify_blob(d), f"blob {d} does not hold its own content"


@pytest.mark.parametrize("backend_kind", ["local", "s3"])
def test_file_rewritten_by_another_thread_never_poisons_dedup(
    backend_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A writer thread flips the file between two contents (same size) while puts run: every blob
    the store holds must hash to its own name, whatever interleaving happened."""
    backend = request.getfixturevalue(f"{backend_kind}_backend")
    a, b = os.urandom(300_000), os.urandom(300_000)
    src = tmp_path / "f.bin"
    src.write_bytes(a)
    stop = threading.Event()

    def flip() -> None:
        i = 0
        while not stop.is_set():
            tmp = tmp_path / "f.bin.new"
            tmp.write_bytes(b if i % 2 == 0 else a)
            with open(src, "r+b") as f:  # rewrite in place, as torch.save over a file does
                f.write(tmp.read_bytes())
            i += 1

    blobs = blobs_of(backend)
    t = threading.Thread(target=flip, daemon=True)
    t.start()
    try:
        results = []
        for _ in range(25):
            with contextlib.suppress(artifacts.IntegrityError):
                results.append(blobs.put_file(src))
    finally:
        stop.set()
        t.join()
    for d in blobs.iter_digests():
        assert blobs.verify_blob(d), f"blob {d} does not hold its own content"
    assert {r.digest for r in results} <= set(blobs.iter_digests())


@pytest.mark.parametrize("damage", ["truncate", "extend"])
def test_blob_of_wrong_size_never_satisfies_dedup(
    any_backend: Backend, damage: str, tmp_path: Path
) -> None:
    """A blob whose size is not the content's is replaced by the next put of that content, through
    every put path (bytes, file, file known to the stat cache)."""
    data = os.urandom(50_000)
    blobs = storage.open_blob_store(
        any_backend.url, any_backend.storage_options, stat_cache=storage.StatCache(tmp_path / "sc")
    )
    src = tmp_path / "x.bin"
    src.write_bytes(data)
    os.utime(src, (1, 1))  # old enough for the stat cache to trust
    for put in ("bytes", "file", "file-cached"):
        d = (blobs.put_bytes(data) if put == "bytes" else blobs.put_file(src)).digest
        fs, root = raw_fs(any_backend)
        rel = f"{root}/{BlobStore.relpath(d)}"
        if any_backend.kind == "local":
            os.chmod(rel, 0o644)
        fs.pipe_file(rel, data[:-10] if damage == "truncate" else data + b"junk")
        r = blobs.put_bytes(data) if put == "bytes" else blobs.put_file(src)
        assert r.digest == d and r.written, put
        assert blobs.read_bytes(d) == data, put


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_blob_that_fails_verify_is_set_aside_and_healed_by_the_next_put(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Same size, one flipped byte: only a full verify can see it. After verify has named it, the
    next honest put of that content stores it again and the old version restores."""
    backend = request.getfixturevalue(f"{kind}_backend")
    store = artifacts.open_store(backend.url, storage_options=backend.storage_options)
    data = os.urandom(40_000)
    a = artifacts.Artifact("m", "model")
    a.add_bytes("w.bin", data)
    v0 = store.log_artifact(a)
    d = v0.file("w.bin").digest
    fs, root = raw_fs(backend)
    rel = f"{root}/{BlobStore.relpath(d)}"
    if kind == "local":
        os.chmod(rel, 0o644)
    bad = bytearray(data)
    bad[1000] ^= 1
    fs.pipe_file(rel, bytes(bad))

    report = store.verify()
    assert not report.ok and any(d in p and "corrupt" in p for p in report.problems)
    with pytest.raises(artifacts.IntegrityError, match=d):
        store.artifact("m:v0").read_bytes("w.bin")
    again = store.verify()  # still reported (not silently forgotten) until repaired
    assert any(d in p and "corrupt" in p for p in again.problems)

    b = artifacts.Artifact("m2", "model")
    b.add_bytes("w.bin", data)  # the honest content again
    store.log_artifact(b)
    assert store.artifact("m:v0").read_bytes("w.bin") == data
    assert store.artifact("m2").read_bytes("w.bin") == data
    assert store.verify().ok


# -- gc against a concurrent dedup (issue 11 item 9) --------------------------------------------------
class RunOnFirstProgress(Callback):
    """Runs ``fn`` the first time the put reports progress: after its dedup lookups, before its commit."""

    def __init__(self, fn: Any) -> None:
        super().__init__()
        self.fn, self.ran = fn, False

    def relative_update(self, inc: int = 1) -> None:
        if not self.ran:
            self.ran = True
            self.fn()

    def call(self, *args: Any, **kwargs: Any) -> None:
        pass


@pytest.mark.parametrize("kind", ["local", "s3"])
@pytest.mark.parametrize("grace", [1.0, 60.0, 1800.0])
def test_gc_between_dedup_and_commit_loses_nothing(
    kind: str,
    grace: float,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An orphaned blob older than the grace period (a deleted version's content) is found by a put
    (a dedup hit, nothing uploaded) and gc runs right then, before the commit: the committed version
    must restore, and verify must be clean, for grace periods under S3's 1 h freshen window. The clock
    is shortened by backdating the orphan to just past the grace period. (Grace 0 is the CLI's "I know
    nothing is in flight": it also sweeps in-flight uploads, so it is not a concurrency setting.)"""
    from tests._workers import make_old

    backend = request.getfixturevalue(f"{kind}_backend")
    store = artifacts.open_store(backend.url, storage_options=backend.storage_options)
    payload = os.urandom(30_000)
    src = tmp_path / "w.bin"
    src.write_bytes(os.urandom(20_000))
    first = store.log_artifact(
        artifacts.Artifact("m", "model").add_bytes("w", payload).add_file(src)
    )
    store.log_artifact(artifacts.Artifact("m", "model").add_bytes("w", b"other"))
    store.delete_version(first.ref)
    orphans = [first.file("w").digest, first.file("w.bin").digest]
    make_old(store, orphans, grace + 5)

    monkeypatch.setenv("ARTIFACTS_CACHE_DIR", str(tmp_path / "gc-machine"))
    gc_store = artifacts.open_store(backend.url, storage_options=backend.storage_options)
    reports = []
    hook = RunOnFirstProgress(lambda: reports.append(gc_store.gc(grace_period=grace)))
    again = store.log_artifact(
        artifacts.Artifact("m2", "model").add_bytes("w", payload).add_file(src), callback=hook
    )
    assert hook.ran and reports
    assert again.read_bytes("w") == payload and again.read_bytes("w.bin") == src.read_bytes()
    assert store.verify().ok, store.verify().problems
    later = gc_store.gc(
        grace_period=grace
    )  # a later pass sees the commit and keeps (or restores) it
    assert not set(orphans) & set(later.deleted)
    make_old(store, [d for d in store.blobs.iter_digests()], grace + 5)
    gc_store.gc(grace_period=grace)
    fresh = artifacts.open_store(backend.url, storage_options=backend.storage_options)
    assert fresh.artifact("m2").read_bytes("w") == payload
    assert fresh.verify().ok
