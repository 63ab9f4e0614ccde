"""Open a store root from a URL and speak to it in small objects; map backend failures to our errors.

A root is an fsspec filesystem plus a path inside it. Everything above this module sees only our error
family: a missing bucket, a refused connection or bad credentials become one-line `BackendError`s that say
what to do, instead of a botocore traceback.
"""

from __future__ import annotations

import contextlib
import errno
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem

from .errors import ArtifactsError, BackendError, ConflictError, NotFoundError, disk_full_errors

__all__ = ["Root", "open_root"]

_KNOWN_PROTOCOLS = {"file", "local", "s3", "s3a", "memory"}


def _protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    p = fs.protocol
    return (p,) if isinstance(p, str) else tuple(p)


@contextlib.contextmanager
def backend_errors(what: str, url: str) -> Iterator[None]:
    """Translate backend exceptions raised while doing ``what`` on ``url`` into our family."""
    try:
        with disk_full_errors(what, url):  # a full local disk is not an unreachable endpoint
            yield
    except ArtifactsError:
        raise
    except FileExistsError as e:
        raise ConflictError(f"{what}: already exists ({url})") from e
    except FileNotFoundError as e:
        if _is_missing_bucket(e):
            raise BackendError(
                f"{what}: the bucket of {url} does not exist; create it first "
                "(for example `aws s3 mb`) or fix the URL"
            ) from e
        raise NotFoundError(f"{what}: not found ({url})") from e
    except PermissionError as e:
        raise BackendError(
            f"{what}: access denied by {url} ({_first_line(e)}); check the credentials and bucket policy"
        ) from e
    except (OSError, TimeoutError) as e:
        raise BackendError(_os_error_message(what, url, e)) from e
    except Exception as e:  # botocore/aiohttp errors that s3fs does not translate
        name = type(e).__name__
        if any(k in name for k in ("Endpoint", "Connect", "Credential", "ClientError", "Timeout")):
            raise BackendError(
                f"{what}: {url} refused the request ({name}: {_first_line(e)}); "
                "check the endpoint, the credentials and the bucket"
            ) from e
        raise


#: OS errors that are the store's own state, not the network's: say what is wrong there (a full
#: disk is `disk_full_errors`' to name).
_LOCAL_CAUSES = {
    errno.EROFS: "the store is on a read-only file system ({e})",
    errno.EISDIR: "a directory is in the way ({e}): something other than this library made it; "
    "move it out of the store",
    errno.ENOTDIR: "a file is in the way of a directory ({e}): move it out of the store",
    errno.EIO: "the disk of the store reports an I/O error ({e}); check the disk",
}


def _os_error_message(what: str, url: str, e: OSError) -> str:
    cause = _LOCAL_CAUSES.get(e.errno) if e.errno is not None else None
    if cause is not None:
        return f"{what} in {url}: {cause.format(e=_first_line(e))}"
    return f"{what}: cannot reach {url} ({_first_line(e)}); check the endpoint and the network"


def _is_missing_bucket(e: BaseException) -> bool:
    """True when S3 said NoSuchBucket (not merely a missing key whose path contains "bucket")."""
    seen: set[int] = set()
    err: BaseException | None = e
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        response = getattr(err, "response", None)
        if isinstance(response, dict) and response.get("Error", {}).get("Code") == "NoSuchBucket":
            return True
        if "specified bucket does not exist" in str(err).lower():
            return True
        err = err.__cause__ or err.__context__
    return False


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


