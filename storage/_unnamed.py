"""Small local blobs written unnamed and linked under their digest: one ``open``, ``write`` and
``linkat`` per blob, where the named temp file cost a create, a link and an unlink (its directory
entries were most of a 20k-file put).

Linux's ``O_TMPFILE`` opens a file with no name in the store's ``tmp/`` (same filesystem as
``blobs/``); once every byte is written (and fsync-ed, when the store asks for it) the file gets its
digest's name with ``linkat`` through ``/proc/self/fd``. Until then it has no name at all, so a
process killed mid-put leaves nothing behind, not even a temp file for ``clean_tmp``.

Where that is missing (other OSes, filesystems without ``O_TMPFILE`` such as tmpfs on old kernels or
network mounts, no ``/proc``, no hard links) a probe says so once per ``tmp/`` directory and process,
and the caller takes the named temp file (`storage._localput.put_local_bytes`).
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import TYPE_CHECKING

from ._tmpname import unique
from .errors import disk_full_errors

if TYPE_CHECKING:
    from .blobs import BlobStore

__all__ = ["available", "put_unnamed"]

_PROBED: dict[str, bool] = {}
_LOCK = threading.Lock()
_ROOT_FD: list[int] = []  # a directory fd: makes ``os.link`` call ``linkat(AT_SYMLINK_FOLLOW)``


def _flags() -> int | None:
    tmpfile = getattr(os, "O_TMPFILE", None)
    return None if tmpfile is None else os.O_WRONLY | tmpfile | getattr(os, "O_CLOEXEC", 0)


def _root_fd() -> int:
    """An fd of ``/``: with a ``src_dir_fd`` ``os.link`` calls ``linkat`` with
    ``AT_SYMLINK_FOLLOW`` (plain ``link`` would link the ``/proc`` symlink itself and fail with
    EXDEV); the source path is absolute, so which directory it is does not matter."""
    with _LOCK:
        if not _ROOT_FD:
            _ROOT_FD.append(os.open("/", os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)))
        return _ROOT_FD[0]


def _link(fd: int, target: str) -> None:
    os.link(f"/proc/self/fd/{fd}", target, src_dir_fd=_root_fd())


def available(tmp_dir: str) -> bool:
    """True if unnamed files can be created in ``tmp_dir`` and linked by name (probed once: an
    empty unnamed file is linked under a probe name there and removed)."""
    got = _PROBED.get(tmp_dir)
    if got is None:
        got = _probe(tmp_dir)
        _PROBED[tmp_dir] = got
    return got


def _probe(tmp_dir: str) -> bool:
    flags = _flags()
    if flags is None:
        return False
    probe = os.path.join(tmp_dir, f"{os.getpid()}-{threading.get_ident()}-probe")
    try:
        fd = os.open(tmp_dir, flags, 0o666)
    except OSError:  # EISDIR (kernel without it), EOPNOTSUPP (filesystem without it), ...
        return False
    try:
        _link(fd, probe)
    except OSError:  # no /proc, no hard links
        return False
    finally:
        os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(probe)
    return True


def put_unnamed(
    blobs: BlobStore, data: bytes | memoryview, digest: str, tmp_dir: str, target: str
) -> bool:
    """Write ``data`` (whose digest is ``digest``) unnamed in ``tmp_dir`` and link it as
    ``target``; False if a blob of that size was there already (freshened, as a dedup hit is),
    True if ours was published (also over a damaged one of another size)."""
    from ._localput import freshen_local  # (its module imports this one)

    flags = _flags()
    assert flags is not None  # `available` said so
    with disk_full_errors(f"store blob {digest}", blobs.root.url):
        fd = os.open(tmp_dir, flags, 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if blobs.fsync:
                os.fsync(fd)
            for _ in range(3):
                try:
                    _link(fd, target)
                    return True
                except FileExistsError:
                    state = freshen_local(target, len(data))
                    if state is None:  # swept by gc just now: link ours after all
                        continue
                    if state:
                        return False
                    _replace(fd, tmp_dir, target)  # a damaged blob never satisfies dedup
                    return True
            _replace(fd, tmp_dir, target)
            return True
        finally:
            os.close(fd)


def _replace(fd: int, tmp_dir: str, target: str) -> None:
    """Put the unnamed file over ``target`` atomically: linked under a temp name, then renamed."""
    tmp = os.path.join(tmp_dir, unique())
    _link(fd, tmp)
    try:
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
