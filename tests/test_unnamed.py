"""Small blobs written unnamed (``O_TMPFILE``) and linked under their digest, and the named temp
file every other system takes (storage._unnamed): the same blobs, the same dedup and crash rules."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import storage
import storage._localput as localput
import storage._unnamed as unnamed
from storage import StatCache
from tests.test_storage import b3, child_env

LINUX = sys.platform.startswith("linux")


def _tree(top: Path, n: int, size: int = 500) -> list[Path]:
    then = time.time() - 60
    out = []
    for i in range(n):
        p = top / f"d{i % 4}" / f"f{i:04d}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(i.to_bytes(4, "big") * (size // 4))
        os.utime(p, (then, then))
        out.append(p)
    return out


@pytest.fixture(params=["unnamed", "named"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test runs on both paths: ``named`` is what a system without ``O_TMPFILE`` gets."""
    monkeypatch.setattr(unnamed, "_PROBED", {})
    if request.param == "named":
        monkeypatch.delattr(os, "O_TMPFILE", raising=False)
    return str(request.param)


def _blob_files(root: Path) -> dict[str, bytes]:
    return {
        p.parent.name + p.name: p.read_bytes()
        for p in (root / "blobs").rglob("*")
        if p.is_file()
    }


def test_small_files_are_stored_under_their_digest(mode: str, tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = storage.open_blob_store(str(root), stat_cache=StatCache(tmp_path / "s.sqlite"))
    paths = _tree(tmp_path / "in", 40)
    dup = tmp_path / "in" / "dup.bin"
    dup.write_bytes(paths[3].read_bytes())  # the same content twice in one batch: one blob
    results = store.put_files([*paths, dup])
    assert [r.digest for r in results] == [b3(p.read_bytes()) for p in [*paths, dup]]
    assert [r.written for r in results] == [True] * len(paths) + [False]
    blobs = _blob_files(root)
    assert len(blobs) == len(paths) and all(b3(data) == d for d, data in blobs.items())
    assert list((root / "tmp").iterdir()) == []  # no temp file left either way
    assert unnamed.available(str(root / "tmp")) is (mode == "unnamed" and LINUX)


def test_the_unnamed_path_is_taken_where_the_os_has_it(
    mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On Linux (this suite's platform) the unnamed path is the one used; the named one otherwise.
    Counted through the two ways a blob is published: ``linkat`` of an fd, or a temp file's name."""
    linked: list[str] = []
    named: list[str] = []
    real_link, real_named = unnamed._link, localput._put_named

    def link(fd: int, target: str) -> None:
        linked.append(target)
        real_link(fd, target)

    def put_bytes(*a: Any) -> Any:
        named.append("x")
        return real_named(*a)

    monkeypatch.setattr(unnamed, "_link", link)
    monkeypatch.setattr(localput, "_put_named", put_bytes)
    store = storage.open_blob_store(str(tmp_path / "store"))
    store.put_files(_tree(tmp_path / "in", 5))
    if mode == "unnamed":
        assert LINUX, "this suite runs on Linux, where O_TMPFILE exists"
        assert (len(linked), len(named)) == (6, 0)  # the probe's link, then one per blob
    else:
        assert (len(linked), len(named)) == (0, 5)


@pytest.mark.parametrize(
    "broken", ["open EOPNOTSUPP", "open EISDIR", "link ENOENT", "link EPERM"]
)
def test_a_probe_that_fails_takes_the_named_path(
    broken: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tmpfs on old kernels refuses O_TMPFILE (EOPNOTSUPP; EISDIR before 3.11), a system without
    /proc cannot link the fd (ENOENT), some filesystems have no hard links: all get named files."""
    monkeypatch.setattr(unnamed, "_PROBED", {})
    where, code = broken.split()
    err = OSError(getattr(errno, code), code)
    if where == "open":
        real_open = os.open

        def fake_open(path: Any, flags: int, *a: Any, **kw: Any) -> int:
            if flags & getattr(os, "O_TMPFILE", 0) == getattr(os, "O_TMPFILE", -1):
                raise err
            return real_open(path, flags, *a, **kw)

        monkeypatch.setattr(os, "open", fake_open)
    else:

        def fake_link(fd: int, target: str) -> None:
            raise err

        monkeypatch.setattr(unnamed, "_link", fake_link)
    root = tmp_path / "store"
    store = storage.open_blob_store(str(root))
    paths = _tree(tmp_path / "in", 6)
    assert [r.digest for r in store.put_files(paths)] == [b3(p.read_bytes()) for p in paths]
    assert not unnamed.available(str(root / "tmp"))
    assert len(_blob_files(root)) == 6 and list((root / "tmp").iterdir()) == []


def test_dedup_hits_freshen_and_a_damaged_blob_is_replaced(mode: str, tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = storage.open_blob_store(str(root))
    a, b = _tree(tmp_path / "in", 2)
    first = store.put_files([a, b])
    blob_a = root / "blobs" / first[0].digest[:2] / first[0].digest[2:]
    blob_b = root / "blobs" / first[1].digest[:2] / first[1].digest[2:]
    os.utime(blob_a, (1, 1))
    blob_b.write_bytes(b"short")  # damaged: another size than its content
    again = storage.open_blob_store(str(root))  # a new process: its directories are not new
    second = again.put_files([a, b])
    assert [r.written for r in second] == [False, True]
    assert blob_a.stat().st_mtime > 1000  # the hit was freshened for gc
    assert b3(blob_b.read_bytes()) == first[1].digest
    assert list((root / "tmp").iterdir()) == []


def test_a_blob_stored_by_another_process_meanwhile_wins(
    mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """This process made the directory, so it writes without looking first; another process stored
    the same blob meanwhile: the link finds it, keeps it (freshened), and reports no write."""
    root = tmp_path / "store"
    store = storage.open_blob_store(str(root))
    (p,) = _tree(tmp_path / "in", 1)
    digest = b3(p.read_bytes())
    target = root / "blobs" / digest[:2] / digest[2:]
    real = unnamed.put_unnamed

    def racing(blobs: Any, data: bytes, d: str, tmp_dir: str, tgt: str) -> bool:
        target.write_bytes(data)  # the other process's put, just before ours links
        os.utime(target, (1, 1))
        return real(blobs, data, d, tmp_dir, tgt)

    monkeypatch.setattr(unnamed, "put_unnamed", racing)
    (r,) = store.put_files([p])
    assert r.digest == digest
    if mode == "unnamed":
        assert not r.written and target.stat().st_mtime > 1000
    assert b3(target.read_bytes()) == digest


def test_fsync_comes_before_the_blob_has_its_name(
    mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``fsync=True`` (durable against power loss) the bytes are synced before the link that
    makes them visible, on both paths, as for every other put."""
    root = tmp_path / "store"
    events: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        events.append("fsync" if os.fstat(fd).st_size else "fsync-empty")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    store = storage.open_blob_store(str(root))
    store.fsync = True
    (p,) = _tree(tmp_path / "in", 1)
    digest = b3(p.read_bytes())
    target = root / "blobs" / digest[:2] / digest[2:]
    real_link = os.link

    def link(src: Any, dst: Any, **kw: Any) -> None:
        events.append("visible" if os.fspath(dst) == str(target) else "link")
        real_link(src, dst, **kw)

    monkeypatch.setattr(os, "link", link)
    store.put_files([p])
    assert events[-2:] == ["fsync", "visible"]


def test_a_write_that_fails_leaves_nothing(
    mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "store"
    store = storage.open_blob_store(str(root))
    paths = _tree(tmp_path / "in", 3)
    real_write = os.write

    def full(fd: int, data: Any) -> int:
        real_write(fd, bytes(data)[:7])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    monkeypatch.setattr(localput, "write_all", lambda f, data: full(f.fileno(), data))
    with pytest.raises(storage.DiskFullError):
        store.put_files(paths)
    assert _blob_files(root) == {} and list((root / "tmp").iterdir()) == []


_CHILD = """
import os, sys
if sys.argv[3] == "named":
    del os.O_TMPFILE
import storage
store = storage.open_blob_store(sys.argv[1])
paths = sorted(os.path.join(d, f) for d, _, fs in os.walk(sys.argv[2]) for f in fs)
print("go", flush=True)
while True:
    store.put_files(paths)
    for p in paths:  # new content every round: every blob is new
        with open(p, "r+b") as f:
            f.write(os.urandom(8))
"""


@pytest.mark.parametrize("how", ["unnamed", "named"])
def test_small_put_killed_leaves_no_half_written_blob(how: str, tmp_path: Path) -> None:
    """SIGKILL a process that puts small files over and over: every name under blobs/ holds exactly
    the bytes its digest names (nothing is half-written under a digest), and the unnamed path
    leaves not even a temp file."""
    root = tmp_path / "store"
    _tree(tmp_path / "in", 300, size=3000)
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(root), str(tmp_path / "in"), how],
        env=child_env(),
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == b"go\n"
        deadline = time.monotonic() + 60
        while len(list((root / "blobs").rglob("*"))) < 700:  # mid-way through the third round
            assert time.monotonic() < deadline and child.poll() is None
            time.sleep(0.01)
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    blobs = _blob_files(root)
    assert len(blobs) >= 300 and all(b3(data) == d for d, data in blobs.items())
    if how == "unnamed" and LINUX:
        assert list((root / "tmp").iterdir()) == []
    store = storage.open_blob_store(str(root))
    assert sorted(store.iter_digests()) == sorted(blobs)


def test_small_buffers_are_written_unnamed_and_large_ones_through_a_temp_name(
    mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint's small tensors take the unnamed path too (two file operations each); a buffer of
    `UNNAMED_MAX` or more, the named temp file. Either way: the same blobs, dedup, and a blob of
    256 KiB or more published by this process is trusted on restore without a second hash."""
    from storage import written

    linked: list[str] = []
    real_link = unnamed._link

    def link(fd: int, target: str) -> None:
        linked.append(os.path.basename(target))
        real_link(fd, target)

    monkeypatch.setattr(unnamed, "_link", link)
    root = tmp_path / "store"
    store = storage.open_blob_store(str(root))
    datas = [b"b" * 8, bytearray(b"w" * 300_000), memoryview(b"e" * localput.UNNAMED_MAX)]
    results = store.put_many_bytes(datas)
    assert [r.digest for r in results] == [b3(bytes(d)) for d in datas]
    assert [r.written for r in results] == [True, True, True]
    assert sorted(_blob_files(root).values()) == sorted(bytes(d) for d in datas)
    small = [r.digest[2:] for r in results[:2]]
    assert [x for x in linked if not x.endswith("probe")] == (small if mode == "unnamed" else [])
    mid = root / "blobs" / results[1].digest[:2] / results[1].digest[2:]
    assert written.vouches(str(mid), os.stat(mid))
    again = store.put_many_bytes(datas)  # stored already: nothing written, nothing linked
    assert [r.written for r in again] == [False, False, False]
    assert [x for x in linked if not x.endswith("probe")] == (small if mode == "unnamed" else [])
    assert list((root / "tmp").iterdir()) == []
