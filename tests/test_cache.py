"""The bounded download cache, linked checkouts, and killed get/download (issue 11 items 8 and 10)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

import artifacts
from artifacts import Artifact
from artifacts.cache import DownloadCache
from storage import default_cache_dir
from tests.conftest import Backend


def open_(b: Backend) -> artifacts.Store:
    return artifacts.open_store(b.url, storage_options=b.storage_options)


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.getcwd()}


def many_files(
    store: artifacts.Store, n: int, size: int = 2000, name: str = "many"
) -> artifacts.ArtifactVersion:
    art = Artifact(name, "dataset")
    for i in range(n):
        data = (name.encode() + i.to_bytes(4, "little")) * (size // (len(name) + 4))
        art.add_bytes(f"d{i % 10}/f{i:05d}.bin", data[:size].ljust(size, b"."))
    return store.log_artifact(art)


def check_complete(v: artifacts.ArtifactVersion, folder: Path) -> None:
    for f in v.files():
        assert (folder / f.path).read_bytes() == v.read_bytes(f.path), f.path
    assert not [p for p in folder.rglob(".*")]  # no temp files


def kill_when(proc: subprocess.Popen, ready: callable, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None and not ready():
        time.sleep(0.002)
    assert proc.poll() is None, "the process finished before it could be killed half-way"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_killed_get_leaves_no_partial_file_and_a_rerun_completes(
    local_backend: Backend, tmp_path: Path
) -> None:
    v = many_files(open_(local_backend), 1500)
    dest = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "artifacts.cli",
        "--store",
        local_backend.url,
        "-q",
        "get",
        "many",
        str(dest),
    ]
    proc = subprocess.Popen(cmd, env=env())
    kill_when(proc, lambda: dest.is_dir() and sum(1 for _ in dest.rglob("*.bin")) > 150)
    finals = [p for p in dest.rglob("*") if p.is_file() and not p.name.startswith(".")]
    assert 0 < len(finals) < 1500
    by_path = {f.path: f for f in v.files()}
    for p in finals:  # whatever has its final name is complete
        assert p.read_bytes() == v.read_bytes(p.relative_to(dest).as_posix())
    # a temp file like the one a kill leaves mid-write: the rerun removes it
    (dest / "d0" / ".f00000.bin.tmp-0123456789ab").write_bytes(b"partial")
    r = subprocess.run(cmd, env=env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    check_complete(v, dest)
    assert len(by_path) == sum(1 for _ in dest.rglob("*.bin"))
    # a folder holding something else is still refused
    (dest / "mine.txt").write_text("x")
    r = subprocess.run(cmd, env=env(), capture_output=True, text=True)
    assert r.returncode == 1 and "not empty" in r.stderr


def test_killed_download_never_poisons_the_cache(local_backend: Backend) -> None:
    v = many_files(open_(local_backend), 1500)
    code = "import artifacts, sys; artifacts.open_store(sys.argv[1]).artifact('many').download()"
    cache = default_cache_dir() / "files"
    proc = subprocess.Popen([sys.executable, "-c", code, local_backend.url], env=env())
    kill_when(
        proc,
        lambda: any(sum(1 for _ in t.rglob("*.bin")) > 150 for t in cache.glob("*.tmp-*")),
    )
    assert not (cache / v.digest).exists()  # only a temp folder, never the final name
    folder = v.download()
    assert folder == cache / v.digest
    check_complete(v, folder)
    assert not list(cache.glob("*.tmp-*"))
    # a folder without its completion marker (as older versions left after a kill) is not trusted
    os.unlink(cache / f"{v.digest}.json")
    os.chmod(folder / "d0" / "f00000.bin", 0o644)
    (folder / "d0" / "f00000.bin").write_bytes(b"half")
    fresh = artifacts.open_store(local_backend.url).artifact("many")
    import artifacts.cache as c

    os.close(c._HELD.pop(v.digest))  # as a new process would be
    check_complete(fresh, fresh.download())


WORKER = """
import artifacts, sys
from artifacts.cache import DownloadCache
store = artifacts.open_store(sys.argv[1])
for ref in sys.argv[2:]:
    v = store.artifact(ref)
    folder = v.download()
    for f in v.files():
        assert (folder / f.path).read_bytes() == v.read_bytes(f.path), f.path
    DownloadCache().release(v.digest)  # done reading: evictable again
