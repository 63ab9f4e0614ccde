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
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from . import _download, _localput, sweep, written
from .backend import Root, mtime_of
from .errors import IntegrityError, InvalidPathError, NotFoundError
from .hashing import CHUNK_SIZE, DIGEST_RE, check_digest, hash_bytes, hash_file
from .quarantine import missing_error, set_aside
from .statcache import StatCache, StatKey, stat_key
from .streams import RangeReader, VerifyingReader, copy_hashing
from .trash import restore
from .upload import SourceChangedError
from .values import BlobInfo, LocalBlob, PutResult

if TYPE_CHECKING:
    from fsspec.callbacks import Callback

__all__ = ["BLOBS", "FRESHEN_AFTER", "TMP", "BlobStore"]


def as_callback(cb: Callback | None) -> Callback:
    """`storage.progress.as_callback`, imported on first use: fsspec loads only once a put or a
    get runs (a command that moves no bytes never pays for it)."""
    from .progress import as_callback as real

    return real(cb)


def _relay(cb: Callback) -> Callback:
    from .progress import Relay

    return Relay(cb)

BLOBS = "blobs"
_EMPTY = hash_bytes(b"")  # the digest of no bytes: an empty entry needs no read
TMP = "tmp"
#: On S3, a dedup hit on a blob older than this many seconds refreshes its LastModified (see BlobStore).
FRESHEN_AFTER = 3600.0
#: On a non-local root, a file range up to this size is read into memory for its put; larger ones spool.
RANGE_IN_MEMORY = 64 * 1024 * 1024


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
        self._made: set[str] = set()  # blob directories this process created (`put_local_small`)

    # -- naming ----------------------------------------------------------------------------------
    @staticmethod
    def relpath(digest: str) -> str:
        check_digest(digest)
        return f"{BLOBS}/{digest[:2]}/{digest[2:]}"

    def local_path(self, digest: str) -> Path | None:
        """The blob's OS path when the store is on local disk (for memory-mapping), else None."""
        if not self.root.os_paths:
            return None
        return Path(self.root.local(self.relpath(digest)))

    def local_blob(self, digest: str) -> LocalBlob | None:
        """The blob as a local file to memory-map, or None when the root has no OS paths.

        ``trusted`` says whether it may be used without hashing it again: it was hashed on this
        machine before and is unchanged since (size, mtime, ctime, inode: the stat cache's rule for
        every local file), or this process wrote it from bytes it hashed (`storage.written`). A missing blob raises `NotFoundError`. After hashing an untrusted one,
        `trust` it so the next read is a stat.
        """
        path = self.local_path(digest)
        if path is None:
            return None
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise missing_error(self.root, digest) from None
        cache = self.stat_cache
        trusted = written.vouches(str(path), st) or (
            cache is not None and cache.lookup(str(path), st) == digest
        )
        return LocalBlob(digest, path, st.st_size, trusted, st)

    def trust(self, blob: LocalBlob) -> None:
        """Record that ``blob`` was hashed and matched its digest (see `local_blob`)."""
        if self.stat_cache is not None:
            self.stat_cache.store(str(blob.path), blob.stat, blob.digest)

    @property
    def concurrency(self) -> int:
        """How many puts of files or ranges at once pay off: a round trip each on a remote root,
        two on a disk (the kernel copies; more threads only contend)."""
        return 2 if self.root.os_paths else self.max_workers

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
                if self.root.os_paths:
                    result = _localput.put_local_stream(self, path, cb)
                else:
                    from . import _remoteput  # S3 and memory roots only (fsspec loaded)

                    result = _remoteput.put_remote_file(self, path, st.st_size, known, cb)
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
        if self.root.os_paths:
            return _localput.put_local_bytes(self, data, digest)
        from . import _remoteput  # S3 and memory roots only (fsspec loaded)

        return _remoteput.put_remote_bytes(self, data, digest)

    def put_bytes_many(
        self, datas: Sequence[bytes], *, callback: Callback | None = None
    ) -> list[PutResult]:
        """Store many small buffers; results in the order given. Each is hashed here (the digest
        names the bytes sent).

        On a remote root each is one exclusive create and they go concurrently on the filesystem's
        event loop (a thread per blob costs more than the request on a fast endpoint); content that
        is stored already is then handled as `put_bytes` handles it (freshened for gc, or stored
        after all if gc swept it meanwhile). Elsewhere this is `put_bytes` in a loop.
        """
        cb = as_callback(callback)
        if self.root.os_paths or not self.root.remote:
            out = []
            for d in datas:
                out.append(self.put_bytes(d))
                cb.relative_update(len(d))
            return out
        digests = [hash_bytes(d) for d in datas]
        created = self.root.create_many(
            [(self.relpath(g), d) for g, d in zip(digests, datas, strict=True)]
        )
        results = []
        for d, g, new in zip(datas, digests, created, strict=True):
            if new:
                results.append(PutResult(g, len(d), True))
            elif self._freshen(g, len(d)):  # stored already: a dedup hit, as `put_remote` takes it
                results.append(PutResult(g, len(d), False))
            else:  # swept by gc since the create found it: store it after all
                results.append(self.put_bytes(d, digest=g))
            cb.relative_update(len(d))
        return results

    def put_stream(self, f: BinaryIO, *, callback: Callback | None = None) -> PutResult:
        """Store whatever a binary stream yields, in bounded memory.

        Local: one pass into a temp file. Elsewhere the digest must be known before the upload names the
        object, so the stream is spooled to a local temp file while hashing, then uploaded.
        """
        cb = as_callback(callback)
        if self.root.os_paths:
            return _localput.put_local_stream(self, f, cb)
        with tempfile.NamedTemporaryFile(prefix="artifacts-spool-", delete=False) as spool:
            try:
                digest, size = copy_hashing(f, spool, cb)  # type: ignore[arg-type]
                spool.close()
                # the spool was hashed on the way in; upload it under that digest without re-reading it
                from . import _remoteput  # S3 and memory roots only (fsspec loaded)

                return _remoteput.upload_spool(self, spool.name, digest, size, as_callback(None))
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
            if self.root.os_paths:
                return _localput.put_local_range(self, f, offset, length, cb)
            if length <= RANGE_IN_MEMORY:
                data = bytearray(length)
                if RangeReader(f.fileno(), offset, length).readinto(data) != length:
                    raise OSError(errno.EIO, f"{path} ended before {offset + length}")
                result = self.put_bytes(data)
                cb.relative_update(length)
                return result
            return self.put_stream(RangeReader(f.fileno(), offset, length), callback=cb)  # type: ignore[arg-type]

    def put_many_bytes(
        self,
        datas: Sequence[bytes | bytearray | memoryview],
        *,
        digests: Sequence[str | None] | None = None,
        callback: Callback | None = None,
        stored: Callable[[int], None] | None = None,
    ) -> list[PutResult]:
        """Store many in-memory buffers (tensors); results in order. Concurrent where each put is a
        round trip; on a local disk written one after another while a helper thread hashes them
        (see `storage._bufput`). ``digests``: the caller's digests of these very buffers (see
        `put_bytes`), None where it has none. ``stored(i)`` is called once buffer ``i``'s blob is
        stored and nothing here reads that buffer any more (as each blob is published: not
        necessarily in order): a caller that owns a private copy frees it there, so a checkpoint's copy
        shrinks while it is written instead of being held whole until the end."""
        cb = as_callback(callback)
        known = list(digests) if digests is not None else [None] * len(datas)
        if self.root.os_paths:
            from ._bufput import put_local_many_bytes

            return put_local_many_bytes(self, datas, known, cb, stored)

        def put(i: int) -> PutResult:
            r = self.put_bytes(datas[i], digest=known[i])
            cb.relative_update(r.size)
            if stored is not None:
                stored(i)
            return r

        return self._map(put, list(range(len(datas))), min(16, self.max_workers))

    def put_ranges(
        self,
        ranges: Sequence[tuple[str | os.PathLike[str], int, int]],
        *,
        callback: Callback | None = None,
    ) -> list[PutResult]:
        """Store many (path, offset, length) ranges of local files; results in order."""
        cb = as_callback(callback)
        return self._map(
            lambda r: self.put_range(r[0], r[1], r[2], callback=_relay(cb)),
            list(ranges),
            self.concurrency,
        )

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
        known: dict[str, str] | None = None,
    ) -> list[PutResult]:
        """Store many local files as one batch (see `storage.batch`); results in the order given.

        Every path is checked (one ``stat``) before anything is stored; ``keys`` are stat keys the
        caller's own walk already took (None where it has none), so those files are not stat-ed again
        (such paths must be absolute). ``known``: what the stat cache answered for these very paths
        and keys (path -> digest), when the caller already asked it. Progress counts bytes; this call
        sets ``callback``'s total.
        """
        from .batch import local_sources, put_many

        sources = local_sources(paths, keys)
        cb = as_callback(callback)
        cb.set_size(sum(s.size for s in sources))
        return put_many(self, sources, cb, max_workers=max_workers, known=known)

    def _map(
        self, fn: Callable[[Any], Any], items: list[Any], max_workers: int | None
    ) -> list[Any]:
        workers = min(max_workers or self.max_workers, max(1, len(items)))
        if workers == 1:
            return [fn(i) for i in items]
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(fn, items))

    def _freshen(self, digest: str, size: int | None = None) -> bool:
        """True if the blob is stored; on a hit also refresh its modification time for gc (see class).

        With ``size``, a stored blob of another size is damaged: it is removed (the caller then stores
        the content again) rather than deduplicated onto.
        """
        rel = self.relpath(digest)
        if self.root.os_paths:
            path = self.root.local(rel)
            state = _localput.freshen_local(path, size)
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
        mtime = mtime_of(info)
        if mtime is None or time.time() - mtime >= self.freshen_after:
            return self.root.touch(rel)  # False: swept meanwhile, upload it again
        return True

    # -- get -------------------------------------------------------------------------------------
    def exists(self, digest: str) -> bool:
        return self.root.exists(self.relpath(digest))

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
            raw: BinaryIO = self.root.open_read(rel)  # type: ignore[assignment]
        except NotFoundError:
            if self._restored(digest):
                return self.open(digest, verify=verify)
            raise missing_error(self.root, digest) from None
        if not verify:
            return raw
        return io.BufferedReader(VerifyingReader(raw, digest, self.root.url), CHUNK_SIZE)

    def read_bytes(self, digest: str, *, verify: bool = True, size: int | None = None) -> bytes:
        """The blob's bytes. With ``size`` (what a manifest entry says it holds) at most ``size + 1``
        bytes are read, one ranged GET on S3: a manifest that names a 10 GB blob as a 4-byte entry gets
        an `IntegrityError`, not a 10 GB buffer."""
        if size is not None:
            return self._read_sized(digest, size, verify)
        rel = self.relpath(digest)
        try:
            data = self.root.read(rel)
        except NotFoundError:
            if self._restored(digest):
                return self.read_bytes(digest, verify=verify)
            raise missing_error(self.root, digest) from None
        if verify:
            self._check_content(digest, data)
        return data

    def _read_sized(self, digest: str, size: int, verify: bool) -> bytes:
        if size == 0:  # no ranged read of an empty object (S3 answers 416): its digest says it all
            self._check_empty(digest)
            return b""
        data = self.read_range(digest, 0, size + 1)
        self._check_held(digest, size, len(data))
        if verify:
            self._check_content(digest, data)
        return data

    def read_into(
        self, digest: str, buf: bytearray | memoryview, *, verify: bool = True
    ) -> None:
        """Fill ``buf`` with the blob, which must hold exactly ``len(buf)`` bytes (what a manifest
        entry says): as `read_bytes` with ``size``, at most one byte more is read, but the bytes land
        in ``buf`` as they arrive (on S3), so a restored tensor costs no whole-blob copy on the way;
        with ``verify`` they are hashed there. `IntegrityError` on another size or content."""
        view = memoryview(buf).cast("B")
        if not view:
            self._check_empty(digest)
            return
        rel = self.relpath(digest)
        try:
            held = self.root.read_range_into(rel, 0, view)
        except NotFoundError:
            if self._restored(digest):
                return self.read_into(digest, view, verify=verify)
            raise missing_error(self.root, digest) from None
        self._check_held(digest, len(view), held)
        if verify:
            self._check_content(digest, view)

    def _check_held(self, digest: str, size: int, held: int) -> None:
        """`IntegrityError` unless a sized read (at most ``size + 1`` bytes) found ``size``."""
        if held != size:
            what = f"more than {size}" if held > size else str(held)
            raise IntegrityError(
                f"blob {digest} holds {what} bytes, not the {size} its manifest entry says "
                f"({self.root.url}); verify the store"
            )

    def _check_empty(self, digest: str) -> None:
        if digest != _EMPTY:
            raise IntegrityError(f"blob {digest} is named as empty but is not ({self.root.url})")

    def _check_content(self, digest: str, data: bytes | memoryview) -> None:
        actual = hash_bytes(data)
        if actual != digest:
            raise IntegrityError(
                f"blob {digest} is corrupt: its content hashes to {actual} ({self.root.url}); "
                "verify the store"
            )

    def read_range(self, digest: str, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` (exclusive) of a blob, unverified (a part cannot be hashed)."""
        try:
            return self.root.read_range(self.relpath(digest), start, end)
        except NotFoundError:
            if self._restored(digest):
                return self.read_range(digest, start, end)
            raise missing_error(self.root, digest) from None

    def read_many(self, digests: Sequence[str]) -> dict[str, bytes]:
        """Many small blobs at once (concurrently on a remote root), unverified; missing ones are
        left out."""
        rels = {self.relpath(d): d for d in digests}
        return {rels[r]: data for r, data in self.root.read_many(list(rels)).items()}

    def get_file(
        self,
        digest: str,
        dest: str | os.PathLike[str],
        *,
        verify: bool = True,
        callback: Callback | None = None,
    ) -> None:
        """Write the blob to ``dest`` via a temp file beside it; ``dest`` appears only if verified."""
        _download.get_file(self, digest, dest, verify=verify, callback=callback)

    def get_files(
        self,
        pairs: Iterable[tuple[str, str | os.PathLike[str]]],
        *,
        verify: bool = True,
        callback: Callback | None = None,
        max_workers: int | None = None,
    ) -> None:
        """Download many blobs: ``pairs`` of (digest, destination path). From a local store as one
        batch (see `storage._getmany`); elsewhere concurrently, a round trip each."""
        pairs = list(pairs)
        cb = as_callback(callback)
        if self.root.os_paths:
            from ._getmany import get_many_local

            local = [(d, os.path.abspath(os.fspath(p))) for d, p in pairs]
            get_many_local(self, local, cb, verify=verify, max_workers=max_workers)
            return
        self._map(
            lambda p: self.get_file(p[0], p[1], verify=verify, callback=_relay(cb)),
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
        return not self.root.os_paths and restore(self.root, self.relpath(digest), digest)

    def set_aside(self, digest: str) -> None:
        """Move a blob known to be damaged out of the way of dedup (see `storage.quarantine`)."""
        set_aside(self.root, self.relpath(digest), digest)

    # -- listing and deletion --------------------------------------------------------------------
    def delete(self, digest: str) -> None:
        self.root.delete(self.relpath(digest))

    def iter_blobs(self) -> Iterator[BlobInfo]:
        """Every stored blob with its size and modification time (used by gc and verify)."""
        for rel, info in sorted(self.root.find(BLOBS).items()):
            digest = _blob_digest(rel)
            if digest is not None:  # anything else is a stray name (`stray_names`): never a blob
                yield BlobInfo(digest, int(info.get("size") or 0), mtime_of(info))

    def stray_names(self) -> list[str]:
        """Objects under ``blobs/`` that are not named as a blob (``blobs/AB/CCC...``, a short name):
        nothing refers to them, gc never deletes them, verify names them for a person to remove."""
        return sorted(rel for rel in self.root.find(BLOBS) if _blob_digest(rel) is None)

    def iter_digests(self) -> Iterator[str]:
        for b in self.iter_blobs():
            yield b.digest

    def clean_tmp(self, older_than: float) -> int:
        """Remove leftovers of killed local puts older than ``older_than`` seconds; returns a count."""
        if not self.root.os_paths:
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


    # -- gc (see `storage.sweep`) ----------------------------------------------------------------
    @property
    def tmp_dir(self) -> str:
        """Where local puts write before publishing (and gc quarantines), relative to the root."""
        return TMP

    def older(self, mtime: float | None, cutoff: float) -> bool:
        """True if a blob modified at ``mtime`` is older than ``cutoff``, allowing for the backend's
        timestamp resolution."""
        return sweep.older(self, mtime, cutoff)

    def sweep_many(self, blobs: Sequence[BlobInfo], cutoff: float) -> list[bool]:
        """Remove each unreferenced blob unless a put reused it since it was listed (one at a time on
        a disk, concurrently on a remote root); True where it went."""
        workers = 1 if self.root.os_paths else min(16, self.max_workers)
        return self._map(lambda b: sweep.sweep(self, b, cutoff), list(blobs), workers)

    def recover_quarantine(self) -> None:
        """Put back blobs that a killed gc had quarantined but not deleted; they are judged again."""
        sweep.recover_quarantine(self)

    def empty_trash(
        self, live: Iterable[str], cutoff: float, *, everything: bool = False
    ) -> tuple[str, ...]:
        """Restore trashed blobs that are ``live``, purge the others trashed before ``cutoff``
        (``everything``: all others); returns the digests put back."""
        return sweep.empty_trash(self, live, cutoff, everything=everything)


def _blob_digest(rel: str) -> str | None:
    """The digest a path under ``blobs/`` names (``blobs/ab/cdef...``), None for any other name."""
    parts = rel.split("/")
    if len(parts) != 3 or len(parts[1]) != 2:
        return None
    digest = parts[1] + parts[2]
    return digest if DIGEST_RE.fullmatch(digest) else None


def _source_path(path: str | os.PathLike[str]) -> str:
    p = os.fspath(path)
    if not os.path.exists(p):
        raise NotFoundError(f"no such file: {p}")
    if os.path.isdir(p):
        raise InvalidPathError(f"{p} is a directory, expected a file (use add_dir for directories)")
    return os.path.abspath(p)

