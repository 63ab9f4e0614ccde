"""Downloads of blobs to local files, verified before the file appears under its name."""

from __future__ import annotations

import contextlib
import os
import uuid
from typing import TYPE_CHECKING

from .errors import IntegrityError, NotFoundError
from .hashing import hash_file
from .quarantine import missing_error
from .streams import copy_file_hashing, copy_hashing

if TYPE_CHECKING:
    from fsspec.callbacks import Callback

    from .blobs import BlobStore

__all__ = ["get_file", "tmp_beside"]


def get_file(
    blobs: BlobStore,
    digest: str,
    dest: str | os.PathLike[str],
    *,
    verify: bool = True,
    callback: Callback | None = None,
) -> None:
    """Write the blob to ``dest`` via a temp file beside it; ``dest`` appears only if verified.

    With OS paths the kernel copies while the copy is hashed; otherwise the backend downloads and the
    file is hashed after (a blob missing there may be in gc's trash: it is put back and fetched).
    """
    dest = os.fspath(dest)
    from .progress import as_callback  # fsspec: loaded where bytes move

    cb = as_callback(callback)
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    tmp = tmp_beside(dest)
    try:
        if blobs.root.os_paths:
            try:
                f = open(blobs.root.local(blobs.relpath(digest)), "rb", buffering=0)  # noqa: SIM115
            except FileNotFoundError:
                raise missing_error(blobs.root, digest) from None
            with f, open(tmp, "w+b", buffering=0) as out:
                got = copy_file_hashing(f.fileno(), out.fileno(), cb)
                actual, _ = got if got is not None else copy_hashing(f, out, cb)
        else:
            for attempt in range(2):
                try:
                    blobs.root.download(blobs.relpath(digest), tmp, cb)
                    break
                except NotFoundError:
                    if attempt or not blobs._restored(digest):
                        raise missing_error(blobs.root, digest) from None
            actual = None
            if verify:
                with open(tmp, "rb", buffering=0) as f:
                    actual, _ = hash_file(f)
        if verify and actual != digest:
            raise IntegrityError(
                f"blob {digest} is corrupt: its content hashes to {actual} ({blobs.root.url}); "
                "verify the store"
            )
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def tmp_beside(dest: str) -> str:
    """The temp name a download writes before renaming over ``dest`` (``.<name>.tmp-<12 hex>``: a
    killed get's leftovers are recognised by it, see `artifacts.cache`)."""
    parent, name = os.path.split(os.path.abspath(dest))
    return os.path.join(parent, f".{name}.tmp-{uuid.uuid4().hex[:12]}")
