"""Large in-memory buffers on a local disk: hashing overlapped with writing (`storage._bufput`), blobs
this process wrote trusted on read without a second hash (`storage.written`), and the parallel copies
``wait=False`` takes (`artifacts.bufcopy`)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import blake3
import pytest

from artifacts.bufcopy import PARALLEL_MIN, copy_buffers, release
from storage import BlobStore, _bufput, hash_bytes, open_root, written
from storage.errors import DiskFullError

REPO = Path(__file__).resolve().parent.parent
MIB = 1 << 20


def _blobs(tmp_path: Path) -> BlobStore:
    return BlobStore(open_root(str(tmp_path / "store")))


def _buffers() -> list[Any]:
    big = [bytes([i]) * (3 * MIB + i) for i in range(5)]
    return [
        b"small",
        bytearray(big[0]),
        memoryview(big[1]),
        big[0],  # the same content twice in one batch
        bytearray(big[2]),
        b"",
        memoryview(bytearray(big[3])),
        big[4],
    ]


def test_overlapped_puts_name_every_buffer_by_its_own_digest(tmp_path: Path) -> None:
    blobs = _blobs(tmp_path)
    datas = _buffers()
    stored = blobs.put_bytes(datas[4])  # already there: a dedup hit in the batch
    given = hash_bytes(datas[6])  # the caller's digest (a quota check hashed it): used as is
    results = blobs.put_many_bytes(datas, digests=[None] * 6 + [given, None])
    assert [r.digest for r in results] == [hash_bytes(d) for d in datas]
    assert [r.size for r in results] == [len(memoryview(d).cast("B")) for d in datas]
    assert [r.written for r in results] == [True, True, True, False, False, True, True, True]
    assert results[4].digest == stored.digest
    for r, d in zip(results, datas, strict=True):
        assert blobs.read_bytes(r.digest) == bytes(d)
    assert not os.listdir(tmp_path / "store" / "tmp")  # every temp file published or removed


def test_a_failing_write_surfaces_and_the_helper_lets_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blobs = _blobs(tmp_path)
    calls = []

    def failing(real: Any) -> Any:
        def put(*args: Any) -> Any:
            calls.append(1)
            if len(calls) == 3:
                raise DiskFullError("store blob: no space left on device")
            return real(*args)

        return put

    # a large buffer is published by one of these two, whether its digest came before its write
    monkeypatch.setattr(_bufput, "put_local_bytes", failing(_bufput.put_local_bytes))
    monkeypatch.setattr(_bufput, "publish_tmp", failing(_bufput.publish_tmp))
    datas = [bytes([i]) * (2 * MIB) for i in range(8)]
    with pytest.raises(DiskFullError):
        blobs.put_many_bytes(datas)
    assert len(calls) == 3  # nothing after the failure
    assert _bufput._hasher().submit(lambda: "idle").result(timeout=10) == "idle"
    assert not os.listdir(tmp_path / "store" / "tmp")
    monkeypatch.undo()
    assert [r.digest for r in blobs.put_many_bytes(datas)] == [hash_bytes(d) for d in datas]


def test_a_blob_found_stored_mid_write_stops_the_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blobs = _blobs(tmp_path)
    data = os.urandom(MIB) * 20  # 5 chunks
    blobs.put_bytes(data)
    first_chunk = threading.Event()
    chunks = []
    real_write_all = _bufput.write_all

    def write_all(f: Any, view: Any) -> None:
        chunks.append(len(view))
        real_write_all(f, view)
        if len(chunks) == 1:
            first_chunk.set()
            _bufput._hasher().submit(lambda: None).result(30)  # the helper's job is done

    class Slow:  # the digest arrives only once the write has started
        def __init__(self) -> None:
            self.h = blake3.blake3()

        def update(self, data: Any) -> None:
            assert first_chunk.wait(30)
            self.h.update(data)

        def hexdigest(self) -> str:
            return str(self.h.hexdigest())

    monkeypatch.setattr(_bufput, "write_all", write_all)
    monkeypatch.setattr(_bufput, "_new_hasher", Slow)
    (r,) = blobs.put_many_bytes([memoryview(data)])
    assert (r.digest, r.size, r.written) == (hash_bytes(data), len(data), False)
    assert len(chunks) == 1  # stopped once the digest named a stored blob
    assert not os.listdir(tmp_path / "store" / "tmp")
    assert blobs.read_bytes(r.digest) == data


def test_the_caller_hashes_from_the_back_what_the_helper_has_not_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer does not wait for digests: it writes every buffer, then hashes those the helper has
    not reached (here the helper is held on the first one until the caller has hashed one)."""
    caller_hashed = threading.Event()
    by: dict[bytes, list[str]] = {}

    class Recorded:
        def __init__(self) -> None:
            self.h = blake3.blake3()

        def update(self, data: Any) -> None:
            me = threading.current_thread()
            if me is threading.main_thread():
                caller_hashed.set()
            else:
                assert caller_hashed.wait(30), "the caller waited for the helper instead"
            by.setdefault(bytes(data[:1]), []).append(
                "caller" if me is threading.main_thread() else "helper"
            )
            self.h.update(data)

        def hexdigest(self) -> str:
            return str(self.h.hexdigest())

    monkeypatch.setattr(_bufput, "_new_hasher", Recorded)
    blobs = _blobs(tmp_path)
    datas = [bytes([i]) * (2 * MIB) for i in range(4)]
    order = []
    results = blobs.put_many_bytes(datas, stored=order.append)
    assert [r.digest for r in results] == [hash_bytes(d) for d in datas]
    assert sorted(by) == [bytes([i]) for i in range(4)] and all(len(w) == 1 for w in by.values())
    assert by[b"\x00"] == ["helper"] and by[b"\x03"] == ["caller"]  # each hashed once, from both ends
    assert sorted(order) == [0, 1, 2, 3]  # each buffer reported stored once
    for r, d in zip(results, datas, strict=True):
        assert blobs.read_bytes(r.digest) == d
    assert not os.listdir(tmp_path / "store" / "tmp")


