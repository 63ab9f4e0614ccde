"""Content-addressed blobs: ``<root>/blobs/ab/cdef...`` named by their BLAKE3 digest.

A put hashes while it streams (one pass), writes under a temporary name and only then makes the blob
visible under its digest, so a reader (or a crash) never sees a partial blob. Content that already exists
is not written again. Reads verify the digest by default.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from fsspec.callbacks import Callback, NoOpCallback

from .backend import Root, backend_errors
from .errors import BackendError, ConflictError, IntegrityError, InvalidPathError, NotFoundError
from .hashing import CHUNK_SIZE, Hasher, check_digest, hash_bytes, hash_file
from .statcache import StatCache

__all__ = ["BlobInfo", "BlobStore", "PutResult", "Relay"]

BLOBS = "blobs"
#: Buffers in flight in a large copy: one being hashed, the others being written.
_NBUF = 3
TMP = "tmp"
#: On S3, a dedup hit on a blob older than this many seconds refreshes its LastModified (see BlobStore).
FRESHEN_AFTER = 3600.0
#: On S3, content up to this size is PUT straight away with If-None-Match (one request; HTTP 412 if the
#: blob exists) instead of a HEAD first and then a PUT: below about a round trip's worth of bytes,
#: re-sending them costs less than asking first.
PUT_FIRST_MAX = 1024 * 1024


@dataclass(frozen=True)
class PutResult:
    """What a put did: the digest and size, and whether bytes were actually written (False = dedup)."""

    digest: str
    size: int
    written: bool


@dataclass(frozen=True)
class BlobInfo:
    digest: str
    size: int
    mtime: float | None


def _as_callback(cb: Callback | None) -> Callback:
    return cb if cb is not None else NoOpCallback()


class _VerifyingReader(io.RawIOBase):
    """A read-only stream that hashes what passes through and raises `IntegrityError` at EOF on mismatch.

    A seek back to the start restarts verification; any other seek turns it off (a partial read cannot
    be checked). Full sequential reads are always checked.
    """

    def __init__(self, raw: BinaryIO, digest: str, what: str) -> None:
        self._raw = raw
        self._digest = digest
        self._what = what
        self._hasher: Hasher | None = Hasher()
        self._checked = False
        self._raw_readinto = getattr(raw, "readinto", None)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._raw.seekable()

    def seek(self, offset: int, whence: int = 0) -> int:
        before = self._raw.tell()
        pos = self._raw.seek(offset, whence)
        if pos == 0:
            self._hasher, self._checked = Hasher(), False
        elif pos != before:
            self._hasher = None
        return pos

    def tell(self) -> int:
        return self._raw.tell()

    def _feed(self, data: bytes | memoryview) -> None:
        if self._hasher is None:
            return
        if len(data):
            self._hasher.update(data)
        elif not self._checked:
            self._checked = True
            actual = self._hasher.hexdigest()
            if actual != self._digest:
                raise IntegrityError(
                    f"blob {self._digest} is corrupt: its content hashes to {actual} ({self._what}); "
                    "run `artifacts verify`"
                )

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        if self._raw_readinto is not None:
            n = self._raw_readinto(view) or 0
        else:
            data = self._raw.read(len(view))
            n = len(data)
            view[:n] = data
        self._feed(view[:n])
        return n

    def readall(self) -> bytes:
        """Read to EOF in one call (`RawIOBase.readall` would loop in 8 KiB steps)."""
        data = self._raw.read()
        self._feed(data)
        self._feed(b"")
        return data

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._raw.close()
        super().close()


class BlobStore:
    """Immutable blobs under one root, addressed by digest.

    ``stat_cache`` makes re-putting an unchanged local file cost a stat. ``fsync`` makes a local put durable
    against power loss before the blob becomes visible (off by default: a killed process loses nothing
    either way, and fsync of a large file costs more than the copy).

    A put that finds its blob already stored (a dedup hit) freshens the blob's modification time, so a
    concurrent ``gc`` that is about to sweep it as unreferenced (say, the content of a deleted version
    being logged again) sees it as young and spares it. Locally that is one ``utime`` per hit. On S3 it
    costs an in-place copy, so it is done only when the blob is older than ``freshen_after`` seconds
    (default 1 h): gc then spares every in-flight commit younger than its grace period minus that.
    """

    def __init__(
        self,
        root: Root,
        *,
        stat_cache: StatCache | None = None,
        fsync: bool = False,
        max_workers: int = 16,
        freshen_after: float = FRESHEN_AFTER,
    ) -> None:
        self.root = root
        self.stat_cache = stat_cache
        self.fsync = fsync
        self.max_workers = max_workers
        self.freshen_after = freshen_after

    # -- naming ----------------------------------------------------------------------------------
    @staticmethod
    def relpath(digest: str) -> str:
        check_digest(digest)
        return f"{BLOBS}/{digest[:2]}/{digest[2:]}"

    def local_path(self, digest: str) -> Path | None:
        """The blob's OS path when the store is on local disk (for memory-mapping), else None."""
        if not self.root.is_local:
            return None
        return Path(self.root.local(self.relpath(digest)))

    # -- hashing ---------------------------------------------------------------------------------
    def hash_local_file(self, path: str | os.PathLike[str]) -> tuple[str, int]:
        """Digest and size of a local file, from the stat cache when the file is unchanged."""
        path = _source_path(path)
        st = os.stat(path)
        if self.stat_cache is not None:
            cached = self.stat_cache.lookup(path, st)
            if cached is not None:
                return cached, st.st_size
        with open(path, "rb", buffering=0) as f:
            digest, size = hash_file(f)
        if self.stat_cache is not None:
            self.stat_cache.store(path, st, digest)
        return digest, size

    # -- put -------------------------------------------------------------------------------------
    def put_file(
        self, path: str | os.PathLike[str], *, callback: Callback | None = None
    ) -> PutResult:
        """Store a local file. Unchanged files known to the stat cache are not even read."""
        path = _source_path(path)
        cb = _as_callback(callback)
        st = os.stat(path)
        known = self.stat_cache.lookup(path, st) if self.stat_cache is not None else None
        if known is not None and self._freshen(known):
            cb.relative_update(st.st_size)
            return PutResult(known, st.st_size, False)
        if self.root.is_local:
            result = self._put_local_stream(path, cb)
        else:
            digest, size = known, st.st_size
            if digest is None:
                digest, size = self.hash_local_file(path)
            result = self._upload_file(path, digest, size, cb, absent=known is not None)
        if self.stat_cache is not None:
            self.stat_cache.store(path, st, result.digest)
        return result

    def _upload_file(
        self, path: str, digest: str, size: int, cb: Callback, *, absent: bool = False
    ) -> PutResult:
        """Upload a local file whose digest is known to a non-local root, unless the blob exists.

        ``absent``: the caller just found the blob missing, so do not ask again.
        """

        def upload(progress: Callback) -> None:
            rel = self.relpath(digest)
            if self.root.is_memory:
                with open(path, "rb") as f:
                    self.root.create_exclusive(rel, f.read())
                progress.relative_update(size)
            else:
                with backend_errors(f"upload {path}", self.root.url):
                    self.root.fs.put_file(
                        path, self.root.full(rel), callback=progress, mode="create"
                    )

        return self._put_remote(digest, size, upload, cb, absent=absent)

    def _put_remote(
        self,
        digest: str,
        size: int,
        upload: Callable[[Callback], None],
        cb: Callback,
        *,
        absent: bool = False,
    ) -> PutResult:
        """Store a blob on a non-local root with an exclusive create (S3: If-None-Match), so that of
        concurrent puts of one content exactly one reports a write and none overwrites the blob.

        Large content is looked up first (a HEAD) to avoid sending bytes that are already stored; small
        content on S3 is sent straight away and a 412 means it was already there.
        """
        put_first = absent or (not self.root.is_memory and size <= PUT_FIRST_MAX)
        if not put_first and self._freshen(digest):
            cb.relative_update(size)
            return PutResult(digest, size, False)
        tally = _Tally(cb)
        try:
            upload(tally)
            return PutResult(digest, size, True)
        except ConflictError:
            pass
        # Stored already (or by a concurrent writer): freshen it for gc like any dedup hit. If gc swept it
        # between our PUT and now, store it after all.
        if put_first and not self._freshen(digest):
            try:
                upload(_Tally(NoOpCallback()))
                cb.relative_update(size - tally.n)
                return PutResult(digest, size, True)
            except ConflictError:
                pass
        cb.relative_update(size - tally.n)
        return PutResult(digest, size, False)

    def put_bytes(self, data: bytes | bytearray | memoryview) -> PutResult:
        """Store an in-memory buffer (hashed without copying)."""
        view = memoryview(data).cast("B") if not isinstance(data, bytes) else data
        digest = hash_bytes(view)
        size = len(view)
        rel = self.relpath(digest)
        if not self.root.is_local:

            def upload(_: Callback) -> None:
                self.root.create_exclusive(rel, view if isinstance(view, bytes) else bytes(view))

            return self._put_remote(digest, size, upload, NoOpCallback())
        if self._freshen(digest):
            return PutResult(digest, size, False)
        tmp = self._local_tmp()
        try:
            with open(tmp, "wb", buffering=0) as f:
                _write_all(f, view)
                if self.fsync:
                    os.fsync(f.fileno())
            written = self._publish_local(tmp, self.root.local(rel))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return PutResult(digest, size, written)

    def put_stream(self, f: BinaryIO, *, callback: Callback | None = None) -> PutResult:
        """Store whatever a binary stream yields, in bounded memory.

        Local: one pass into a temp file. Elsewhere the digest must be known before the upload names the
        object, so the stream is spooled to a local temp file while hashing, then uploaded.
        """
        cb = _as_callback(callback)
        if self.root.is_local:
            return self._put_local_stream(f, cb)
        with tempfile.NamedTemporaryFile(prefix="artifacts-spool-", delete=False) as spool:
            try:
                digest, size = _copy_hashing(f, spool, cb)
                spool.close()
                # the spool was hashed on the way in; upload it under that digest without re-reading it
                return self._upload_file(spool.name, digest, size, NoOpCallback())
            finally:
                os.unlink(spool.name)

    def put_files(
        self,
        paths: Iterable[str | os.PathLike[str]],
        *,
        callback: Callback | None = None,
        max_workers: int | None = None,
    ) -> list[PutResult]:
        """Store many local files concurrently; results in the order given. Progress counts bytes."""
        paths = [_source_path(p) for p in paths]
        cb = _as_callback(callback)
        cb.set_size(sum(os.stat(p).st_size for p in paths))
        return self._map(lambda p: self.put_file(p, callback=Relay(cb)), paths, max_workers)

    def _map(
        self, fn: Callable[[Any], Any], items: list[Any], max_workers: int | None
    ) -> list[Any]:
        workers = min(max_workers or self.max_workers, max(1, len(items)))
        if workers == 1:
            return [fn(i) for i in items]
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(fn, items))

    def _local_tmp(self) -> str:
        d = self.root.local(TMP)
        os.makedirs(d, exist_ok=True)
        return os.path.join(d, f"{os.getpid()}-{uuid.uuid4().hex}")

    def _publish_local(self, tmp: str, target: str) -> bool:
        """Make ``tmp`` visible as ``target`` atomically; if it already exists keep the existing one."""
        os.makedirs(os.path.dirname(target), exist_ok=True)
        try:
            os.link(tmp, target)
            written = True
        except FileExistsError:
            written = False
            if not self._freshen_local(target):  # swept by gc just now: publish ours after all
                return self._publish_local(tmp, target)
        except OSError:  # filesystems without hard links: rename is atomic too
            if os.path.exists(target):
                written = False
            else:
                os.replace(tmp, target)
                return True
        os.unlink(tmp)
        return written

    def _put_local_stream(self, src: str | BinaryIO, cb: Callback) -> PutResult:
        tmp = self._local_tmp()
        try:
            with contextlib.ExitStack() as stack:
                f = (
                    stack.enter_context(open(src, "rb", buffering=0))
                    if isinstance(src, str)
                    else src
                )
                out = stack.enter_context(open(tmp, "wb", buffering=0))
                digest, size = _copy_hashing(f, out, cb)
                if self.fsync:
                    os.fsync(out.fileno())
            written = self._publish_local(tmp, self.root.local(self.relpath(digest)))
            return PutResult(digest, size, written)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def _freshen(self, digest: str) -> bool:
        """True if the blob is stored; on a hit also refresh its modification time for gc (see class)."""
        rel = self.relpath(digest)
        if self.root.is_local:
            return self._freshen_local(self.root.local(rel))
        if self.root.is_memory:
            return self.root.exists(rel)
        info = self.root.head(rel)
        if info is None:
            return False
        mtime = _mtime(info)
        if mtime is None or time.time() - mtime >= self.freshen_after:
            try:  # an in-place copy with new metadata is how S3 refreshes LastModified
                with backend_errors(f"freshen blob {digest}", self.root.url):
                    self.root.fs.setxattr(self.root.full(rel), artifacts_freshened=str(time.time()))
            except NotFoundError:
                return False  # swept meanwhile: upload it again
            except (BackendError, AttributeError, ValueError):
                pass  # cannot refresh (policy, object over 5 GB): the blob is still there
        return True

    @staticmethod
    def _freshen_local(path: str) -> bool:
        try:
            os.utime(path)
        except FileNotFoundError:
            return False
        except PermissionError:  # another user's blob on a shared disk
            return os.path.exists(path)
        return True

    # -- get -------------------------------------------------------------------------------------
    def exists(self, digest: str) -> bool:
        rel = self.relpath(digest)
        if self.root.is_local:
            return os.path.exists(self.root.local(rel))
        return self.root.exists(rel)

    def size(self, digest: str) -> int:
        try:
            return int(self.root.info(self.relpath(digest))["size"])
        except NotFoundError:
            raise NotFoundError(f"blob {digest} not found in {self.root.url}") from None

    def open(self, digest: str, *, verify: bool = True) -> BinaryIO:
        """A binary stream of the blob; with ``verify`` a full read raises `IntegrityError` on mismatch."""
        rel = self.relpath(digest)
        try:
            with backend_errors(f"open blob {digest}", self.root.url):
                if self.root.is_memory:
                    # memory:// hands every opener the same file object (one shared position), so
                    # concurrent readers would interleave; give each reader its own snapshot instead.
                    raw = io.BytesIO(self.root.fs.cat_file(self.root.full(rel)))
                elif self.root.is_local:  # the OS file itself: no fsspec wrapper in the read loop
                    raw = open(self.root.local(rel), "rb")  # noqa: SIM115 - returned to the caller
                else:
                    raw = self.root.fs.open(self.root.full(rel), "rb")
        except NotFoundError:
            raise NotFoundError(f"blob {digest} not found in {self.root.url}") from None
        if not verify:
            return raw
        return io.BufferedReader(_VerifyingReader(raw, digest, self.root.url), CHUNK_SIZE)

    def read_bytes(self, digest: str, *, verify: bool = True) -> bytes:
        rel = self.relpath(digest)
        try:
            data = self.root.read(rel)
        except NotFoundError:
            raise NotFoundError(f"blob {digest} not found in {self.root.url}") from None
        if verify:
            actual = hash_bytes(data)
            if actual != digest:
                raise IntegrityError(
                    f"blob {digest} is corrupt: its content hashes to {actual} ({self.root.url}); "
                    "run `artifacts verify`"
                )
        return data

    def get_file(
        self,
        digest: str,
        dest: str | os.PathLike[str],
        *,
        verify: bool = True,
        callback: Callback | None = None,
    ) -> None:
        """Write the blob to ``dest`` via a temp file beside it; ``dest`` appears only if verified."""
        dest = os.fspath(dest)
        cb = _as_callback(callback)
        parent = os.path.dirname(os.path.abspath(dest))
        os.makedirs(parent, exist_ok=True)
        tmp = os.path.join(parent, f".{os.path.basename(dest)}.tmp-{uuid.uuid4().hex[:12]}")
        try:
            if self.root.is_local or self.root.is_memory:
                with self.open(digest, verify=False) as f, open(tmp, "wb", buffering=0) as out:
                    actual, _ = _copy_hashing(f, out, cb)
            else:
                try:
                    with backend_errors(f"download blob {digest}", self.root.url):
                        self.root.fs.get_file(
                            self.root.full(self.relpath(digest)), tmp, callback=cb
                        )
                except NotFoundError:
                    raise NotFoundError(f"blob {digest} not found in {self.root.url}") from None
                actual = None
                if verify:
                    with open(tmp, "rb", buffering=0) as f:
                        actual, _ = hash_file(f)
            if verify and actual != digest:
                raise IntegrityError(
                    f"blob {digest} is corrupt: its content hashes to {actual} ({self.root.url}); "
                    "run `artifacts verify`"
                )
            os.replace(tmp, dest)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def get_files(
        self,
        pairs: Iterable[tuple[str, str | os.PathLike[str]]],
        *,
        verify: bool = True,
        callback: Callback | None = None,
        max_workers: int | None = None,
    ) -> None:
        """Download many blobs concurrently: ``pairs`` of (digest, destination path)."""
        pairs = list(pairs)
        cb = _as_callback(callback)
        self._map(
            lambda p: self.get_file(p[0], p[1], verify=verify, callback=Relay(cb)),
            pairs,
            max_workers,
        )

    def verify_blob(self, digest: str) -> bool:
        """True if the stored bytes hash to ``digest`` (re-reads the whole blob)."""
        with self.open(digest, verify=False) as f:
            actual, _ = hash_file(f)
        return actual == digest

    # -- listing and deletion --------------------------------------------------------------------
    def delete(self, digest: str) -> None:
        self.root.delete(self.relpath(digest))

    def iter_blobs(self) -> Iterator[BlobInfo]:
        """Every stored blob with its size and modification time (used by gc and verify)."""
        for rel, info in sorted(self.root.find(BLOBS).items()):
            parts = rel.split("/")
            if len(parts) != 3 or len(parts[1]) != 2:
                continue
            digest = parts[1] + parts[2]
            if len(digest) != 64:
                continue
            yield BlobInfo(digest, int(info.get("size") or 0), _mtime(info))

    def iter_digests(self) -> Iterator[str]:
        for b in self.iter_blobs():
            yield b.digest

    def clean_tmp(self, older_than: float) -> int:
        """Remove leftovers of killed local puts older than ``older_than`` seconds; returns a count."""
        if not self.root.is_local:
            return 0
        d = Path(self.root.local(TMP))
        n = 0
        now = time.time()
        for p in d.glob("*") if d.is_dir() else []:
            with contextlib.suppress(FileNotFoundError):
                if now - p.stat().st_mtime > older_than:
                    p.unlink()
                    n += 1
        return n


