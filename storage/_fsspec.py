"""`RemoteRoot` (a remote fsspec filesystem) and `S3Root`, its S3 specialisation through s3fs.

Remote roots pay a round trip per request: many small reads go concurrently on the filesystem's own
event loop, new log entries are found by listing, and timestamps are coarse. On S3 a read is one GET
and an existence check one HEAD (s3fs's ``cat_file``/``exists``/``info`` add a HEAD or a LIST), a
listing starts after the last key seen, and an exclusive create is ``PutObject`` with
``If-None-Match: *`` (HTTP 412 -> `ConflictError`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import fsspec

from .backend import Root, backend_errors, read_until_empty
from .errors import BackendError, NotFoundError

__all__ = ["RemoteRoot", "S3Root", "remote_root"]


class RemoteRoot(Root):
    remote: ClassVar[bool] = True
    mtime_slack: ClassVar[float] = 1.0
    prefers_listing: ClassVar[bool] = True


class S3Root(RemoteRoot):
    """S3 via s3fs: one GET per read, one HEAD per existence check, LIST with StartAfter, multipart
    uploads, and a dedup hit's refresh as an in-place copy."""

    multipart: ClassVar[bool] = True

    @staticmethod
    def serves(fs: fsspec.AbstractFileSystem) -> bool:
        p = fs.protocol
        return "s3" in ((p,) if isinstance(p, str) else tuple(p)) and hasattr(fs, "_call_s3")

    def read(self, rel: str, limit: int | None = None) -> bytes:
        with backend_errors(f"read {rel}", self.url):
            from fsspec.asyn import sync

            return sync(self.fs.loop, self._get, self.full(rel), limit)

    async def _get(self, full: str, limit: int | None = None) -> bytes:
        """One GET. s3fs's ``cat_file`` first HEADs the key (to split big objects into ranges), and on a
        missing key its HEAD adds a LIST (is it a directory?): three requests where one will do.

        ``limit``: the response's Content-Length says whether the object is over it; one that is has
        only its first ``limit + 1`` bytes read and the connection closed (`Root.read`), in the same
        one GET (a Range header instead would turn an empty object into HTTP 416)."""
        from s3fs.core import _error_wrapper  # s3fs's own retries for a body cut off mid-read

        bucket, key, _ = self.fs.split_path(full)

        async def call_and_read() -> bytes:
            resp = await self.fs._call_s3("get_object", Bucket=bucket, Key=key)
            body = resp["Body"]
            try:
                size = resp.get("ContentLength")
                if limit is None or (isinstance(size, int) and size <= limit):
                    return bytes(await body.read())
                data = bytearray()
                while len(data) <= limit and (chunk := await body.read(limit + 1 - len(data))):
                    data += chunk
                return bytes(data)
            finally:
                body.close()

        return await _error_wrapper(call_and_read, retries=self.fs.retries)

    @contextlib.contextmanager
    def read_pieces(self, rel: str, piece: int = 1 << 20) -> Iterator[tuple[int, Iterator[bytes]]]:
        """One GET (`Root.read_pieces`): its Content-Length is the size, its body read a piece at a
        time as the caller consumes it; the connection is closed on exit, read to the end or not."""
        from fsspec.asyn import sync

        bucket, key, _ = self.fs.split_path(self.full(rel))
        with backend_errors(f"read {rel}", self.url):
            resp = sync(self.fs.loop, self.fs._call_s3, "get_object", Bucket=bucket, Key=key)
        body = resp["Body"]
        pieces = read_until_empty(lambda: sync(self.fs.loop, body.read, piece), f"read {rel}", self.url)
        try:
            yield int(resp["ContentLength"]), pieces
        finally:
            body.close()

    def read_range_into(self, rel: str, start: int, buf: memoryview) -> int:
        """One ranged GET of ``len(buf) + 1`` bytes whose body is read into ``buf`` as it arrives
        (see `Root.read_range_into`): a restored tensor lands where it is kept, no copy between."""
        with backend_errors(f"read {rel}", self.url):
            from fsspec.asyn import sync

            return int(sync(self.fs.loop, self._get_into, self.full(rel), start, buf))

    async def _get_into(self, full: str, start: int, buf: memoryview) -> int:
        from s3fs.core import _error_wrapper  # a body cut off mid-read: read again from the start

        bucket, key, _ = self.fs.split_path(full)
        ranged = f"bytes={start}-{start + len(buf)}"  # inclusive: one byte past ``buf``

        async def call_and_read() -> int:
            resp = await self.fs._call_s3("get_object", Bucket=bucket, Key=key, Range=ranged)
            body = resp["Body"]
            try:
                got = 0
                while got < len(buf):
                    n = await body.readinto(buf[got:])
                    if not n:
                        return got
                    got += n
                return got + len(await body.read())  # the byte past ``buf``, if the object has it
            finally:
                body.close()

        return int(await _error_wrapper(call_and_read, retries=self.fs.retries))

    def exists(self, rel: str) -> bool:
        with backend_errors(f"check {rel}", self.url):
            # one HEAD; fs.exists() adds a LIST on a miss (is it a directory?)
            from fsspec.asyn import sync

            bucket, key, _ = self.fs.split_path(self.full(rel))
            try:
                sync(self.fs.loop, self.fs._call_s3, "head_object", Bucket=bucket, Key=key)
            except FileNotFoundError:
                return False
            return True

    def head(self, rel: str) -> dict[str, Any] | None:
        """One HEAD; ``fs.info`` would add a LIST on a miss."""
        with backend_errors(f"check {rel}", self.url):
            from fsspec.asyn import sync

            bucket, key, _ = self.fs.split_path(self.full(rel))
            try:
                out = sync(self.fs.loop, self.fs._call_s3, "head_object", Bucket=bucket, Key=key)
            except FileNotFoundError:
                return None
            return {
                "name": self.full(rel),
                "size": out.get("ContentLength"),
                "LastModified": out.get("LastModified"),
                "type": "file",
            }

    def touch(self, rel: str) -> bool:
        """An in-place copy with new metadata is how S3 refreshes LastModified."""
        try:
            with backend_errors(f"refresh {rel}", self.url):
                self.fs.setxattr(self.full(rel), artifacts_freshened=str(time.time()))
        except NotFoundError:
            return False  # gone meanwhile
        except (BackendError, AttributeError, ValueError):
            pass  # cannot refresh (policy, object over 5 GB): it is still there
        return True

    def list_after(self, rel: str, after: str = "") -> list[str]:
        """ListObjectsV2 with ``StartAfter`` (one request per 1,000 names), so a reader that knows
        the last key it saw pays only for what is new; s3fs's ``ls`` would list the whole prefix."""
        with backend_errors(f"list {rel}", self.url):
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

    def uploads(self) -> list[tuple[str, str, float | None]]:
        """ListMultipartUploads under the root's prefix, one request per 1,000 uploads."""
        with backend_errors("list multipart uploads", self.url):
            from fsspec.asyn import sync

            bucket, key, _ = self.fs.split_path(self.path)
            prefix = f"{key}/" if key else ""
            kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
            out: list[tuple[str, str, float | None]] = []
            while True:
                page = sync(self.fs.loop, self.fs._call_s3, "list_multipart_uploads", **kwargs)
                for u in page.get("Uploads", []):
                    started = u.get("Initiated")
                    when = float(started.timestamp()) if hasattr(started, "timestamp") else None
                    out.append((u["Key"][len(prefix) :], u["UploadId"], when))
                if not page.get("IsTruncated"):
                    return out
                kwargs["KeyMarker"] = page.get("NextKeyMarker", "")
                kwargs["UploadIdMarker"] = page.get("NextUploadIdMarker", "")

    def abort_upload(self, rel: str, upload_id: str) -> None:
        with backend_errors(f"abort the upload of {rel}", self.url):
            from fsspec.asyn import sync

            bucket, key, _ = self.fs.split_path(self.full(rel))
            with contextlib.suppress(FileNotFoundError):  # NoSuchUpload: gone meanwhile
                sync(
                    self.fs.loop,
                    self.fs._call_s3,
                    "abort_multipart_upload",
                    Bucket=bucket,
                    Key=key,
                    UploadId=upload_id,
                )


def remote_root(fs: fsspec.AbstractFileSystem, path: str, url: str) -> RemoteRoot:
    """The root class for a remote fsspec filesystem."""
    return S3Root(fs, path, url) if S3Root.serves(fs) else RemoteRoot(fs, path, url)
