"""Upload a local file to a remote root so that the bytes sent are exactly the bytes hashed.

A file is hashed to learn its name and then read again to send it; a file rewritten in between (a
checkpoint being saved again) would be stored under a digest that is not its content, and every later
honest put of that content would dedup against the bad blob. So a file is read once: small files into
memory (hashed, then sent from that buffer), large ones part by part into a multipart upload whose
parts are hashed as they are read; the upload is completed (with ``If-None-Match: *``) only if the
bytes sent hash to the digest that names the object, and aborted otherwise (nothing becomes visible).
An upload that fails for any reason is aborted too, so no multipart upload is left to cost money.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from .errors import ConflictError, IntegrityError
from .hashing import Hasher

if TYPE_CHECKING:
    from fsspec.callbacks import Callback

__all__ = ["PART_SIZE", "SINGLE_PUT_MAX", "SourceChangedError", "read_whole", "upload_parts"]

#: Files up to this size are read into memory once and sent in one PUT.
SINGLE_PUT_MAX = 32 * 1024 * 1024
#: Part size of a multipart upload (S3 wants at least 5 MiB for every part but the last).
PART_SIZE = 16 * 1024 * 1024
#: Parts in flight at once (memory: this many parts).
_IN_FLIGHT = 4


class SourceChangedError(IntegrityError):
    """A local file changed while it was being stored; nothing was stored for it."""


def read_whole(path: str, size_hint: int) -> bytes:
    """The file's bytes in one read (the caller hashes and sends this very buffer)."""
    with open(path, "rb", buffering=0) as f:
        chunks = []
        while chunk := f.read(max(size_hint, 1 << 16) + 1):
            chunks.append(chunk)
    return b"".join(chunks) if len(chunks) != 1 else chunks[0]


def upload_parts(fs: Any, full: str, path: str, digest: str, cb: Callback) -> int:
    """Send ``path`` to ``full`` on the S3 filesystem ``fs`` as a multipart upload, completed only if
    what was read hashes to ``digest``; returns the bytes sent.

    `ConflictError` if the object exists already (HTTP 412 on completion), `SourceChangedError` if the
    file's content is not ``digest`` any more. Either way, and on any error, the upload is aborted.
    """
    from fsspec.asyn import sync

    bucket, key, _ = fs.split_path(full)
    return sync(fs.loop, _upload, fs, bucket, key, path, digest, cb)


async def _upload(fs: Any, bucket: str, key: str, path: str, digest: str, cb: Callback) -> int:
    import asyncio  # here: a local put imports this module and needs no event loop

    mpu = await fs._call_s3("create_multipart_upload", Bucket=bucket, Key=key)
    upload_id = mpu["UploadId"]
    done = False
    try:
        hasher = Hasher()
        parts: list[dict[str, Any]] = []
        slots = asyncio.Semaphore(_IN_FLIGHT)
        tasks: list[asyncio.Task[dict[str, Any]]] = []

        async def send(number: int, chunk: bytes) -> dict[str, Any]:
            try:
                out = await fs._call_s3(
                    "upload_part",
                    Bucket=bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=chunk,
                )
            finally:
                slots.release()
            cb.relative_update(len(chunk))
            return {"PartNumber": number, "ETag": out["ETag"]}

        def read_part(f: Any) -> bytes:
            chunk = f.read(PART_SIZE)
            hasher.update(chunk)  # the very bytes that are sent
            return chunk

        try:
            with open(path, "rb", buffering=0) as f:
                number = 0
                while True:
                    await slots.acquire()
                    chunk = await asyncio.to_thread(read_part, f)
                    if not chunk and number:
                        slots.release()
                        break
                    number += 1
                    tasks.append(asyncio.ensure_future(send(number, chunk)))
                    if len(chunk) < PART_SIZE:
                        break
            parts = list(await asyncio.gather(*tasks))
        finally:  # never leave a part request running (its exception unretrieved) after an error
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(BaseException):
                    await t
        actual = hasher.hexdigest()
        if actual != digest:
            raise SourceChangedError(
                f"{path} changed while it was being stored (it hashed to {digest}, then to {actual}); "
                "nothing was stored for it: store it again once it is no longer being written"
            )
        try:
            await fs._call_s3(
                "complete_multipart_upload",
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
                IfNoneMatch="*",
            )
        except FileExistsError:
            raise ConflictError(f"{key} already exists") from None
        except FileNotFoundError:  # NoSuchUpload: a retry after our completion's reply was lost?
            if not await _stored(fs, bucket, key, hasher.size):
                raise
        except OSError as e:
            if "PreconditionFailed" in str(e) or "412" in str(e):
                raise ConflictError(f"{key} already exists") from None
            raise
        done = True
        return hasher.size
    finally:
        if not done:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    fs._call_s3(
                        "abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id
                    ),
                    timeout=30,
                )


async def _stored(fs: Any, bucket: str, key: str, size: int) -> bool:
    """True if ``key`` holds ``size`` bytes: the completion did land (the object is named by its
    digest, so whole content of that size under it is this content)."""
    try:
        head = await fs._call_s3("head_object", Bucket=bucket, Key=key)
    except FileNotFoundError:
        return False
    return bool(head.get("ContentLength") == size)
