"""Contract suite for `storage`: every behaviour runs against memory, local disk and S3 (moto on loopback).

Cross-process behaviour (exclusive-create races, a put killed with SIGKILL) uses real OS processes.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import blake3
import fsspec
import pytest
from conftest import Backend, make_bucket, s3_options
from fsspec.callbacks import Callback
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import storage
import storage._remoteput  # noqa: F401  (loaded where a remote put runs; named below)
from storage import (
    ArtifactsError,
    BackendError,
    BlobStore,
    ConflictError,
    IntegrityError,
    InvalidDigestError,
    InvalidPathError,
    NotFoundError,
    StatCache,
)

REPO = Path(__file__).resolve().parent.parent
HYPO = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def b3(data: bytes) -> str:
    """Reference digest computed with blake3 directly, not through the code under test."""
    return blake3.blake3(data).hexdigest()


def open_store(backend: Backend, **kw: Any) -> BlobStore:
    return storage.open_blob_store(backend.url, backend.storage_options, **kw)


_OPENED: dict[str, BlobStore] = {}


def opened(backend: Backend) -> BlobStore:
    """One store per backend across a property test's examples (a new S3 client per example would
    cost more than the example: the contract is the same either way)."""
    if backend.url not in _OPENED:
        _OPENED[backend.url] = open_store(backend)
    return _OPENED[backend.url]


def raw_fs(backend: Backend) -> tuple[fsspec.AbstractFileSystem, str]:
    """A filesystem independent of the store's, to tamper with the stored bytes behind its back."""
    fs, path = fsspec.url_to_fs(backend.url, **backend.storage_options)
    return fs, path.rstrip("/")


def one_line(e: BaseException) -> str:
    msg = str(e)
    assert msg and "\n" not in msg, f"not a one-line message: {msg!r}"
    return msg


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