@dataclass
class Root:
    """One store root: a filesystem and a path in it, with the few operations the store needs.

    Paths given to methods are relative to the root and use ``/``.
    """

    fs: fsspec.AbstractFileSystem
    path: str
    url: str

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    @property
    def is_memory(self) -> bool:
        return isinstance(self.fs, MemoryFileSystem)

    @property
    def prefers_listing(self) -> bool:
        """Capability: finding what is new costs less by one listing than by probing names.

        True on an object store (a LIST page of 1,000 names is one request, like one probing GET);
        False where a probe is a local syscall and a listing reads the whole directory.
        """
        return not (self.is_local or self.is_memory)

    def full(self, rel: str) -> str:
        return f"{self.path}/{rel}" if self.path else rel

    def local(self, rel: str) -> str:
        """OS path of ``rel``; only meaningful on a local root."""
        return self.full(rel)

    # -- small objects -------------------------------------------------------------------------
    def create_exclusive(self, rel: str, data: bytes) -> None:
        """Create ``rel`` holding ``data`` only if it does not exist yet; all or nothing.

        Local: a temp file, fsync, then ``os.link`` (which fails if the name exists), so a reader never sees a
        partial object. S3: ``PutObject`` with ``If-None-Match: *`` (HTTP 412 -> `ConflictError`).
        """
        target = self.full(rel)
        with backend_errors(f"create {rel}", self.url):
            if self.is_local:
                self._create_exclusive_local(target, data)
            elif self.is_memory:
                self._create_exclusive_memory(target, data)
            else:
                self.fs.pipe_file(target, data, mode="create")

    def _create_exclusive_local(self, target: str, data: bytes) -> None:
        if os.path.exists(target):  # lost already: skip the temp file and its fsync
            raise ConflictError(f"{target} already exists")
        directory = os.path.dirname(target)
        os.makedirs(directory, exist_ok=True)
        tmp = os.path.join(directory, f".tmp-{uuid.uuid4().hex}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, target)
            except FileExistsError:
                raise ConflictError(f"{target} already exists") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    _memory_lock = __import__("threading").Lock()

    def _create_exclusive_memory(self, target: str, data: bytes) -> None:
        with Root._memory_lock:
            if self.fs.exists(target):
                raise ConflictError(f"{target} already exists")
            self.fs.pipe_file(target, data)

    def read(self, rel: str) -> bytes:
        with backend_errors(f"read {rel}", self.url):
            if _is_s3(self.fs):
                from fsspec.asyn import sync

                return sync(self.fs.loop, self._get_s3, self.full(rel))
            return self.fs.cat_file(self.full(rel))

    async def _get_s3(self, full: str) -> bytes:
        """One GET. s3fs's ``cat_file`` first HEADs the key (to split big objects into ranges), and on a
        missing key its HEAD adds a LIST (is it a directory?): three requests where one will do."""
        from s3fs.core import _error_wrapper  # s3fs's own retries for a body cut off mid-read

        bucket, key, _ = self.fs.split_path(full)

        async def call_and_read() -> bytes:
            resp = await self.fs._call_s3("get_object", Bucket=bucket, Key=key)
            try:
                return bytes(await resp["Body"].read())
            finally:
                resp["Body"].close()

        return await _error_wrapper(call_and_read, retries=self.fs.retries)

    def read_many(self, rels: list[str]) -> dict[str, bytes]:
        """Fetch several small objects at once (concurrently on S3); missing ones are left out."""
        if not rels:
            return {}
        full = {self.full(r): r for r in rels}
        with backend_errors("read log entries", self.url):
            if self.is_local:
                out = {}
                for f, r in full.items():
                    try:
                        with open(f, "rb") as fh:
                            out[r] = fh.read()
                    except FileNotFoundError:
                        pass
                return out
            if getattr(self.fs, "async_impl", False):
                datas = self._cat_async(list(full))
                return {r: d for r, d in zip(full.values(), datas, strict=True) if d is not None}
            got = self.fs.cat(list(full), on_error="omit")
        return {full[k if k in full else self.fs._strip_protocol(k)]: v for k, v in got.items()}

    def _cat_async(self, paths: list[str]) -> list[bytes | None]:
        """GET each path concurrently on the filesystem's own event loop; None where missing.

        ``fs.cat(list)`` would first expand every path (a HEAD and a LIST per missing key); probing the
        log for new entries only needs one GET each.
        """
        from fsspec.asyn import sync

        get = self._get_s3 if _is_s3(self.fs) else self.fs._cat_file

        async def one(p: str) -> bytes | None:
            try:
                return await get(p)
            except FileNotFoundError:
                return None

        async def gather() -> list[bytes | None]:
            import asyncio

            return list(await asyncio.gather(*(one(p) for p in paths)))

        return sync(self.fs.loop, gather)

    def write(self, rel: str, data: bytes) -> None:
        """Plain overwrite for objects whose content is fixed by their name (blobs) or that are caches."""
        with backend_errors(f"write {rel}", self.url):
            if self.is_local:
                os.makedirs(os.path.dirname(self.full(rel)), exist_ok=True)
            self.fs.pipe_file(self.full(rel), data)

    def exists(self, rel: str) -> bool:
        with backend_errors(f"check {rel}", self.url):
            if self.is_local:
                return os.path.exists(self.full(rel))
            if _is_s3(self.fs):  # one HEAD; fs.exists() adds a LIST on a miss (is it a directory?)
                from fsspec.asyn import sync

                bucket, key, _ = self.fs.split_path(self.full(rel))
                try:
                    sync(self.fs.loop, self.fs._call_s3, "head_object", Bucket=bucket, Key=key)
                except FileNotFoundError:
                    return False
                return True
            return self.fs.exists(self.full(rel))

    def head(self, rel: str) -> dict[str, Any] | None:
        """Detail of one object (at least ``size``; a modification time where the backend has one), or
        None if it does not exist. On S3 this is one HEAD; ``fs.info`` would add a LIST on a miss."""
        with backend_errors(f"check {rel}", self.url):
            if _is_s3(self.fs):
                from fsspec.asyn import sync

                bucket, key, _ = self.fs.split_path(self.full(rel))
                try:
                    out = sync(
                        self.fs.loop, self.fs._call_s3, "head_object", Bucket=bucket, Key=key
                    )
                except FileNotFoundError:
                    return None
                return {
                    "name": self.full(rel),
                    "size": out.get("ContentLength"),
                    "LastModified": out.get("LastModified"),
                    "type": "file",
                }
            try:
                return self.fs.info(self.full(rel))
            except FileNotFoundError:
                return None

    def delete(self, rel: str) -> None:
        with backend_errors(f"delete {rel}", self.url), contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self.full(rel))

    def info(self, rel: str) -> dict[str, Any]:
        with backend_errors(f"stat {rel}", self.url):
            return self.fs.info(self.full(rel))

    def listdir(self, rel: str) -> list[dict[str, Any]]:
        """Entries directly under ``rel`` (detail dicts); empty when it does not exist."""
        with backend_errors(f"list {rel}", self.url):
            try:
                return (
                    self.fs.ls(self.full(rel), detail=True, refresh=True)
                    if not self.is_local
                    else self.fs.ls(self.full(rel), detail=True)
                )
            except FileNotFoundError:
                return []

    def list_after(self, rel: str, after: str = "") -> list[str]:
        """Names of the objects directly under ``rel`` that sort after ``after``, in order.

        On S3 this is ListObjectsV2 with ``StartAfter`` (one request per 1,000 names), so a reader that
        knows the last key it saw pays only for what is new; s3fs's ``ls`` would list the whole prefix.
        """
        with backend_errors(f"list {rel}", self.url):
            if _is_s3(self.fs):
                return self._list_after_s3(rel, after)
            try:
                if self.is_local:
                    names = os.listdir(self.full(rel))
                else:
                    names = [
                        i["name"].rstrip("/").rsplit("/", 1)[-1]
                        for i in self.fs.ls(self.full(rel), detail=True)
                        if i.get("type") != "directory"
                    ]
            except (FileNotFoundError, NotADirectoryError):
                return []
            return sorted(n for n in names if n > after)

    def _list_after_s3(self, rel: str, after: str) -> list[str]:
        from fsspec.asyn import sync

        bucket, key, _ = self.fs.split_path(self.full(rel))
        prefix = f"{key}/" if key else ""
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "Delimiter": "/"}
        if after:
            kwargs["StartAfter"] = prefix + after
        out: list[str] = []
        while True:
            page = sync(self.fs.loop, self.fs._call_s3, "list_objects_v2", **kwargs)
            out += [o["Key"][len(prefix) :] for o in page.get("Contents", [])]
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return out
            kwargs["ContinuationToken"] = token

    def find(self, rel: str) -> dict[str, dict[str, Any]]:
        """Every file below ``rel``, keyed by path relative to the root, with detail."""
        with backend_errors(f"list {rel}", self.url):
            try:
                found = self.fs.find(self.full(rel), detail=True)
            except FileNotFoundError:
                return {}
        prefix = f"{self.path}/" if self.path else ""
        out = {}
        for k, v in found.items():
            k = self.fs._strip_protocol(k)
            out[k[len(prefix) :] if k.startswith(prefix) else k] = v
        return out

    def check_reachable(self, *, create: bool = True) -> None:
        """Fail fast with a clear message if the root cannot be used (missing bucket, bad endpoint);
        a local root's folder is made unless not ``create``."""
        with backend_errors("open store", self.url):
            if self.is_local:
                if create:
                    os.makedirs(self.path, exist_ok=True)
                if os.path.exists(self.path) and not os.path.isdir(self.path):
                    raise BackendError(f"store root {self.path} is not a directory")
            elif not self.is_memory:
                bucket = self.path.split("/", 1)[0]
                self.fs.ls(bucket, refresh=True)


