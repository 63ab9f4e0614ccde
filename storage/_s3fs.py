"""`PatientS3FileSystem`: s3fs whose every request goes through `storage.patience`.

s3fs funnels each S3 request (reads, puts, listings, multipart parts) through ``_call_s3``; this
subclass makes that one attempt per call of the request itself (botocore's retries are off, see
`patience.botocore_config`) inside `Patience.call`, the only retry loop. s3fs's own retries of a
response body cut off mid-read stay: each goes through ``_call_s3`` again, so the bound holds.
"""

from __future__ import annotations

import io
from typing import Any

from botocore.exceptions import ClientError
from s3fs import S3FileSystem
from s3fs.errors import translate_boto_error

from .patience import Patience, botocore_config, s3_timeout

__all__ = ["PatientS3FileSystem", "s3_filesystem"]

#: request names as a person reads them in a retry line
_VERBS = {
    "get_object": "GET",
    "head_object": "HEAD",
    "put_object": "PUT",
    "delete_object": "DELETE",
    "delete_objects": "DELETE",
    "copy_object": "COPY",
    "list_objects_v2": "LIST",
    "list_multipart_uploads": "LIST uploads",
    "create_multipart_upload": "upload start",
    "upload_part": "part upload",
    "complete_multipart_upload": "upload completion",
    "abort_multipart_upload": "upload abort",
}
#: requests S3 may take long to answer while it keeps the connection alive (whitespace until done)
_SLOW = {"copy_object", "upload_part_copy", "complete_multipart_upload"}


class PatientS3FileSystem(S3FileSystem):  # type: ignore[misc]  # s3fs has no type hints
    """An `S3FileSystem` with one bounded, talkative retry loop (see `storage.patience`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        endpoint = self.endpoint_url or self.client_kwargs.get("endpoint_url") or "S3"
        self.patience = Patience(str(endpoint), s3_timeout())

    async def _call_s3(self, method: str, *akwarglist: Any, **kwargs: Any) -> Any:
        await self.set_session()
        s3 = await self.get_s3(kwargs.get("Bucket"))
        fn = getattr(s3, method)
        params = self._get_s3_method_kwargs(fn, *akwarglist, **kwargs)
        body = params.get("Body")
        rewind = body.tell() if isinstance(body, io.IOBase) and body.seekable() else None

        async def once() -> Any:
            # fresh parameters, and a stream body rewound: a retry sends the whole body again
            if rewind is not None:
                body.seek(rewind)
            try:
                return await fn(**dict(params))
            except ClientError as e:
                raise translate_boto_error(e) from e

        what = f"S3 {_VERBS.get(method, method)} of {_where(kwargs)}"
        size = len(body) if isinstance(body, bytes | bytearray | memoryview) else 0
        return await self.patience.call(once, what, body=size, limited=method not in _SLOW)


def _where(kwargs: dict[str, Any]) -> str:
    key = kwargs.get("Key") or kwargs.get("Prefix") or ""
    return f"s3://{kwargs.get('Bucket', '')}/{key}".rstrip("/")


def s3_filesystem(url: str, options: dict[str, Any]) -> tuple[PatientS3FileSystem, str]:
    """The filesystem and path of an ``s3://`` URL, as ``fsspec.url_to_fs`` would make them, with
    the bound of ``$ARTIFACTS_S3_TIMEOUT`` on every request."""
    kwargs = PatientS3FileSystem._get_kwargs_from_urls(url)
    kwargs.update(options)
    kwargs["config_kwargs"] = botocore_config(kwargs, s3_timeout())
    fs = PatientS3FileSystem(**kwargs)
    return fs, fs._strip_protocol(url)
