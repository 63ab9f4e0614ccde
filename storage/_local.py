"""`LocalRoot`: a store on local disk. Objects are OS files, so blobs are published by link/rename,
copied by the kernel and memory-mapped, and reads go to the OS without an fsspec wrapper."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from typing import IO, TYPE_CHECKING, Any, ClassVar

from ._tmpname import unique
from .backend import Root, backend_errors
from .errors import BackendError, ConflictError

if TYPE_CHECKING:
    import fsspec
    from fsspec.callbacks import Callback

__all__ = ["LocalRoot"]


class LocalRoot(Root):
    os_paths: ClassVar[bool] = True

    def __init__(self, fs: fsspec.AbstractFileSystem | None, path: str, url: str) -> None:
        """``fs`` None: fsspec's local filesystem is made when a call first needs it (most calls
        here use the OS directly), so opening a local store does not import fsspec."""
        self._fs = fs
        self.path, self.url = path, url

    @property  # type: ignore[override]
    def fs(self) -> fsspec.AbstractFileSystem:
        if self._fs is None:
            from fsspec.implementations.local import LocalFileSystem

            self._fs = LocalFileSystem()
        return self._fs

    @staticmethod
    def serves(fs: fsspec.AbstractFileSystem) -> bool:
        from fsspec.implementations.local import LocalFileSystem

        return isinstance(fs, LocalFileSystem)

    def local(self, rel: str) -> str:
        return self.full(rel)

    def location(self) -> dict[str, str]:
        """The real path: two spellings of one directory share an index."""
        return {"path": os.path.realpath(self.path)}

    def create_exclusive(self, rel: str, data: bytes) -> None:
        """A temp file, fsync, then ``os.link`` (which fails if the name exists): all or nothing.

        The directory is synced last, so the new name (a commit, once this returns) survives a power
        loss, and with it, on a journalling filesystem, the names of the blobs published before it
        (0.6 ms here)."""
        target = self.full(rel)
        with backend_errors(f"create {rel}", self.url):
            if os.path.exists(target):  # lost already: skip the temp file and its fsync
                raise ConflictError(f"{target} already exists")
            directory = os.path.dirname(target)
            os.makedirs(directory, exist_ok=True)
            tmp = os.path.join(directory, f".tmp-{unique()}")
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
            _fsync_dir(directory)

    def read(self, rel: str, limit: int | None = None) -> bytes:
        with backend_errors(f"read {rel}", self.url):
            return _read(self.full(rel), limit)

    def read_many(self, rels: list[str], limit: int | None = None) -> dict[str, bytes]:
        out = {}
        with backend_errors("read log entries", self.url):
            for r in rels:
                try:
                    out[r] = _read(self.full(r), limit)
                except FileNotFoundError:
                    continue  # (a try is cheaper than contextlib.suppress, per entry)
        return out

    def write(self, rel: str, data: bytes) -> None:
        with backend_errors(f"write {rel}", self.url):
            os.makedirs(os.path.dirname(self.full(rel)), exist_ok=True)
            self.fs.pipe_file(self.full(rel), data)

    def exists(self, rel: str) -> bool:
        with backend_errors(f"check {rel}", self.url):
            return os.path.exists(self.full(rel))

    def move(self, src: str, dst: str) -> bool:
        """One rename (atomic)."""
        with backend_errors(f"move {src}", self.url):
            os.makedirs(os.path.dirname(self.full(dst)), exist_ok=True)
            try:
                os.replace(self.full(src), self.full(dst))
            except FileNotFoundError:
                return False
        return True

    def touch(self, rel: str) -> bool:
        try:
            os.utime(self.full(rel))
        except FileNotFoundError:
            return False
        except PermissionError:  # another user's file on a shared disk
            return os.path.exists(self.full(rel))
        return True

    def listdir(self, rel: str) -> list[dict[str, Any]]:
        with backend_errors(f"list {rel}", self.url):
            try:
                return list(self.fs.ls(self.full(rel), detail=True))
            except FileNotFoundError:
                return []

    def _names(self, rel: str) -> list[str]:
        return os.listdir(self.full(rel))

    def open_read(self, rel: str) -> IO[bytes]:
        """The OS file itself: no fsspec wrapper in the read loop."""
        with backend_errors(f"open {rel}", self.url):
            return open(self.full(rel), "rb")  # noqa: SIM115 - returned to the caller

    def upload_file(self, local_path: str, rel: str, callback: Callback) -> None:
        target = self.full(rel)
        with backend_errors(f"upload {local_path}", self.url):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            try:
                os.link(local_path, target)
            except FileExistsError:
                raise ConflictError(f"{target} already exists") from None
        callback.relative_update(os.path.getsize(target))

    def download(self, rel: str, local_path: str, callback: Callback) -> None:
        with backend_errors(f"download {rel}", self.url):
            shutil.copyfile(self.full(rel), local_path)
        callback.relative_update(os.path.getsize(local_path))

    def check_reachable(self, *, create: bool = True) -> None:
        with backend_errors("open store", self.url):
            if create:
                os.makedirs(self.path, exist_ok=True)
            if os.path.exists(self.path) and not os.path.isdir(self.path):
                raise BackendError(f"store root {self.path} is not a directory")


def _read(path: str, limit: int | None) -> bytes:
    """All of the file, or with ``limit`` its first ``limit + 1`` bytes at most (see `Root.read`):
    its size from one fstat, then reads of that much (at most the bound) straight into one buffer,
    without the file object a whole read makes (`read_many` of 2,000 entries of 3 KB: 15 us each,
    against 24 before, at load 4.4 on 2 cores)."""
    if limit is None:
        with open(path, "rb") as f:
            return f.read()
    fd = os.open(path, os.O_RDONLY)
    try:
        want = min(os.fstat(fd).st_size, limit + 1)
        data = os.read(fd, want) if want else b""
        while len(data) < want and (more := os.read(fd, want - len(data))):
            data += more
        return data
    finally:
        os.close(fd)


def _fsync_dir(directory: str) -> None:
    """Make the names in ``directory`` durable (where the OS can open a directory to sync it)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.EBADF):  # not syncable here (some filesystems)
            raise
    finally:
        os.close(fd)