def test_a_failing_hash_surfaces_on_its_buffer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Broken:
        def update(self, data: Any) -> None:
            raise MemoryError("no memory to hash")

    monkeypatch.setattr(_bufput, "_new_hasher", Broken)
    with pytest.raises(MemoryError):
        _blobs(tmp_path).put_many_bytes([bytes([i]) * (2 * MIB) for i in range(3)])


def test_a_full_disk_mid_batch_is_one_line_and_leaves_no_temp_file(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import os, resource, signal, sys
        from storage import BlobStore, open_root
        from storage.errors import DiskFullError
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        blobs = BlobStore(open_root(sys.argv[1]))
        blobs.put_bytes(b"x")  # directories made before the limit
        resource.setrlimit(resource.RLIMIT_FSIZE, (3 << 20, resource.RLIM_INFINITY))
        datas = [bytes([i]) * ((2 + 2 * i) << 20) for i in range(4)]  # the second one fails
        try:
            blobs.put_many_bytes(datas)
        except DiskFullError as e:
            print("full:", e)
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
        print(len(blobs.put_many_bytes(datas)))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "store")],
        env=env,
        timeout=120,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()
    assert first.startswith("full:") and "\n" not in first
    assert second == "4"
    assert not os.listdir(tmp_path / "store" / "tmp")