"""


def test_cache_bound_holds_under_two_concurrent_downloaders(
    local_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_(local_backend)
    refs = [many_files(store, 5, 20_000, name=f"v{i}").ref for i in range(8)]
    monkeypatch.setenv("ARTIFACTS_CACHE_MAX_SIZE", str(250_000))  # two and a half versions
    cache = DownloadCache()
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, local_backend.url, *order], env=env())
        for order in (refs, refs[::-1])
    ]
    peak = 0
    while any(p.poll() is None for p in procs):
        peak = max(peak, cache.info().size)
        time.sleep(0.005)
    assert [p.returncode for p in procs] == [0, 0], "a reader saw its cached folder change"
    assert peak <= 250_000 and 0 < cache.info().size <= 250_000
    assert len(cache.info().entries) >= 1


def test_listing_the_cache_never_keeps_an_unused_entry_from_eviction(
    local_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`info()` probes each entry's lock; an eviction meeting the probe kept the entry as if in use,
    so the test above saw the bound overrun when load stretched a probe: no eviction runs mid-probe."""
    import artifacts.cache as c

    a = many_files(open_(local_backend), 2, 40_000, "a")
    cache = DownloadCache()
    cache.release(a.download().name)
    real, seen = c._flock, []

    def probe_then_evict(fd: int, how: int) -> bool:
        ok = real(fd, how)
        if ok and how == c._ex_nb() and not seen:  # the probe holds a's lock: an evictor comes
            seen.append("probe")
            lock = os.open(cache.path / ".lock", os.O_RDWR)
            try:  # it evicts if it can take the cache's lock now, else it waits for the probe
                seen.append(cache._evict_locked(0, everything=True) if real(lock, how) else "waits")
            finally:
                os.close(lock)
        return ok

    monkeypatch.setattr(c, "_flock", probe_then_evict)
    assert [(e.digest, e.in_use) for e in cache.info().entries] == [(a.digest, False)]
    assert seen == ["probe", "waits"]  # (an eviction mid-probe would have freed 0, not 80,000)