class Relay(Callback):
    """Forwards byte progress of one transfer into a shared callback without resetting its size.

    Several transfers run in threads at once and ``Callback.relative_update`` is a read-modify-write,
    so updates are serialised (otherwise progress would lose bytes).
    """

    # re-entrant: a Relay may forward into another Relay (nested transfers)
    _lock = threading.RLock()

    def __init__(self, parent: Callback | None) -> None:
        super().__init__()
        self._parent = _as_callback(parent)

    def set_size(self, size: int | None) -> None:
        pass

    def relative_update(self, inc: int = 1) -> None:
        with Relay._lock:
            self._parent.relative_update(inc)

    def absolute_update(self, value: int) -> None:
        pass

    def call(self, *args: Any, **kwargs: Any) -> None:
        pass


class _Tally(Callback):
    """Passes progress through to ``inner`` and counts the bytes reported."""

    def __init__(self, inner: Callback) -> None:
        super().__init__()
        self._inner = inner
        self.n = 0

    def set_size(self, size: int | None) -> None:
        self._inner.set_size(size)

    def relative_update(self, inc: int = 1) -> None:
        self.n += inc
        self._inner.relative_update(inc)

    def call(self, *args: Any, **kwargs: Any) -> None:
        pass


def _copy_hashing(src: BinaryIO, dst: BinaryIO, cb: Callback) -> tuple[str, int]:
    """Copy ``src`` to ``dst`` in fixed chunks, hashing the same bytes on the way (one pass).

    From the second chunk on, each chunk's write runs in a helper thread while the chunk is hashed
    (BLAKE3 and ``write`` both release the GIL), so a large copy costs about max(write, hash) rather than
    their sum. Hashed and written bytes are the same private buffer, so the digest always names exactly
    what was written, however the source changes meanwhile. Memory stays at ``_NBUF`` chunks.
    """
    h = Hasher()
    bufs: list[bytearray] = []  # allocated on demand: small inputs need none (see below)
    pending: list[Future[None] | None] = [None] * _NBUF
    pool: ThreadPoolExecutor | None = None
    readinto = getattr(src, "readinto", None)
    i = n = 0
    failed: list[BaseException] = []

    def write(chunk: bytes | memoryview) -> None:
        if failed:  # an earlier chunk failed: write nothing after the hole
            return
        try:
            _write_all(dst, chunk)
        except BaseException as e:
            failed.append(e)
            raise

    def drain() -> BaseException | None:
        """Wait for every write still in flight; the first error, if any."""
        first = None
        for j, fut in enumerate(pending):
            if fut is not None:
                pending[j] = None
                try:
                    fut.result()
                except BaseException as e:  # noqa: BLE001 - the caller decides
                    first = first or e
        if pool is not None:
            pool.shutdown(wait=True)
        return first

    try:
        while True:
            k = i % _NBUF
            if failed:
                raise failed[0]
            if pending[k] is not None:
                pending[k].result()  # that buffer's write is done (or raises here)
                pending[k] = None
            if i == 0 or readinto is None or n < CHUNK_SIZE:
                # until a full chunk came in, read into a bytes object of its own size: zero-filling
                # chunk-sized buffers would cost a small file more than copying it
                chunk: bytes | memoryview = src.read(CHUNK_SIZE) or b""
                n = len(chunk)
            else:
                if k >= len(bufs):
                    bufs.extend(bytearray(CHUNK_SIZE) for _ in range(k + 1 - len(bufs)))
                n = readinto(bufs[k]) or 0
                chunk = memoryview(bufs[k])[:n]
            if not n:
                break
            if i == 0:  # small inputs (one chunk) never start a thread
                _write_all(dst, chunk)
            else:
                if pool is None:
                    pool = ThreadPoolExecutor(1, thread_name_prefix="blob-write")
                pending[k] = pool.submit(write, chunk)
            h.update(chunk)
            cb.relative_update(n)
            i += 1
    except BaseException:
        drain()  # never let the caller close or unlink ``dst`` while a write into it still runs
        raise
    error = drain()
    if error is not None:
        raise error
    return h.hexdigest(), h.size


def _write_all(dst: BinaryIO, data: bytes | bytearray | memoryview) -> None:
    """Write every byte: a raw (unbuffered) file may write fewer than asked (Linux caps one write
    at about 2 GiB), which would silently truncate a blob."""
    view = memoryview(data).cast("B")
    total = view.nbytes
    done = 0
    while done < total:
        n = dst.write(view[done:])
        if n is None:  # a raw file in non-blocking mode (buffered files return the full length)
            raise BlockingIOError("non-blocking destination would block")
        done += n


def _source_path(path: str | os.PathLike[str]) -> str:
    p = os.fspath(path)
    if not os.path.exists(p):
        raise NotFoundError(f"no such file: {p}")
    if os.path.isdir(p):
        raise InvalidPathError(f"{p} is a directory, expected a file (use add_dir for directories)")
    return os.path.abspath(p)


def _mtime(info: dict[str, Any]) -> float | None:
    for key in ("mtime", "LastModified", "last_modified", "created"):
        v = info.get(key)
        if v is None:
            continue
        if hasattr(v, "timestamp"):
            return float(v.timestamp())
        with contextlib.suppress(TypeError, ValueError):
            return float(v)
    return None
