"""`MemoryRoot`: a store in fsspec's process-wide memory filesystem (tests, throwaway stores).

memory:// hands every opener the same file object (one shared position), so each reader gets its own
snapshot; it has no multipart uploads and no modification times worth refreshing.
"""

from __future__ import annotations

import io
import threading
from typing import IO, TYPE_CHECKING, ClassVar

import fsspec
from fsspec.implementations.memory import MemoryFileSystem

from .backend import Root, backend_errors
from .errors import ConflictError

if TYPE_CHECKING:
    from fsspec.callbacks import Callback

__all__ = ["MemoryRoot"]


class MemoryRoot(Root):
    mtime_slack: ClassVar[float] = 1.0
    _lock = threading.Lock()  # exclusive creates of all memory roots (one filesystem per process)

    @staticmethod
    def serves(fs: fsspec.AbstractFileSystem) -> bool:
        return isinstance(fs, MemoryFileSystem)

    def create_exclusive(self, rel: str, data: bytes) -> None:
        target = self.full(rel)
        with backend_errors(f"create {rel}", self.url), MemoryRoot._lock:
            if self.fs.exists(target):
                raise ConflictError(f"{target} already exists")
            self.fs.pipe_file(target, data)

    def open_read(self, rel: str) -> IO[bytes]:
        return io.BytesIO(self.read(rel))

    def upload_file(self, local_path: str, rel: str, callback: Callback) -> None:
        with open(local_path, "rb") as f:
            data = f.read()
        self.create_exclusive(rel, data)
        callback.relative_update(len(data))

    def download(self, rel: str, local_path: str, callback: Callback) -> None:
        data = self.read(rel)
        with open(local_path, "wb") as f:
            f.write(data)
        callback.relative_update(len(data))

    def check_reachable(self, *, create: bool = True) -> None:
        """Always reachable: it lives in this process."""