def test_an_entry_finished_during_an_eviction_is_still_counted(
    local_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A builder in another process finishes (marker written, then its reservation removed) while an
    evictor lists the cache: the evictor must count it once, as an entry or as a reservation. When it
    listed entries first it counted it as neither, kept what it should have evicted, and the cache
    held three versions under a bound of two and a half (the flaky two-downloader test above)."""
    import fcntl

    import artifacts.cache as c

    a = many_files(open_(local_backend), 2, 40_000, "a")
    cache = DownloadCache()
    cache.release(a.download().name)  # 80,000 bytes, unused
    monkeypatch.setenv("ARTIFACTS_CACHE_MAX_SIZE", str(200_000))
    b = "b" * 64  # another process builds b: its lock held, 80,000 bytes reserved
    held = os.open(cache.path / f"{b}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(held, fcntl.LOCK_EX)
    (cache.path / f"{b}.building").write_text(json.dumps({"size": 80_000}))
    real, finished = c.DownloadCache._entries, []

    def listing_then_b_finishes(self: DownloadCache) -> list[tuple[str, int, float]]:
        out = real(self)
        if not finished:  # b's builder: marker first, then the reservation goes
            finished.append(b)
            (cache.path / b).mkdir()
            (cache.path / f"{b}.json").write_text(json.dumps({"size": 80_000}))
            (cache.path / f"{b}.building").unlink()
        return out

    monkeypatch.setattr(c.DownloadCache, "_entries", listing_then_b_finishes)
    try:
        with cache._global():  # room for an 80,000-byte c: a (unused) has to go
            freed = cache._evict_locked(80_000, building="c" * 64)
    finally:
        os.close(held)
    assert finished == [b]
    assert freed == 80_000 and not (cache.path / a.digest).exists()
    monkeypatch.setattr(c.DownloadCache, "_entries", real)
    assert [e.digest for e in cache.info().entries] == [b]


def test_open_readers_entry_is_never_evicted(
    local_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_(local_backend)
    a, b = many_files(store, 2, 40_000, "a"), many_files(store, 2, 40_000, "b")
    monkeypatch.setenv("ARTIFACTS_CACHE_MAX_SIZE", str(100_000))
    folder = a.download()  # held by this process from now on
    code = "import artifacts, sys; artifacts.open_store(sys.argv[1]).artifact('b').download()"
    subprocess.run([sys.executable, "-c", code, local_backend.url], env=env(), check=True)
    check_complete(a, folder)  # b did not fit beside a, but a is in use: b's process kept it
    assert DownloadCache().prune() == 80_000  # b's folder, no longer in use; a stays
    assert [e.digest for e in DownloadCache().info().entries] == [a.digest]
    check_complete(b, b.download())


def test_linked_checkout_is_read_only_and_verified(local_backend: Backend, tmp_path: Path) -> None:
    store = open_(local_backend)
    v = many_files(store, 20)
    dest = v.download(tmp_path / "linked", link=True)
    for f in v.files():
        p = dest / f.path
        assert p.stat().st_ino == store.blobs.local_path(f.digest).stat().st_ino
        assert stat.S_IMODE(p.stat().st_mode) & 0o222 == 0
    check_complete(v, dest)
    # a corrupt blob is never linked: the checkout fails as a copy would
    w = store.log_artifact(Artifact("c", "d").add_bytes("x", b"good bytes"))
    blob = store.blobs.local_path(w.files()[0].digest)
    os.chmod(blob, 0o644)
    blob.write_bytes(b"evil bytes")
    with pytest.raises(artifacts.IntegrityError):
        w.download(tmp_path / "bad", link=True)
    assert not (tmp_path / "bad" / "x").exists()


def test_linked_checkout_across_filesystems_copies(local_backend: Backend) -> None:
    store = open_(local_backend)
    v = many_files(store, 3)
    shm = Path("/dev/shm") / f"artifacts-test-{os.getpid()}"
    if os.stat("/dev/shm").st_dev == os.stat(local_backend.url).st_dev:
        pytest.fail("this test needs /dev/shm on another filesystem than the temp dir")
    try:
        dest = v.download(shm, link=True)
        check_complete(v, dest)
        assert all((dest / f.path).stat().st_nlink == 1 for f in v.files())
    finally:
        import shutil

        shutil.rmtree(shm, ignore_errors=True)


@pytest.mark.s3
def test_linked_checkout_from_s3_links_the_cache(s3_backend: Backend, tmp_path: Path) -> None:
    v = many_files(open_(s3_backend), 5)
    dest = v.download(tmp_path / "co", link=True)
    cached = default_cache_dir() / "files" / v.digest
    for f in v.files():
        assert (dest / f.path).stat().st_ino == (cached / f.path).stat().st_ino
    check_complete(v, dest)


def test_cli_cache_and_get_link(local_backend: Backend, tmp_path: Path) -> None:
    store = open_(local_backend)
    v = many_files(store, 4, 1000)
    v.download()
    cli = [sys.executable, "-m", "artifacts.cli", "--store", local_backend.url]
    r = subprocess.run([*cli, "cache", "--json"], env=env(), capture_output=True, text=True)
    info = json.loads(r.stdout)
    assert info["size"] == 4000 and info["entries"][0]["in_use"] is True  # by this process
    r = subprocess.run(
        [*cli, "cache", "--max-size", "1MiB"], env=env(), capture_output=True, text=True
    )
    assert r.returncode == 0 and "1 version, 4.0 kB of 1.0 MB" in r.stdout, r.stdout
    assert DownloadCache().max_size == 2**20
    r = subprocess.run([*cli, "cache", "--prune"], env=env(), capture_output=True, text=True)
    assert r.stdout.startswith("pruned 0 B\n")  # this process still uses it
    r = subprocess.run(
        [*cli, "cache", "--max-size", "lots"], env=env(), capture_output=True, text=True
    )
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    r = subprocess.run(
        [*cli, "get", "many", str(tmp_path / "l"), "--link"],
        env=env(),
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert all((tmp_path / "l" / f.path).stat().st_nlink >= 2 for f in v.files())