class CountingCallback(Callback):
    """Counts bytes; deliberately not thread-safe: the store must serialise concurrent updates."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0
        self.calls = 0

    def relative_update(self, inc: int = 1) -> None:
        self.total += inc
        self.calls += 1


class TestBlobStore:
    """The blob-store contract, once per backend (memory, local, s3)."""

    # -- round trips -------------------------------------------------------------------------
    @HYPO
    @given(data=st.binary(max_size=4096))
    def test_round_trip_all_ways(self, backend: Backend, tmp_path: Path, data: bytes) -> None:
        store = opened(backend)
        src = tmp_path / f"src-{uuid.uuid4().hex}"
        src.write_bytes(data)
        r1 = store.put_bytes(data)
        r2 = store.put_file(src)
        r3 = store.put_stream(io.BytesIO(data))
        # same content -> same digest, whichever way it came in, and it is BLAKE3 of the bytes
        assert r1.digest == r2.digest == r3.digest == b3(data)
        assert r1.size == r2.size == r3.size == len(data)
        assert not r2.written and not r3.written
        assert store.read_bytes(r1.digest) == data
        with store.open(r1.digest) as f:
            assert f.read() == data
        dest = tmp_path / f"out-{uuid.uuid4().hex}" / "x.bin"
        store.get_file(r1.digest, dest)
        assert dest.read_bytes() == data
        assert store.exists(r1.digest)
        assert store.size(r1.digest) == len(data)

    @HYPO
    @given(a=st.binary(min_size=1, max_size=512), b=st.binary(min_size=1, max_size=512))
    def test_distinct_content_distinct_digest(self, backend: Backend, a: bytes, b: bytes) -> None:
        store = opened(backend)
        ra, rb = store.put_bytes(a), store.put_bytes(b)
        assert (ra.digest == rb.digest) == (a == b)
        assert store.read_bytes(ra.digest) == a
        assert store.read_bytes(rb.digest) == b

    def test_large_file_round_trip_crosses_chunks(self, backend: Backend, tmp_path: Path) -> None:
        data = os.urandom(storage.hashing.CHUNK_SIZE * 2 + 12345)
        src = tmp_path / "big.bin"
        src.write_bytes(data)
        store = open_store(backend)
        r = store.put_file(src)
        assert (r.digest, r.size, r.written) == (b3(data), len(data), True)
        out = tmp_path / "restored.bin"
        store.get_file(r.digest, out)
        assert out.read_bytes() == data
        with store.open(r.digest) as f:
            head = f.read(1000)
            rest = f.read()
        assert head + rest == data
        assert store.verify_blob(r.digest)

    def test_read_into_fills_the_buffer_and_refuses_other_sizes_and_content(
        self, backend: Backend
    ) -> None:
        """`read_into` (a restored tensor's read, into its own memory): exactly the blob, checked like
        a sized `read_bytes`; a buffer of another size, damaged bytes and a missing blob raise."""
        store = open_store(backend)
        data = os.urandom(storage.hashing.CHUNK_SIZE + 4321)  # more than one network read on S3
        d = store.put_bytes(data).digest
        buf = bytearray(len(data))
        store.read_into(d, buf)
        assert bytes(buf) == data
        view = memoryview(bytearray(len(data) + 8))[4:-4]  # a view into a larger buffer
        store.read_into(d, view, verify=False)
        assert view.tobytes() == data
        with pytest.raises(IntegrityError, match=f"holds more than {len(data) - 1} bytes"):
            store.read_into(d, bytearray(len(data) - 1))
        with pytest.raises(IntegrityError, match=f"holds {len(data)} bytes, not the {len(data) + 1}"):
            store.read_into(d, bytearray(len(data) + 1))
        store.read_into(b3(b""), bytearray())  # nothing to read
        with pytest.raises(IntegrityError, match="named as empty"):
            store.read_into(d, bytearray())
        fs, root = raw_fs(backend)
        bad = bytearray(data)
        bad[-1] ^= 0x01
        fs.pipe_file(f"{root}/{BlobStore.relpath(d)}", bytes(bad))
        with pytest.raises(IntegrityError, match="is corrupt"):
            store.read_into(d, bytearray(len(data)))
        store.read_into(d, buf, verify=False)
        assert buf == bad
        store.delete(d)
        with pytest.raises(NotFoundError):
            store.read_into(d, bytearray(len(data)))

    def test_put_bytes_accepts_buffers(self, backend: Backend) -> None:
        import array

        arr = array.array("d", [1.5, -2.0, 3.25])
        store = open_store(backend)
        r = store.put_bytes(memoryview(arr))
        assert r.digest == b3(arr.tobytes()) and r.size == 24
        assert store.put_bytes(bytearray(arr.tobytes())).written is False
        assert store.read_bytes(r.digest) == arr.tobytes()

    def test_failing_source_stream_leaves_nothing(self, backend: Backend) -> None:
        class Flaky(io.RawIOBase):
            """Yields two full chunks, then the disk "fails"."""

            def __init__(self) -> None:
                self.calls = 0

            def readable(self) -> bool:
                return True

            def readinto(self, b: Any) -> int:
                self.calls += 1
                if self.calls > 2:
                    raise OSError(5, "Input/output error")
                b[:] = bytes([self.calls]) * len(b)
                return len(b)

        store = open_store(backend)
        with pytest.raises(OSError, match="Input/output"):
            store.put_stream(Flaky())
        assert list(store.iter_digests()) == []
        if backend.kind == "local":
            assert list((Path(backend.url) / "tmp").glob("*")) == []

    def test_failing_destination_write_is_reported(self) -> None:
        """The copy loop writes in a helper thread; a write error must surface, not vanish."""
        from storage.streams import copy_hashing

        class Full(io.RawIOBase):
            def __init__(self) -> None:
                self.writes = 0

            def writable(self) -> bool:
                return True

            def write(self, b: Any) -> int:
                self.writes += 1
                if self.writes == 3:
                    raise OSError(28, "No space left on device")
                return len(b)

        dst = Full()
        chunk = storage.hashing.CHUNK_SIZE
        with pytest.raises(OSError, match="No space"):
            copy_hashing(io.BytesIO(b"x" * (chunk * 5)), dst, Callback())
        assert dst.writes == 3

    # -- dedup -------------------------------------------------------------------------------
    # small content is sent straight away on S3 (If-None-Match); larger content is looked up first
    @pytest.mark.parametrize("size", [20_000, storage._remoteput.PUT_FIRST_MAX + 1])
    def test_dedup_second_put_writes_nothing(
        self, backend: Backend, tmp_path: Path, size: int
    ) -> None:
        store = open_store(backend)
        data = (b"the same bytes twice" * (size // 20 + 1))[:size]
        first = store.put_bytes(data)
        assert first.written
        # Replace the stored bytes with a same-size marker behind the store's back: if a later put wrote
        # anything, the marker would be gone.
        fs, root = raw_fs(backend)
        blob = f"{root}/{BlobStore.relpath(first.digest)}"
        marker = b"M" * len(data)
        fs.pipe_file(blob, marker)
        src = tmp_path / "same.bin"
        src.write_bytes(data)
        for again in (
            store.put_bytes(data),
            store.put_file(src),
            store.put_stream(io.BytesIO(data)),
            *store.put_files([src]),
        ):
            assert (again.digest, again.size, again.written) == (first.digest, len(data), False)
        assert fs.cat_file(blob) == marker
        assert list(store.iter_digests()) == [first.digest]
        if backend.kind == "local":  # and no temp files were left behind
            assert not any((Path(backend.url) / "tmp").glob("*"))

    # -- corruption --------------------------------------------------------------------------
    def test_corruption_detected_on_every_read_path(self, backend: Backend, tmp_path: Path) -> None:
        store = open_store(backend)
        data = os.urandom(300_000)
        d = store.put_bytes(data).digest
        fs, root = raw_fs(backend)
        blob = f"{root}/{BlobStore.relpath(d)}"
        bad = bytearray(data)
        bad[123_456] ^= 0x01  # flip one bit of one byte
        fs.pipe_file(blob, bytes(bad))

        with pytest.raises(IntegrityError) as e1:
            store.read_bytes(d)
        assert d in one_line(e1.value)

        with pytest.raises(IntegrityError) as e2, store.open(d) as f:
            f.read()
        assert d in one_line(e2.value)

        # chunked reads are checked at EOF too
        with pytest.raises(IntegrityError), store.open(d) as f:
            while f.read(4096):
                pass

        with pytest.raises(IntegrityError), store.open(d) as f:  # a rewind restarts the check
            f.read(10)
            f.seek(0)
            f.read()

        dest_dir = tmp_path / "restore"
        with pytest.raises(IntegrityError) as e3:
            store.get_file(d, dest_dir / "model.bin")
        assert d in one_line(e3.value)
        assert list(dest_dir.iterdir()) == []  # neither the file nor its temp file

        assert store.verify_blob(d) is False
        # verification is on by default, not forced
        assert store.read_bytes(d, verify=False) == bytes(bad)

    # -- exists / size / delete / iterate ----------------------------------------------------
    def test_exists_size_delete_iter(self, backend: Backend, tmp_path: Path) -> None:
        store = open_store(backend)
        assert list(store.iter_digests()) == []
        blobs = {store.put_bytes(b * n).digest: n for b, n in ((b"a", 1), (b"b", 10), (b"c", 1000))}
        assert set(store.iter_digests()) == set(blobs)
        assert {(i.digest, i.size) for i in store.iter_blobs()} == set(blobs.items())
        for d, n in blobs.items():
            assert store.exists(d) and store.size(d) == n
        gone = b3(b"b" * 10)
        store.delete(gone)
        store.delete(gone)  # deleting twice is not an error
        assert not store.exists(gone)
        assert set(store.iter_digests()) == set(blobs) - {gone}
        for op in (
            lambda: store.size(gone),
            lambda: store.read_bytes(gone),
            lambda: store.open(gone),
            lambda: store.get_file(gone, tmp_path / "nope.bin"),
        ):
            with pytest.raises(NotFoundError) as e:
                op()
            assert gone in one_line(e.value)
        assert not (tmp_path / "nope.bin").exists()
        assert store.put_bytes(b"b" * 10).written  # a deleted blob can be stored again

    def test_sees_changes_made_by_another_client(self, backend: Backend) -> None:
        """Two clients of one store (two machines): neither trusts a stale listing of the other's writes."""
        a, b = open_store(backend), open_store(backend)
        by_prefix: dict[str, bytes] = {}
        i = 0
        while True:  # two contents whose blobs share a directory (blobs/xy/)
            data = f"content {i}".encode()
            d = b3(data)
            if d[:2] in by_prefix:
                x, y = by_prefix[d[:2]], data
                break
            by_prefix[d[:2]] = data
            i += 1
        dx = a.put_bytes(x).digest
        assert list(a.iter_digests()) == [dx]  # a has listed blobs/
        dy = b.put_bytes(y).digest
        assert a.exists(dy) and a.size(dy) == len(y) and a.read_bytes(dy) == y
        assert set(a.iter_digests()) == {dx, dy}
        b.delete(dy)
        assert not a.exists(dy)
        assert a.put_bytes(y).written

    def test_create_many_and_put_bytes_many(self, backend: Backend) -> None:
        """Many exclusive creates at once: each created or found, none overwritten; many small
        blobs at once: the same results as one put each, an existing blob left as it was."""
        store = open_store(backend)
        store.root.create_exclusive("log/00000000000000000002.json", b"theirs")
        items = [(f"log/{i:020d}.json", b"ours %d" % i) for i in range(1, 40)]
        assert store.root.create_many(items, limit=8) == [i != 2 for i in range(1, 40)]
        assert store.root.read("log/00000000000000000002.json") == b"theirs"
        assert store.root.read("log/00000000000000000039.json") == b"ours 39"
        assert store.root.create_many([]) == []
        old = store.put_bytes(b"stored before")
        datas = [b"blob %d" % i for i in range(30)] + [b"stored before", b""]
        seen: list[int] = []
        cb = fsspec.callbacks.Callback(hooks={"x": lambda size, value, **_: seen.append(value)})
        got = store.put_bytes_many(datas, callback=cb)
        assert [r.digest for r in got] == [b3(d) for d in datas]
        assert [r.written for r in got] == [True] * 30 + [False, True]
        assert got[30].digest == old.digest and seen[-1] == sum(map(len, datas))
        assert all(store.read_bytes(r.digest) == d for r, d in zip(got, datas, strict=True))
        again = store.put_bytes_many(datas[:3])
        assert [r.written for r in again] == [False] * 3

    # -- exclusive create --------------------------------------------------------------------
    def test_create_exclusive(self, backend: Backend) -> None:
        store = open_store(backend)
        store.root.create_exclusive("log/00000000000000000001.json", b'{"first":1}')
        with pytest.raises(ConflictError) as e:
            store.root.create_exclusive("log/00000000000000000001.json", b'{"second":2}')
        assert isinstance(e.value, FileExistsError) and isinstance(e.value, ArtifactsError)
        assert "00000000000000000001.json" in one_line(e.value)
        assert store.root.read("log/00000000000000000001.json") == b'{"first":1}'
        store.root.create_exclusive("log/00000000000000000002.json", b"{}")
        assert store.root.read("log/00000000000000000002.json") == b"{}"
        if backend.kind == "local":  # no temp files left beside the entries
            assert sorted(os.listdir(Path(backend.url) / "log")) == [
                "00000000000000000001.json",
                "00000000000000000002.json",
            ]

    def test_create_exclusive_race_between_processes(self, shared_backend: Backend) -> None:
        """Two OS processes race 50 times on one key per round: exactly one winner, its bytes kept."""
        script = textwrap.dedent(
            """
            import json, sys, storage
            url, opts, me = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
            root = storage.open_root(url, opts)
            print("ready", flush=True)
            for line in sys.stdin:
                key = line.strip()
                try:
                    root.create_exclusive(key, me.encode())
                    print("won", flush=True)
                except storage.ConflictError:
                    print("lost", flush=True)
                except Exception as e:
                    print("error " + type(e).__name__ + " " + str(e).replace(chr(10), " "), flush=True)
            """
        )
        import json

        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    script,
                    shared_backend.url,
                    json.dumps(shared_backend.storage_options),
                    name,
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=child_env(),
            )
            for name in ("p0", "p1")
        ]
        try:
            for p in procs:
                assert p.stdout.readline().strip() == "ready"
            reader = storage.open_root(shared_backend.url, shared_backend.storage_options)
            wins = {"p0": 0, "p1": 0}
            for i in range(50):
                key = f"race/{i:05d}.json"
                for p in procs:  # release both at (nearly) the same instant
                    p.stdin.write(key + "\n")
                    p.stdin.flush()
                answers = [p.stdout.readline().strip() for p in procs]
                assert sorted(answers) == ["lost", "won"], (i, answers)
                winner = ("p0", "p1")[answers.index("won")]
                wins[winner] += 1
                assert reader.read(key) == winner.encode()
            assert sum(wins.values()) == 50
        finally:
            for p in procs:
                p.stdin.close()
                p.wait(timeout=30)
        assert [p.returncode for p in procs] == [0, 0]

    # -- stat cache --------------------------------------------------------------------------
    def test_stat_cache_skips_reading_unchanged_file(
        self, backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        cache = StatCache(tmp_path / "stat.sqlite")
        store = open_store(backend, stat_cache=cache)
        src = tmp_path / "weights.bin"
        src.write_bytes(b"w" * 100_000)
        # A file written just now is inside the racy window: its digest must not be remembered.
        store.put_file(src)
        assert cache.lookup(str(src), os.stat(src)) is None
        old = time.time() - 10
        os.utime(src, (old, old))  # backdate so the racy-window rule no longer applies
        first = store.put_file(src)
        assert cache.lookup(str(src), os.stat(src)) == first.digest == b3(b"w" * 100_000)

        # Re-putting the unchanged file must not read it: make every way of reading it fail.
        import storage._localput as local_mod
        import storage._remoteput as remote_mod
        import storage.blobs as blobs_mod

        def no_read(*a: Any, **k: Any) -> Any:
            raise AssertionError("the unchanged file was read")

        with monkeypatch.context() as m:
            for mod in (blobs_mod, local_mod, remote_mod):
                m.setattr(mod, "open", no_read, raising=False)
            m.setattr(blobs_mod, "hash_file", no_read)
            m.setattr(local_mod, "copy_hashing", no_read)
            m.setattr(local_mod, "copy_file_hashing", no_read)
            m.setattr(remote_mod, "read_whole", no_read)
            m.setattr(store.root.fs, "put_file", no_read)
            again = store.put_file(src)
        assert (again.digest, again.written) == (first.digest, False)

        # Any change (same size here) changes the digest on the next put.
        src.write_bytes(b"v" * 100_000)
        os.utime(src, (old, old))
        changed = store.put_file(src)
        assert changed.written and changed.digest == b3(b"v" * 100_000) != first.digest
        assert cache.lookup(str(src), os.stat(src)) == changed.digest

    # -- many files, progress ----------------------------------------------------------------
    def test_put_files_get_files_with_progress(self, backend: Backend, tmp_path: Path) -> None:
        store = open_store(backend)
        sizes = [0, 1, 1000, 70_000, 300_000, 1000]  # the last repeats content of the third
        paths = []
        for i, n in enumerate(sizes):
            p = tmp_path / "in" / f"f{i}.bin"
            p.parent.mkdir(exist_ok=True)
            p.write_bytes(bytes([i % 3 + 65]) * n if i != 5 else bytes([2 % 3 + 65]) * n)
            paths.append(p)
        cb = CountingCallback()
        results = store.put_files(paths, callback=cb, max_workers=4)
        assert [r.digest for r in results] == [b3(p.read_bytes()) for p in paths]  # order kept
        assert [r.size for r in results] == sizes
        assert cb.total == sum(sizes) and cb.size == sum(sizes)
        assert sum(r.written for r in results) == len({r.digest for r in results})

        cb2 = CountingCallback()
        pairs = [(r.digest, tmp_path / "out" / f"g{i}.bin") for i, r in enumerate(results)]
        store.get_files(pairs, callback=cb2, max_workers=4)
        for (_, dest), src in zip(pairs, paths, strict=True):
            assert dest.read_bytes() == src.read_bytes()
        assert cb2.total == sum(sizes)

        # many concurrent readers of one blob each get all of its bytes
        big = results[4]
        many = [(big.digest, tmp_path / "same" / f"{i}.bin") for i in range(40)]
        store.get_files(many, max_workers=8)
        assert all(dest.read_bytes() == paths[4].read_bytes() for _, dest in many)

    # -- bad input ---------------------------------------------------------------------------
    def test_bad_source_paths(self, backend: Backend, tmp_path: Path) -> None:
        store = open_store(backend)
        missing = tmp_path / "does-not-exist.bin"
        with pytest.raises(NotFoundError) as e:
            store.put_file(missing)
        assert str(missing) in one_line(e.value)
        good = tmp_path / "good.bin"
        good.write_bytes(b"good")
        with pytest.raises(NotFoundError):  # checked before anything is uploaded
            store.put_files([good, missing])
        with pytest.raises(InvalidPathError) as e2:
            store.put_file(tmp_path)
        assert "directory" in one_line(e2.value)
        assert list(store.iter_digests()) == []

    @pytest.mark.parametrize(
        "digest",
        ["", "abc", "0" * 63, "0" * 65, "A" * 64, "g" * 64, "../" * 21 + "x", None, 12],
    )
    def test_malformed_digest(self, backend: Backend, tmp_path: Path, digest: Any) -> None:
        store = open_store(backend)
        for op in (
            store.exists,
            store.size,
            store.read_bytes,
            store.open,
            store.delete,
            lambda d: store.get_file(d, tmp_path / "x"),
        ):
            with pytest.raises(InvalidDigestError) as e:
                op(digest)
            assert isinstance(e.value, ValueError)
            one_line(e.value)
        assert not (tmp_path / "x").exists()


# -- process death --------------------------------------------------------------------------------
def test_local_put_killed_mid_write_leaves_no_visible_blob(tmp_path: Path) -> None:
    """SIGKILL a process while it streams a large file into a local store: nothing appears under blobs/."""
    root = tmp_path / "store"
    fifo = tmp_path / "feed"
    os.mkfifo(fifo)
    script = "import sys, storage; storage.open_blob_store(sys.argv[1]).put_file(sys.argv[2])"
    child = subprocess.Popen([sys.executable, "-c", script, str(root), str(fifo)], env=child_env())
    chunk = os.urandom(1 << 20)
    written = 0
    try:
        with open(fifo, "wb") as feed:  # blocks until the child opens the pipe
            deadline = time.monotonic() + 30
            while True:
                feed.write(chunk)
                feed.flush()
                written += len(chunk)
                tmps = list((root / "tmp").glob("*")) if (root / "tmp").is_dir() else []
                if tmps and tmps[0].stat().st_size >= 16 << 20:
                    break  # the child is mid-write: 16 MiB of an unfinished blob on disk
                assert time.monotonic() < deadline, "the child never started writing"
            os.kill(child.pid, signal.SIGKILL)
            assert child.wait(timeout=10) == -signal.SIGKILL
    except BrokenPipeError:
        pytest.fail("the child exited before it was killed")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert written >= 16 << 20
    blobs_dir = root / "blobs"
    assert not blobs_dir.exists() or [p for p in blobs_dir.rglob("*") if p.is_file()] == []
    store = storage.open_blob_store(str(root))
    assert list(store.iter_digests()) == []
    assert store.clean_tmp(older_than=-1) == 1  # the half-written temp file is swept, not published
    assert list((root / "tmp").glob("*")) == []


def test_local_copy_falls_back_without_kernel_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Across filesystems copy_file_range fails (EXDEV); put and restore then read and write."""
    import errno

    data = os.urandom(storage.hashing.CHUNK_SIZE * 2 + 999)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    store = storage.open_blob_store(str(tmp_path / "store"))
    calls = []

    def exdev(*a: Any) -> int:
        calls.append(a)
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "copy_file_range", exdev)
    r = store.put_file(src)
    assert (r.digest, r.size, r.written) == (b3(data), len(data), True)
    store.get_file(r.digest, tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == data
    assert len(calls) == 2  # both tried the kernel copy first
    assert store.verify_blob(r.digest)


# -- bad store URLs -------------------------------------------------------------------------------
@pytest.mark.parametrize("url", ["gs://bucket/x", "ftp://host/x", "nosuch://a"])
def test_unknown_url_scheme(url: str) -> None:
    with pytest.raises(BackendError) as e:
        storage.open_blob_store(url)
    assert url.split("://")[0] in one_line(e.value)


def test_s3_url_without_bucket() -> None:
    with pytest.raises(BackendError) as e:
        storage.open_blob_store("s3://", {"anon": True})
    one_line(e.value)


def test_unreachable_s3_endpoint_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARTIFACTS_S3_TIMEOUT", "2")  # retried for 2 s (see tests/test_dark_s3.py)
    opts = s3_options("http://127.0.0.1:9")  # nothing listens on the discard port
    opts["config_kwargs"] = {
        "connect_timeout": 1,
        "read_timeout": 1,
        "retries": {"max_attempts": 1},
    }
    t0 = time.monotonic()
    with pytest.raises(BackendError) as e:
        storage.open_blob_store("s3://bucket/store", opts)
    assert time.monotonic() - t0 < 10
    assert "127.0.0.1:9" in one_line(e.value)


def test_missing_bucket(s3_endpoint: str) -> None:
    with pytest.raises(BackendError) as e:
        storage.open_blob_store(
            f"s3://no-such-{uuid.uuid4().hex[:8]}/store", s3_options(s3_endpoint)
        )
    assert "bucket" in one_line(e.value) and "does not exist" in str(e.value)


def test_missing_blob_in_bucket_named_bucket(s3_endpoint: str) -> None:
    """A missing key is NotFoundError even when the bucket's own name contains the word 'bucket'."""
    name = make_bucket(s3_endpoint, f"my-bucket-{uuid.uuid4().hex[:8]}")
    store = storage.open_blob_store(f"s3://{name}/store", s3_options(s3_endpoint))
    with pytest.raises(NotFoundError):
        store.read_bytes(b3(b"never stored"))
    with pytest.raises(NotFoundError):
        store.size(b3(b"never stored"))


def test_a_local_exclusive_create_syncs_the_file_then_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit that returned must survive a power loss: the entry's bytes and then its name (the
    directory) are synced, in that order, and the temp file is gone."""
    synced: list[str] = []
    real = os.fsync

    def recording(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    root = storage.open_root(str(tmp_path / "store"))
    monkeypatch.setattr(os, "fsync", recording)
    root.create_exclusive("log/00000000000000000001.json", b"{}")
    log_dir = str(tmp_path / "store" / "log")
    assert synced[-1] == log_dir
    assert synced[0].startswith(log_dir + "/.tmp-")
    assert os.listdir(log_dir) == ["00000000000000000001.json"]


def test_temp_names_are_unique_across_threads_and_forked_children() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from storage._tmpname import unique

    with ThreadPoolExecutor(8) as pool:
        names = list(pool.map(lambda _: unique(), range(4000)))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child names as many, with the parent's counter state copied
        os.close(r)
        os.write(w, "\n".join(unique() for _ in range(2000)).encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        child = f.read().split("\n")
    os.waitpid(pid, 0)
    names += [unique() for _ in range(2000)]
    assert len(set(names + child)) == len(names) + len(child) == 8000


# -- many buffers at once (a checkpoint's tensors) -----------------------------------------------
def test_put_many_bytes_names_each_buffer_by_its_own_bytes(backend: Backend) -> None:
    """Mutable and immutable buffers, a duplicate in one batch, one stored before, small and large:
    each result names its own bytes, in order, and says whether this batch wrote it."""
    store = open_store(backend)
    big = [bytes([i]) * ((2 << 20) + i) for i in range(3)]
    stored = store.put_bytes(big[2])
    datas: list[Any] = [bytearray(big[0]), b"small", memoryview(big[1]), big[0], big[2], b""]
    results = store.put_many_bytes(datas)
    assert [r.digest for r in results] == [b3(bytes(d)) for d in datas]
    assert [r.size for r in results] == [len(d) for d in datas]
    written = [r.written for r in results]
    assert written[0] != written[3]  # one content twice, sent at once: exactly one write
    assert [written[i] for i in (1, 2, 4, 5)] == [True, True, False, True]
    assert results[4].digest == stored.digest
    for r, d in zip(results, datas, strict=True):
        assert store.read_bytes(r.digest) == bytes(d)