def _is_s3(fs: fsspec.AbstractFileSystem) -> bool:
    return "s3" in _protocols(fs) and hasattr(fs, "_call_s3")


def open_root(url: str, storage_options: dict[str, Any] | None = None) -> Root:
    """Open ``url`` (a path, ``file://``, ``s3://bucket/prefix`` or ``memory://``) as a store root."""
    url = os.fspath(url)
    if "://" in url:
        scheme = url.split("://", 1)[0].lower()
        if scheme not in _KNOWN_PROTOCOLS:
            raise BackendError(
                f"unsupported store URL scheme {scheme!r} in {url!r}: use a local path, file://, "
                "s3://bucket/prefix or memory://"
            )
    else:
        url = os.path.abspath(os.path.expanduser(url))
    options = dict(storage_options or {})
    if url.split("://", 1)[0].lower() in ("s3", "s3a"):
        # Several machines write one bucket: a cached listing would hide their blobs (false "not found")
        # and keep showing deleted ones, so never answer from s3fs's listings cache.
        options.setdefault("use_listings_cache", False)
    try:
        fs, path = fsspec.url_to_fs(url, **options)
    except (ImportError, ValueError, TypeError) as e:
        raise BackendError(f"cannot open store {url!r}: {_first_line(e)}") from e
    path = path.rstrip("/")
    if not isinstance(fs, LocalFileSystem | MemoryFileSystem) and not path:
        raise BackendError(
            f"store URL {url!r} names no bucket: use s3://bucket or s3://bucket/prefix"
        )
    return Root(fs=fs, path=path, url=url)
