"""The `Root` interface: one store root spoken to in small objects; backend failures become our errors.

A root is an fsspec filesystem plus a path inside it. There is one class per backend, each in its own
module (`storage._local`, `storage._memory`, `storage._fsspec` for S3 and other fsspec filesystems), and
`open_root` picks one from the URL. Where backends differ in behaviour the class says so with capability
flags (``os_paths``, ``remote``, ``multipart``, ``mtime_slack``, ``prefers_listing``) or implements the
operation its own way; nothing outside `storage/` asks which backend it has. Everything above sees only
our error family: a missing bucket, a refused connection or bad credentials become one-line
`BackendError`s that say what to do, instead of a botocore traceback.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any, ClassVar

from .errors import ArtifactsError, BackendError, ConflictError, NotFoundError, disk_full_errors

if TYPE_CHECKING:
    import fsspec
    from fsspec.callbacks import Callback

__all__ = ["Root", "backend_errors", "mtime_of", "open_root", "read_until_empty"]

_KNOWN_PROTOCOLS = {"file", "local", "s3", "s3a", "memory"}


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


class Root:
    """One store root: a filesystem and a path in it, with the few operations the store needs.

    Paths given to methods are relative to the root and use ``/``. Subclasses set the capability
    flags and override what their backend does differently; the defaults speak plain fsspec.
    """

    #: objects are OS files: blobs are published by link/rename, copied by the kernel, memory-mapped
    os_paths: ClassVar[bool] = False
    #: every request is a network round trip: batch reads, run requests concurrently, PUT first
    remote: ClassVar[bool] = False
    #: large uploads go as a multipart upload that completes only if its bytes hash alike
    multipart: ClassVar[bool] = False
    #: resolution of modification times, in seconds (S3 keeps whole seconds)
    mtime_slack: ClassVar[float] = 0.0
    #: finding what is new costs less by one listing than by probing names: True on an object store
    #: (a LIST page of 1,000 names is one request, like one probing GET), False where a probe is a
    #: local syscall and a listing reads the whole directory
    prefers_listing: ClassVar[bool] = False

    def __init__(self, fs: fsspec.AbstractFileSystem, path: str, url: str) -> None:
        self.fs, self.path, self.url = fs, path, url

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    @staticmethod
    def serves(fs: fsspec.AbstractFileSystem) -> bool:
        """Whether this class is the one for ``fs`` (see `open_root`)."""
        return True

    def full(self, rel: str) -> str:
        return f"{self.path}/{rel}" if self.path else rel

    def local(self, rel: str) -> str:
        """OS path of ``rel``; only roots with ``os_paths`` have one."""
        raise BackendError(f"{self.url} is not on local disk: {rel} has no OS path")

    def location(self) -> dict[str, str]:
        """What tells this root apart from any other holding a store of the same id (an index cache
        key): its URL and the endpoint it is reached at (one bucket name on two services is two)."""
        opts = getattr(self.fs, "storage_options", None) or {}
        client = opts.get("client_kwargs") if isinstance(opts.get("client_kwargs"), dict) else {}
        endpoint = opts.get("endpoint_url") or (client or {}).get("endpoint_url")
        return {"url": self.fs.unstrip_protocol(self.path), "endpoint": str(endpoint or "")}

    # -- small objects -------------------------------------------------------------------------
    def create_exclusive(self, rel: str, data: bytes) -> None:
        """Create ``rel`` holding ``data`` only if it does not exist yet; all or nothing
        (`ConflictError` if it exists). A reader never sees a partial object."""
        with backend_errors(f"create {rel}", self.url):
            self.fs.pipe_file(self.full(rel), data, mode="create")

    def read(self, rel: str, limit: int | None = None) -> bytes:
        """The bytes of ``rel``; with ``limit``, at most its first ``limit + 1``: store content is
        untrusted, and more than ``limit`` back says the object is over the caller's bound (which
        refuses it) without the rest being read."""
        with backend_errors(f"read {rel}", self.url):
            if limit is None:
                return self.fs.cat_file(self.full(rel))
            return self.fs.cat_file(self.full(rel), start=0, end=limit + 1)

    @contextlib.contextmanager
    def read_pieces(self, rel: str, piece: int = 1 << 20) -> Iterator[tuple[int, Iterator[bytes]]]:
        """``rel``'s size and an iterator of its bytes in pieces of at most ``piece``: store content
        too large to hold whole (a snapshot's data) read with bounded memory, its size known before
        any byte is read so that the caller can refuse it unread. The stream is closed on exit."""
        with backend_errors(f"read {rel}", self.url):
            f = self.open_read(rel)
        with f:
            try:
                size = os.fstat(f.fileno()).st_size
            except (OSError, AttributeError, ValueError, io.UnsupportedOperation):
                size = int(self.info(rel)["size"])

            yield size, read_until_empty(lambda: f.read(piece), f"read {rel}", self.url)

    def read_range(self, rel: str, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` (exclusive) of ``rel``."""
        with backend_errors(f"read {rel}", self.url):
            return self.fs.cat_file(self.full(rel), start=start, end=end)

    def read_range_into(self, rel: str, start: int, buf: memoryview) -> int:
        """Bytes ``start`` on of ``rel`` into the byte view ``buf``; returns how many ``rel`` holds
        from ``start`` on, counted up to ``len(buf) + 1`` (one more than fits says that it goes on:
        that byte is read, not kept). Backends that stream (S3) write the bytes into ``buf`` as they
        arrive, so a large object costs no whole-object buffer and copy on the way; here it is
        read as `read_range` and copied."""
        data = self.read_range(rel, start, start + len(buf) + 1)
        n = min(len(data), len(buf))
        buf[:n] = memoryview(data)[:n]
        return len(data)

    def read_many(self, rels: list[str], limit: int | None = None) -> dict[str, bytes]:
        """Fetch several small objects at once (concurrently where the filesystem is async); missing
        ones are left out. ``limit``: as for `read`, each object's first ``limit + 1`` bytes at most."""
        if not rels:
            return {}
        full = {self.full(r): r for r in rels}
        with backend_errors("read log entries", self.url):
            if getattr(self.fs, "async_impl", False):
                datas = self._cat_async(list(full), limit)
                return {r: d for r, d in zip(full.values(), datas, strict=True) if d is not None}
            if limit is not None:
                out = {}
                for f, r in full.items():
                    with contextlib.suppress(FileNotFoundError):
                        out[r] = self.fs.cat_file(f, start=0, end=limit + 1)
                return out
            got = self.fs.cat(list(full), on_error="omit")
        return {full[k if k in full else self.fs._strip_protocol(k)]: v for k, v in got.items()}

    async def _get(self, full: str, limit: int | None = None) -> bytes:
        """One object (its first ``limit + 1`` bytes at most), on an async filesystem's event loop
        (see `_cat_async`)."""
        if limit is None:
            return bytes(await self.fs._cat_file(full))
        return bytes(await self.fs._cat_file(full, start=0, end=limit + 1))

    def _cat_async(self, paths: list[str], limit: int | None = None) -> list[bytes | None]:
        """GET each path concurrently on the filesystem's own event loop; None where missing.

        ``fs.cat(list)`` would first expand every path (a HEAD and a LIST per missing key); probing the
        log for new entries only needs one GET each.
        """
        from fsspec.asyn import sync

        get = self._get

        async def one(p: str) -> bytes | None:
            try:
                return await get(p, limit)
            except FileNotFoundError:
                return None

        async def gather() -> list[bytes | None]:
            import asyncio

            return list(await asyncio.gather(*(one(p) for p in paths)))

        return sync(self.fs.loop, gather)

    def create_many(self, items: list[tuple[str, bytes]], limit: int = 64) -> list[bool]:
        """`create_exclusive` of each (rel, data); True where created, False where it existed.

        On an async filesystem the creates go ``limit`` at a time on its own event loop (one task
        each, not one thread each), elsewhere one after another. The first other error is raised
        after every started create has ended.
        """
        if not getattr(self.fs, "async_impl", False):
            out = []
            for rel, data in items:
                try:
                    self.create_exclusive(rel, data)
                    out.append(True)
                except ConflictError:
                    out.append(False)
            return out
        import asyncio

        from fsspec.asyn import sync

        async def gather() -> list[bool | BaseException]:
            gate = asyncio.Semaphore(limit)

            async def one(rel: str, data: bytes) -> bool:
                async with gate:
                    try:
                        await self.fs._pipe_file(self.full(rel), data, mode="create")
                    except FileExistsError:
                        return False
                    return True

            return list(
                await asyncio.gather(*(one(r, d) for r, d in items), return_exceptions=True)
            )

        with backend_errors("create objects", self.url):
            got = sync(self.fs.loop, gather)
            for g in got:
                if isinstance(g, BaseException):
                    raise g
        return [bool(g) for g in got]

    def write(self, rel: str, data: bytes) -> None:
        """Plain overwrite for objects whose content is fixed by their name (blobs) or that are caches."""
        with backend_errors(f"write {rel}", self.url):
            self.fs.pipe_file(self.full(rel), data)

    def exists(self, rel: str) -> bool:
        with backend_errors(f"check {rel}", self.url):
            return bool(self.fs.exists(self.full(rel)))

    def head(self, rel: str) -> dict[str, Any] | None:
        """Detail of one object (at least ``size``; a modification time where the backend has one), or
        None if it does not exist."""
        with backend_errors(f"check {rel}", self.url):
            try:
                return dict(self.fs.info(self.full(rel)))
            except FileNotFoundError:
                return None

    def delete(self, rel: str) -> None:
        with backend_errors(f"delete {rel}", self.url), contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self.full(rel))

    def info(self, rel: str) -> dict[str, Any]:
        with backend_errors(f"stat {rel}", self.url):
            return dict(self.fs.info(self.full(rel)))

    def copy(self, src: str, dst: str) -> None:
        """Copy an object within the root (server-side where the backend can)."""
        with backend_errors(f"copy {src}", self.url):
            self.fs.copy(self.full(src), self.full(dst))

    def move(self, src: str, dst: str) -> bool:
        """Move an object within the root; False if ``src`` is missing. Copy, then delete, unless
        the backend renames."""
        try:
            data = self.read(src)
        except NotFoundError:
            return False
        self.write(dst, data)
        self.delete(src)
        return True

    def touch(self, rel: str) -> bool:
        """Refresh ``rel``'s modification time (a dedup hit, for gc); False if it is missing.
        Backends that cannot refresh it leave it as it is and answer True while it exists."""
        return self.exists(rel)

    def listdir(self, rel: str) -> list[dict[str, Any]]:
        """Entries directly under ``rel`` (detail dicts); empty when it does not exist."""
        with backend_errors(f"list {rel}", self.url):
            try:
                return list(self.fs.ls(self.full(rel), detail=True, refresh=True))
            except FileNotFoundError:
                return []

    def list_after(self, rel: str, after: str = "") -> list[str]:
        """Names of the objects directly under ``rel`` that sort after ``after``, in order."""
        with backend_errors(f"list {rel}", self.url):
            try:
                names = self._names(rel)
            except (FileNotFoundError, NotADirectoryError):
                return []
            return sorted(n for n in names if n > after)

    def _names(self, rel: str) -> list[str]:
        return [
            i["name"].rstrip("/").rsplit("/", 1)[-1]
            for i in self.fs.ls(self.full(rel), detail=True)
            if i.get("type") != "directory"
        ]

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

    # -- leftovers of writers that died (see `storage.leftovers`) -------------------------------
    def uploads(self) -> list[tuple[str, str, float | None]]:
        """Multipart uploads begun under this root and neither completed nor aborted, as (path
        relative to the root, upload id, start time); none where the backend has no such thing."""
        return []

    def abort_upload(self, rel: str, upload_id: str) -> None:
        """Abort one of `uploads` (its parts are freed; an upload gone meanwhile is no error)."""

    # -- whole objects -------------------------------------------------------------------------
    def open_read(self, rel: str) -> IO[bytes]:
        """A binary stream of ``rel`` with its own position (one per reader)."""
        with backend_errors(f"open {rel}", self.url):
            return self.fs.open(self.full(rel), "rb")  # type: ignore[no-any-return]

    def upload_file(self, local_path: str, rel: str, callback: Callback) -> None:
        """Create ``rel`` from a private local file, exclusively (`ConflictError` if it exists)."""
        with backend_errors(f"upload {local_path}", self.url):
            self.fs.put_file(local_path, self.full(rel), callback=callback, mode="create")

    def download(self, rel: str, local_path: str, callback: Callback) -> None:
        """Write ``rel`` to the local file ``local_path``."""
        with backend_errors(f"download {rel}", self.url):
            self.fs.get_file(self.full(rel), local_path, callback=callback)

    def check_reachable(self, *, create: bool = True) -> None:
        """Fail fast with a clear message if the root cannot be used (missing bucket, bad endpoint);
        ``create``: whether a local root may make its folder."""
        with backend_errors("open store", self.url):
            bucket = self.path.split("/", 1)[0]
            self.fs.ls(bucket, refresh=True)


