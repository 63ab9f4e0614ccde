"""The cyclic gc paused during walks, puts and gets of many files (storage.gcpause), and always
restored: after errors, across nesting and threads, and never turned on when it was off."""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import artifacts
import artifacts.artifact as artifact_mod
import storage.batch as batch_mod
from storage.gcpause import gc_paused


@pytest.fixture(autouse=True)
def _gc_restored() -> Iterator[None]:
    was = gc.isenabled()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


def test_paused_in_the_block_and_restored_after_an_error() -> None:
    gc.enable()
    with pytest.raises(KeyError), gc_paused():
        assert not gc.isenabled()
        raise KeyError("boom")
    assert gc.isenabled()


def test_nested_pauses_restore_once_the_outermost_ends() -> None:
    gc.enable()
    with gc_paused():
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner end does not turn it on under the outer block
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("boom")
    assert not gc.isenabled()


def test_overlapping_pauses_in_threads_end_with_the_last() -> None:
    gc.enable()
    inside, release = threading.Event(), threading.Event()

    def other() -> None:
        with gc_paused():
            inside.set()
            release.wait(10)

    t = threading.Thread(target=other)
    with gc_paused():
        t.start()
        assert inside.wait(10)
    assert not gc.isenabled()  # the other thread's pause is still running
    release.set()
    t.join(10)
    assert gc.isenabled()


def test_walk_put_and_get_run_paused_and_restore_on_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gc.enable()
    src = tmp_path / "in"
    for i in range(5):
        (src / f"d{i % 2}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 2}" / f"f{i}").write_bytes(bytes([i]) * 100)
    seen: dict[str, bool] = {}
    real_read, real_name = batch_mod.read_small, artifact_mod._entry_name

    def entry_name(e: os.DirEntry[str]) -> str:  # the walk's sort key: called per entry
        seen["walk"] = gc.isenabled()
        return real_name(e)

    def read(path: str, key: object, attempts: int = 3) -> object:
        seen["put"] = gc.isenabled()
        return real_read(path, key, attempts)  # type: ignore[arg-type]

    monkeypatch.setattr(artifact_mod, "_entry_name", entry_name)
    monkeypatch.setattr(batch_mod, "read_small", read)
    with artifacts.open_store(tmp_path / "store", user="u") as store:
        art = artifacts.Artifact("many", type="dataset").add_dir(src)
        v = store.log_artifact(art)
        assert gc.isenabled()

        def broken(*a: object, **kw: object) -> None:
            assert not gc.isenabled()
            seen["get"] = False
            raise OSError("boom")

        monkeypatch.setattr(store.blobs, "get_files", broken)
        with pytest.raises(OSError, match="boom"):
            v.download(tmp_path / "out")
        assert gc.isenabled()
        monkeypatch.setattr(batch_mod, "read_small", lambda *a: (_ for _ in ()).throw(OSError("x")))
        (src / "d0" / "new").write_bytes(b"new")
        with pytest.raises(OSError):
            store.log_artifact(artifacts.Artifact("many", type="dataset").add_dir(src))
        assert gc.isenabled()
    assert seen == {"walk": False, "put": False, "get": False}
