"""``run.log_artifact(..., wait=False)``: background uploads, their errors, their memory bound, and a
SIGKILL in the middle of one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import artifacts
from artifacts import Artifact
from artifacts import pending as pending_mod
from artifacts.bufcopy import PARALLEL_MIN
from artifacts.pending import PendingUploads, PendingVersion
from storage import hash_bytes
from tests.conftest import Backend

REPO = Path(__file__).resolve().parent.parent


def _open(b: Backend) -> artifacts.Store:
    return artifacts.open_store(b.url, storage_options=b.storage_options)


def test_returns_a_handle_and_stores_the_bytes_as_they_were(backend: Backend) -> None:
    store = _open(backend)
    weights = bytearray(b"\x01" * 300_000)
    with store.start_run(project="p") as run:
        h1 = run.log_artifact(Artifact("ckpt", "model").add_bytes("w", weights), wait=False)
        weights[:] = b"\x02" * len(weights)  # training goes on right away
        h2 = run.log_artifact(
            Artifact("ckpt", "model").add_bytes("w", weights), ["latest-ok"], wait=False
        )
        assert isinstance(h1, PendingVersion)
        v0, v1 = h1.result(timeout=60), h2.result(timeout=60)
    assert (v0.ref, v1.ref) == ("ckpt:v0", "ckpt:v1")  # in logging order
    assert store.artifact("ckpt:v0").read_bytes("w") == b"\x01" * 300_000
    assert store.artifact("ckpt:latest-ok").read_bytes("w") == b"\x02" * 300_000
    assert [v.ref for v in store.run(run.id).outputs()] == ["ckpt:v0", "ckpt:v1"]
    assert store.run(run.id).status == "finished"


def test_finish_waits_for_pending_uploads(backend: Backend) -> None:
    store = _open(backend)
    run = store.start_run(project="p")
    handles = [
        run.log_artifact(Artifact(f"a{i}", "model").add_bytes("x", bytes([i]) * 50_000), wait=False)
        for i in range(3)
    ]
    run.finish()
    assert all(h.done() for h in handles)
    assert sorted(v.name for v in store.run(run.id).outputs()) == ["a0", "a1", "a2"]


def test_background_error_surfaces_once(backend: Backend) -> None:
    store = _open(backend)
    store.set_quota(store.user, 1000)
    run = store.start_run(project="p")
    too_big = Artifact("big", "model").add_bytes("x", b"x" * 5000)
    h = run.log_artifact(too_big, wait=False)
    with pytest.raises(artifacts.QuotaExceededError):
        h.result(timeout=60)
    run.log_artifact(Artifact("ok", "model").add_bytes("x", b"y" * 10), wait=False).result(60)
    run.finish()  # the error was seen on result(): not raised again
    assert store.run(run.id).status == "finished"

    # nobody asks the handle: the next log_artifact raises it
    run2 = store.start_run(project="p")
    run2.log_artifact(Artifact("big", "model").add_bytes("x", b"x" * 5000), wait=False)
    run2._pending.wait_all()  # type: ignore[union-attr]
    with pytest.raises(artifacts.QuotaExceededError):
        run2.log_artifact(Artifact("ok2", "model").add_bytes("x", b"z" * 10))
    run2.finish()

    # nor that: finish() raises it, and the run is closed as failed
    run3 = store.start_run(project="p")
    run3.log_artifact(Artifact("big", "model").add_bytes("x", b"x" * 5000), wait=False)
    with pytest.raises(artifacts.QuotaExceededError):
        run3.finish()
    assert store.run(run3.id).status == "failed"
    assert store.usage() <= 1000


def test_each_copy_is_released_once_its_blob_is_stored(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy of a buffer gives its pages back as soon as that buffer's blob is stored (not at
    the end of the upload), the caller's buffers are never touched, and the bytes stored are the
    ones from the moment of the call."""
    store = _open(backend)
    released: list[tuple[bytes, bool]] = []
    real = pending_mod.release

    def spy(copy: bytes | bytearray | memoryview | None) -> None:
        if not isinstance(copy, memoryview):  # a small buffer's bytes() copy: left to refcounting
            assert copy == b"s" * 1000
            return real(copy)
        # its blob is stored by now (on a remote root the puts finish in any order)
        released.append((bytes(copy[:1]), store.blobs.exists(hash_bytes(copy))))
        real(copy)
        assert not any(copy[:: 1 << 16])  # its pages are gone: it reads as zeros

    monkeypatch.setattr(pending_mod, "release", spy)
    size = PARALLEL_MIN + 4096  # copied into private mappings
    tensors = [bytearray([i + 1]) * size for i in range(3)]
    art = Artifact("ckpt", "model").add_bytes("small", bytearray(b"s" * 1000))
    for i, t in enumerate(tensors):
        art.add_bytes(f"t{i}", t)
    with store.start_run(project="p") as run:
        h = run.log_artifact(art, wait=False)
        for t in tensors:
            t[:] = b"\xff" * size  # training goes on
        v = h.result(timeout=60)
    assert sorted(released) == [(bytes([i + 1]), True) for i in range(3)]
    for i in range(3):
        assert v.read_bytes(f"t{i}") == bytes([i + 1]) * size
    assert v.read_bytes("small") == b"s" * 1000
    assert all(t == b"\xff" * size for t in tensors)