def read_until_empty(read: Callable[[], bytes], what: str, url: str) -> Iterator[bytes]:
    """The pieces ``read()`` returns until it returns none, its errors translated (`read_pieces`)."""
    while True:
        with backend_errors(what, url):
            chunk = read()
        if not chunk:
            return
        yield bytes(chunk)


def mtime_of(info: dict[str, Any]) -> float | None:
    """The modification time in an fsspec detail dict, whichever key the backend uses."""
    for key in ("mtime", "LastModified", "last_modified", "created"):
        v = info.get(key)
        if v is None:
            continue
        if hasattr(v, "timestamp"):
            return float(v.timestamp())
        with contextlib.suppress(TypeError, ValueError):
            return float(v)
    return None


def open_root(url: str, storage_options: dict[str, Any] | None = None) -> Root:
    """Open ``url`` (a path, ``file://``, ``s3://bucket/prefix`` or ``memory://``) as a store root."""
    from ._local import LocalRoot

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
    if "://" not in url and not options:  # a plain path: no fsspec until a call needs its filesystem
        return LocalRoot(None, url.rstrip("/"), url)
    import fsspec

    from ._fsspec import remote_root
    from ._memory import MemoryRoot

    s3 = url.split("://", 1)[0].lower() in ("s3", "s3a")
    if s3:
        # Several machines write one bucket: a cached listing would hide their blobs (false "not found")
        # and keep showing deleted ones, so never answer from s3fs's listings cache.
        options.setdefault("use_listings_cache", False)
    try:
        if s3:  # every request bounded by $ARTIFACTS_S3_TIMEOUT (see storage.patience)
            from ._s3fs import s3_filesystem

            fs, path = s3_filesystem(url, options)
        else:
            fs, path = fsspec.url_to_fs(url, **options)
    except (ImportError, ValueError, TypeError) as e:
        raise BackendError(f"cannot open store {url!r}: {_first_line(e)}") from e
    path = path.rstrip("/")
    for cls in (LocalRoot, MemoryRoot):
        if cls.serves(fs):
            return cls(fs, path, url)
    if not path:
        raise BackendError(
            f"store URL {url!r} names no bucket: use s3://bucket or s3://bucket/prefix"
        )
    return remote_root(fs, path, url)