def test_a_blob_this_process_wrote_is_trusted_until_it_changes(tmp_path: Path) -> None:
    blobs = _blobs(tmp_path)  # no stat cache at all: only the memory of our own writes
    big, small = b"b" * written.REMEMBER_MIN, b"s" * (written.REMEMBER_MIN - 1)
    rb, rs = blobs.put_many_bytes([big, small])
    blob = blobs.local_blob(rb.digest)
    assert blob is not None and blob.trusted
    assert not blobs.local_blob(rs.digest).trusted  # type: ignore[union-attr]  # cheaper to hash
    written.forget_all()
    assert not blobs.local_blob(rb.digest).trusted  # type: ignore[union-attr]
    assert not blobs.put_bytes(big).written  # a dedup hit: its bytes were not hashed here
    assert not blobs.local_blob(rb.digest).trusted  # type: ignore[union-attr]

    r = blobs.put_bytes(b"c" * MIB)
    path = blobs.local_path(r.digest)
    assert path is not None and blobs.local_blob(r.digest).trusted  # type: ignore[union-attr]
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:  # rewritten in place, same size, right away
        f.write(b"X")
    assert not blobs.local_blob(r.digest).trusted  # type: ignore[union-attr]
    assert not blobs.verify_blob(r.digest)


def test_a_forked_child_hashes_and_puts_without_its_parents_threads(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import os, sys
        from storage import BlobStore, hash_bytes, open_root
        blobs = BlobStore(open_root(sys.argv[1]))
        datas = [bytes([i]) * (2 << 20) for i in range(4)]
        blobs.put_many_bytes(datas)  # the helper thread and BLAKE3's pool exist now
        pid = os.fork()
        if pid == 0:
            more = [bytes([i + 9]) * (2 << 20) for i in range(4)]
            ok = [r.digest for r in blobs.put_many_bytes(more)] == [hash_bytes(d) for d in more]
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        sys.exit(os.waitstatus_to_exitcode(status))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "store")], env=env, timeout=120
    )
    assert done.returncode == 0


def test_parallel_copies_are_private_and_exact() -> None:
    src = bytearray(os.urandom(MIB)) * 9  # 9 MiB: copied in slices
    assert len(src) >= PARALLEL_MIN
    ro = memoryview(bytearray(b"ro" * PARALLEL_MIN)).toreadonly()
    small = bytearray(b"tiny")
    same = b"immutable"
    copies = copy_buffers([src, ro, small, same, memoryview(src)[: 5 * MIB]])
    assert [bytes(c) for c in copies] == [
        bytes(src),
        bytes(ro),
        b"tiny",
        same,
        bytes(src[: 5 * MIB]),
    ]
    assert copies[3] is same  # bytes cannot change: no copy
    expected = bytes(src)
    src[:] = b"\0" * len(src)  # the caller goes on changing its buffers
    small[:] = b"TINY"
    assert bytes(copies[0]) == expected and bytes(copies[2]) == b"tiny"
    assert bytes(copies[4]) == expected[: 5 * MIB]


def test_a_released_copy_gives_its_pages_back_and_nothing_else_is_touched() -> None:
    src = bytearray(b"\x07") * (2 * PARALLEL_MIN)
    same = b"immutable"
    mapped, kept = copy_buffers([src, same])
    release(mapped)  # views of it may still exist: it reads as zeros now
    assert not any(mapped[::4096])
    release(kept)  # the caller's own bytes: left alone
    release(None)
    assert kept is same == b"immutable" and src == b"\x07" * (2 * PARALLEL_MIN)


@pytest.mark.parametrize("where", ["local", "memory"])
def test_stored_is_called_once_per_buffer_after_its_blob_is_stored(
    tmp_path: Path, where: str
) -> None:
    url = str(tmp_path / "store") if where == "local" else f"memory://stored-{os.getpid()}"
    blobs = BlobStore(open_root(url))
    datas = _buffers()
    seen: list[int] = []
    lock = threading.Lock()

    def stored(i: int) -> None:  # nothing reads buffer i any more: its blob is there
        assert blobs.read_bytes(hash_bytes(datas[i])) == bytes(datas[i])
        with lock:
            seen.append(i)

    results = blobs.put_many_bytes(datas, stored=stored)
    assert [r.digest for r in results] == [hash_bytes(d) for d in datas]
    if where == "local":
        assert seen == list(range(len(datas)))  # one after another, in order
    assert sorted(seen) == list(range(len(datas)))
