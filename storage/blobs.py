"""Content-addressed blobs: ``<root>/blobs/ab/cdef...`` named by their BLAKE3 digest.

A put hashes while it streams (one pass), writes under a temporary name and only then makes the blob
visible under its digest, so a reader (or a crash) never sees a partial blob. Content that already exists
is not written again. Reads verify the digest by default.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from fsspec.callbacks import Callback, NoOpCallback

from .backend import Root, backend_errors
from .errors import (
    BackendError,
    ConflictError,
    IntegrityError,
    InvalidPathError,
    NotFoundError,
    disk_full_errors,
)
from .hashing import CHUNK_SIZE, check_digest, hash_bytes, hash_file
from .quarantine import missing_error, set_aside
from .statcache import StatCache, StatKey, stat_key
from .streams import (
    RangeReader,
    Relay,
    Tally,
    VerifyingReader,
    as_callback,
    copy_file_hashing,
    copy_hashing,
    write_all,
)
from .trash import restore
from .upload import SINGLE_PUT_MAX, SourceChangedError, read_whole, upload_parts

__all__ = ["BlobInfo", "BlobStore", "PutResult", "Relay"]

BLOBS = "blobs"
TMP = "tmp"
#: On S3, a dedup hit on a blob older than this many seconds refreshes its LastModified (see BlobStore).
FRESHEN_AFTER = 3600.0
#: On S3, content up to this size is PUT straight away with If-None-Match (one request; HTTP 412 if the
#: blob exists) instead of a HEAD first and then a PUT: below about a round trip's worth of bytes,
#: re-sending them costs less than asking first.
PUT_FIRST_MAX = 1024 * 1024
#: On a non-local root, a file range up to this size is read into memory for its put; larger ones spool.
RANGE_IN_MEMORY = 64 * 1024 * 1024


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
        self._dirs: set[str] = set()

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

    def digest_files(
        self,
        paths: Sequence[str | os.PathLike[str]],
        keys: Sequence[StatKey | None] | None = None,
    ) -> dict[str, str]:
        """Digests of many local files, absolute path -> digest, without storing anything: the stat
        cache answers in one query, the rest are hashed on a small pool (and remembered)."""
        from .batch import hash_many, local_sources

        return hash_many(self, local_sources(paths, keys))

    # -- put -------------------------------------------------------------------------------------
    def put_file(
        self, path: str | os.PathLike[str], *, callback: Callback | None = None, attempts: int = 3
    ) -> PutResult:
        """Store a local file. Unchanged files known to the stat cache are not even read.

        A file that changes while it is read (its size or times differ afterwards) is stored again, up
        to ``attempts`` times, then refused with `SourceChangedError`: a version never records a torn
        mix of two saves. Whatever was stored meanwhile names its own bytes (see `storage.upload`).
        """
        path = _source_path(path)
        cb = as_callback(callback)
        for _ in range(attempts):
            st = os.stat(path)
            known = self.stat_cache.lookup(path, st) if self.stat_cache is not None else None
            if known is not None and self._freshen(known, st.st_size):
                cb.relative_update(st.st_size)
                return PutResult(known, st.st_size, False)
            try:
                if self.root.is_local:
                    result = self._put_local_stream(path, cb)
                else:
                    result = self._put_remote_file(path, st.st_size, known, cb)
            except SourceChangedError:
                continue
            if stat_key(os.stat(path)) != stat_key(st):
                continue
            if self.stat_cache is not None:
                self.stat_cache.store(path, st, result.digest)
            return result
        raise SourceChangedError(
            f"{path} kept changing while it was being stored ({attempts} tries); nothing was "
            "recorded for it: store it again once it is no longer being written"
        )

    def _put_remote_file(self, path: str, size: int, known: str | None, cb: Callback) -> PutResult:
        """Store a local file on a non-local root; the bytes sent are the bytes hashed (see
        `storage.upload`). Small files are read once into memory; large ones are hashed first (for the
        dedup lookup) and then sent as a multipart upload that completes only if it hashes alike."""
        if size <= SINGLE_PUT_MAX or self.root.is_memory:
            data = read_whole(path, size)
            digest = hash_bytes(data)
            rel = self.relpath(digest)

            def send(progress: Callback) -> None:
                self.root.create_exclusive(rel, data)
                progress.relative_update(len(data))

            return self._put_remote(digest, len(data), send, cb, absent=known is not None)
        digest, size = (known, size) if known is not None else self.hash_local_file(path)

        def upload(progress: Callback) -> None:
            with backend_errors(f"upload {path}", self.root.url):
                upload_parts(
                    self.root.fs, self.root.full(self.relpath(digest)), path, digest, progress
                )

        return self._put_remote(digest, size, upload, cb)

    def _upload_file(
        self, path: str, digest: str, size: int, cb: Callback, *, absent: bool = False
    ) -> PutResult:
        """Upload a private local file (a spool nobody else writes) whose digest is known."""

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
        if not put_first and self._freshen(digest, size):
            cb.relative_update(size)
            return PutResult(digest, size, False)
        tally = Tally(cb)
        try:
            upload(tally)
            return PutResult(digest, size, True)
        except ConflictError:
            pass
        # Stored already (or by a concurrent writer): freshen it for gc like any dedup hit. If gc swept it
        # between our PUT and now, store it after all.
        if put_first and not self._freshen(digest, size):
            try:
                upload(Tally(NoOpCallback()))
                cb.relative_update(size - tally.n)
                return PutResult(digest, size, True)
            except ConflictError:
                pass
        cb.relative_update(size - tally.n)
        return PutResult(digest, size, False)

    def put_bytes(
        self, data: bytes | bytearray | memoryview, *, digest: str | None = None
    ) -> PutResult:
        """Store an in-memory buffer (hashed without copying, locally).

        Elsewhere a mutable buffer is copied once to be sent, and the copy is what is hashed: the bytes
        sent are the bytes hashed even if the caller's buffer changes meanwhile.

        ``digest``: the caller's digest of these very bytes (a quota check hashed them before any
        upload), so they are not hashed twice; it is used locally and for immutable ``bytes`` only.
        """
        if digest is not None:
            check_digest(digest)
        if not self.root.is_local:
            if isinstance(data, bytes) and digest is not None:
                payload = data
            else:
                payload = data if isinstance(data, bytes) else bytes(memoryview(data).cast("B"))
                digest = hash_bytes(payload)

            def upload(_: Callback) -> None:
                self.root.create_exclusive(self.relpath(digest), payload)  # type: ignore[arg-type]

            return self._put_remote(digest, len(payload), upload, NoOpCallback())
        view = memoryview(data).cast("B") if not isinstance(data, bytes) else data
        digest = digest if digest is not None else hash_bytes(view)
        size = len(view)
        rel = self.relpath(digest)
        if self._freshen(digest, size):
            return PutResult(digest, size, False)
        tmp = self._local_tmp()
        try:
            with disk_full_errors(f"store blob {digest}", self.root.url):
                with open(tmp, "wb", buffering=0) as f:
                    write_all(f, view)
                    if self.fsync:
                        os.fsync(f.fileno())
                written = self._publish_local(tmp, self.root.local(rel), size)
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
        cb = as_callback(callback)
        if self.root.is_local:
            return self._put_local_stream(f, cb)
        with tempfile.NamedTemporaryFile(prefix="artifacts-spool-", delete=False) as spool:
            try:
                digest, size = copy_hashing(f, spool, cb)  # type: ignore[arg-type]
                spool.close()
                # the spool was hashed on the way in; upload it under that digest without re-reading it
                return self._upload_file(spool.name, digest, size, NoOpCallback())
            finally:
                os.unlink(spool.name)

    def put_range(
        self,
        path: str | os.PathLike[str],
        offset: int,
        length: int,
        *,
        callback: Callback | None = None,
    ) -> PutResult:
        """Store ``length`` bytes of a local file from ``offset`` on (one tensor of a .safetensors file).

        Locally the kernel copies the range and the copy is hashed as read back; elsewhere the range is
        read once into memory (or spooled, when large) and the bytes sent are the bytes hashed.
        """
        path = _source_path(path)
        cb = as_callback(callback)
        with open(path, "rb", buffering=0) as f:
            if self.root.is_local:
                return self._put_local_range(f, offset, length, cb)
            if length <= RANGE_IN_MEMORY:
                data = bytearray(length)
                if RangeReader(f.fileno(), offset, length).readinto(data) != length:
                    raise OSError(errno.EIO, f"{path} ended before {offset + length}")
                result = self.put_bytes(data)
                cb.relative_update(length)
                return result
            return self.put_stream(RangeReader(f.fileno(), offset, length), callback=cb)  # type: ignore[arg-type]

    def _put_local_range(self, f: BinaryIO, offset: int, length: int, cb: Callback) -> PutResult:
        def write(out: BinaryIO) -> tuple[str, int]:
            got = copy_file_hashing(f.fileno(), out.fileno(), cb, src_offset=offset, length=length)
            if got is None:
                reader = io.BufferedReader(RangeReader(f.fileno(), offset, length), CHUNK_SIZE)
                got = copy_hashing(reader, out, cb)
            if got[1] != length:
                raise OSError(errno.EIO, f"read {got[1]} of {length} bytes at {offset}")
            return got

        return self._put_local_via_tmp(write)

    def _put_local_via_tmp(self, write: Callable[[BinaryIO], tuple[str, int]]) -> PutResult:
        """Write a new blob into a temp file with ``write`` (returns digest, size), then publish it."""
        tmp = self._local_tmp()
        try:
            with disk_full_errors("store a blob", self.root.url):
                with open(tmp, "w+b", buffering=0) as out:
                    digest, size = write(out)
                    if self.fsync:
                        os.fsync(out.fileno())
                written = self._publish_local(tmp, self.root.local(self.relpath(digest)), size)
            return PutResult(digest, size, written)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def hash_range(self, path: str | os.PathLike[str], offset: int, length: int) -> str:
        """The digest of ``length`` bytes of a local file from ``offset`` (for quota prechecks)."""
        with open(_source_path(path), "rb", buffering=0) as f:
            reader = io.BufferedReader(RangeReader(f.fileno(), offset, length), CHUNK_SIZE)
            digest, size = hash_file(reader)
        if size != length:
            raise OSError(errno.EIO, f"{path} ended before {offset + length}")
        return digest

    def put_files(
        self,
        paths: Iterable[str | os.PathLike[str]],
        *,
        callback: Callback | None = None,
        max_workers: int | None = None,
        keys: Sequence[StatKey | None] | None = None,
    ) -> list[PutResult]:
        """Store many local files as one batch (see `storage.batch`); results in the order given.

        Every path is checked (one ``stat``) before anything is stored; ``keys`` are stat keys the
        caller's own walk already took (None where it has none), so those files are not stat-ed again
        (such paths must be absolute). Progress counts bytes; this call sets ``callback``'s total.
        """
        from .batch import local_sources, put_many

        sources = local_sources(paths, keys)
        cb = as_callback(callback)
        cb.set_size(sum(s.size for s in sources))
        return put_many(self, sources, cb, max_workers=max_workers)

    def _map(
        self, fn: Callable[[Any], Any], items: list[Any], max_workers: int | None
    ) -> list[Any]:
        workers = min(max_workers or self.max_workers, max(1, len(items)))
        if workers == 1:
            return [fn(i) for i in items]
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(fn, items))

    def _ensure_dir(self, d: str) -> None:
        """``makedirs`` once per directory and process: a checkpoint puts many blobs, and the failing
        ``mkdir`` calls of ``exist_ok`` cost more than writing its small tensors."""
        if d not in self._dirs:
            os.makedirs(d, exist_ok=True)
            self._dirs.add(d)

    def _local_tmp(self) -> str:
        d = self.root.local(TMP)
        self._ensure_dir(d)
        return os.path.join(d, f"{os.getpid()}-{uuid.uuid4().hex}")

    def _publish_local(self, tmp: str, target: str, size: int) -> bool:
        """Make ``tmp`` visible as ``target`` atomically; if it already exists keep the existing one,
        unless that one has the wrong size (a damaged blob never satisfies dedup: ours replaces it)."""
        self._ensure_dir(os.path.dirname(target))
        try:
            os.link(tmp, target)
            written = True
        except FileExistsError:
            written = False
            state = self._freshen_local(target, size)
            if state is None:  # swept by gc just now: publish ours after all
                return self._publish_local(tmp, target, size)
            if not state:
                os.replace(tmp, target)
                return True
        except OSError:  # filesystems without hard links: rename is atomic too
            if self._freshen_local(target, size):
                written = False
            else:
                os.replace(tmp, target)
                return True
        os.unlink(tmp)
        return written

    def _put_local_stream(self, src: str | BinaryIO, cb: Callback) -> PutResult:
        def write(out: BinaryIO) -> tuple[str, int]:
            if not isinstance(src, str):
                return copy_hashing(src, out, cb)
            with open(src, "rb", buffering=0) as f:
                got = copy_file_hashing(f.fileno(), out.fileno(), cb)
                return got if got is not None else copy_hashing(f, out, cb)

        return self._put_local_via_tmp(write)

    def _freshen(self, digest: str, size: int | None = None) -> bool:
        """True if the blob is stored; on a hit also refresh its modification time for gc (see class).

        With ``size``, a stored blob of another size is damaged: it is removed (the caller then stores
        the content again) rather than deduplicated onto.
        """
        rel = self.relpath(digest)
        if self.root.is_local:
            path = self.root.local(rel)
            state = self._freshen_local(path, size)
            if state is False:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            return bool(state)
        info = self.root.head(rel)
        if info is None:
            return False
        if size is not None and info.get("size") is not None and int(info["size"]) != size:
            self.root.delete(rel)
            return False
        if self.root.is_memory:
            return True
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
    def _freshen_local(path: str, size: int | None = None) -> bool | None:
        """Refresh a local blob's mtime: True if it is there (with ``size``, if given), False if it has
        another size, None if it is missing."""
        try:
            if size is not None and os.stat(path).st_size != size:
                return False
            os.utime(path)
        except FileNotFoundError:
            return None
        except PermissionError:  # another user's blob on a shared disk
            return True if os.path.exists(path) else None
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
            if self._restored(digest):
                return self.size(digest)
            raise missing_error(self.root, digest) from None

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
                    raw = open(self.root.local(rel), "rb")  # type: ignore[assignment]  # noqa: SIM115 - returned to the caller
                else:
                    raw = self.root.fs.open(self.root.full(rel), "rb")
        except NotFoundError:
            if self._restored(digest):
                return self.open(digest, verify=verify)
            raise missing_error(self.root, digest) from None
        if not verify:
            return raw
        return io.BufferedReader(VerifyingReader(raw, digest, self.root.url), CHUNK_SIZE)

    def read_bytes(self, digest: str, *, verify: bool = True) -> bytes:
        rel = self.relpath(digest)
        try:
            data = self.root.read(rel)
        except NotFoundError:
            if self._restored(digest):
                return self.read_bytes(digest, verify=verify)
            raise missing_error(self.root, digest) from None
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
        cb = as_callback(callback)
        parent = os.path.dirname(os.path.abspath(dest))
        os.makedirs(parent, exist_ok=True)
        tmp = os.path.join(parent, f".{os.path.basename(dest)}.tmp-{uuid.uuid4().hex[:12]}")
        try:
            if self.root.is_local:
                try:
                    f = open(self.root.local(self.relpath(digest)), "rb", buffering=0)  # noqa: SIM115
                except FileNotFoundError:
                    raise missing_error(self.root, digest) from None
                with f, open(tmp, "w+b", buffering=0) as out:
                    got = copy_file_hashing(f.fileno(), out.fileno(), cb)
                    actual, _ = got if got is not None else copy_hashing(f, out, cb)
            elif self.root.is_memory:
                with self.open(digest, verify=False) as f, open(tmp, "wb", buffering=0) as out:  # type: ignore[assignment]
                    actual, _ = copy_hashing(f, out, cb)
            else:
                for attempt in range(2):
                    try:
                        with backend_errors(f"download blob {digest}", self.root.url):
                            self.root.fs.get_file(
                                self.root.full(self.relpath(digest)), tmp, callback=cb
                            )
                        break
                    except NotFoundError:
                        if attempt or not self._restored(digest):
                            raise missing_error(self.root, digest) from None
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
        cb = as_callback(callback)
        self._map(
            lambda p: self.get_file(p[0], p[1], verify=verify, callback=Relay(cb)),
            pairs,
            max_workers,
        )

    def verify_blob(self, digest: str, *, set_aside_bad: bool = False) -> bool:
        """True if the stored bytes hash to ``digest`` (re-reads the whole blob).

        With ``set_aside_bad`` a blob that fails (twice: a flaky read is not damage) is moved out of
        ``blobs/`` so it never satisfies dedup (see `storage.quarantine`).
        """
        for _ in range(2 if set_aside_bad else 1):
            with self.open(digest, verify=False) as f:
                actual, _ = hash_file(f)
            if actual == digest:
                return True
        if set_aside_bad:
            self.set_aside(digest)
        return False

    def _restored(self, digest: str) -> bool:
        """A blob missed on a remote root may sit in gc's trash: put it back (see `storage.trash`)."""
        return not self.root.is_local and restore(self.root, self.relpath(digest), digest)

    def set_aside(self, digest: str) -> None:
        """Move a blob known to be damaged out of the way of dedup (see `storage.quarantine`)."""
        set_aside(self.root, self.relpath(digest), digest)

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