def test_bad_aliases_fail_in_the_caller(backend: Backend) -> None:
    store = _open(backend)
    with store.start_run(project="p") as run, pytest.raises(artifacts.InvalidNameError):
        run.log_artifact(Artifact("a", "model").add_bytes("x", b"x"), ["bad alias!"], wait=False)


def test_pending_copies_are_bounded() -> None:
    pending = PendingUploads(limit=100)
    gate = threading.Event()
    order: list[str] = []

    def upload(a: Artifact, stored: Callable[[str], None]) -> artifacts.ArtifactVersion:
        gate.wait(30)
        order.append(a.name)
        return None  # type: ignore[return-value]

    pending.submit(Artifact("first", "model").add_bytes("x", bytearray(80)), upload)
    second_in = threading.Event()

    def second() -> None:
        pending.submit(Artifact("second", "model").add_bytes("x", bytearray(80)), upload)
        second_in.set()

    t = threading.Thread(target=second)
    t.start()
    assert not second_in.wait(0.3)  # 80 + 80 > 100: waits for the first copy to be released
    gate.set()
    assert second_in.wait(30)
    t.join(30)
    pending.close()
    assert order == ["first", "second"]
    # one artifact above the limit is still taken when nothing else is pending
    pending.submit(Artifact("huge", "model").add_bytes("x", bytearray(500)), upload)
    pending.close()
    assert order[-1] == "huge"


CHILD = textwrap.dedent(
    """
    import sys, time
    import artifacts
    store = artifacts.open_store(sys.argv[1])
    run = store.start_run(project="kill")
    art = artifacts.Artifact("ckpt", "model")
    for i in range(24):
        art.add_bytes(f"t{i}", bytearray([i]) * int(sys.argv[2]))
    run.log_artifact(art, wait=False)
    print("returned", flush=True)
    time.sleep(60)
    """
)


@pytest.mark.parametrize("size", [2 << 20, 6 << 20])  # copied by bytes() / in parallel slices
def test_sigkill_during_background_upload_leaves_store_consistent(
    tmp_path: Path, size: int
) -> None:
    url = str(tmp_path / "store")
    artifacts.open_store(url).close()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, url, str(size)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "returned"
    time.sleep(0.02)  # the upload is under way (48 or 144 MiB of blobs)
    child.send_signal(signal.SIGKILL)
    child.wait(30)
    assert child.returncode == -signal.SIGKILL
    store = artifacts.open_store(url)
    report = store.verify()
    assert report.ok, report.problems
    versions = store.versions("ckpt") if store.index.exists("ckpt") else []
    for v in versions:  # committed means complete
        assert v.verify() == 24  # raises on any bad file
        assert v.read_bytes("t23") == bytes([23]) * size
