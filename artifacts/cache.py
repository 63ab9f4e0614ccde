"""Checkouts of versions: the bounded per-user download cache, linked checkouts, and safe re-runs.

The cache (``<cache dir>/files``) holds one folder per version, named by its manifest digest:

- ``<digest>/``: the files, read-only, complete and verified. A folder is built as
  ``<digest>.tmp-<pid>-<random>`` and renamed into place only when every file is written and verified,
  then ``<digest>.json`` (its size) is written: a folder is used only when that marker is there. A
  download killed half-way leaves a temp folder (never a folder under the final name), and the next
  download of that version removes it and starts over.
- ``<digest>.building``: the size a process building the entry reserved, written under the cache's
  global lock together with the eviction that made room for it, so two processes building at once
  both count each other's bytes (the bound holds with several downloaders). It counts only while its
  builder holds ``<digest>.lock``; one a killed builder left behind is removed by the next eviction.
- ``<digest>.lock``: a process building the entry holds it exclusively; a process that got the folder
  from `Version.download()` holds it shared for as long as it runs (the README flow reads the files
  after ``download()`` returns). Eviction takes it exclusively without waiting, so it never removes a
  folder an open process is using. Whatever else takes it without waiting (the in-use probe of
  `DownloadCache.info`) or lets go of it for a moment (a builder's exclusive-to-shared switch, which
  flock does not make atomic) does so under the global lock, where no eviction runs: otherwise an
  evictor would keep an unused entry (and overrun the bound) or remove a just-built one.

The cache has a size bound (``artifacts cache --max-size``, stored in ``config.json``, or
``$ARTIFACTS_CACHE_MAX_SIZE`` in bytes; 20 GB by default): before an entry is built, least recently
used entries (by marker mtime, refreshed on every use) are evicted until it fits.

Checkouts into a directory of the user's choosing (`checkout`) copy each file through a temp file beside
it (never a partial file under its final name), or with ``link=True`` hard-link it from the local
store's blob or the cache entry, made read-only so a write into the checkout cannot change the store;
a link that the filesystem refuses (another device) falls back to a verified copy. A re-run into the
folder a killed get left behind removes its temp files and fetches only what is missing.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import posixpath
import re
import shutil
import stat
import threading
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storage import default_cache_dir
from storage.gcpause import gc_paused

from .bounds import check_int
from .errors import ArtifactsError, ConflictError, InvalidPathError, InvalidValueError
from .names import check_depth, check_path

if TYPE_CHECKING:
    from fsspec.callbacks import Callback

    from .manifest import FileEntry
    from .version import ArtifactVersion

__all__ = ["CacheEntry", "CacheInfo", "DownloadCache", "checkout"]

DEFAULT_MAX_SIZE = 20 * 10**9
_TMP_FILE = re.compile(r"\.(?P<name>.+)\.tmp-[0-9a-f]{12}")
_READ_ONLY = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
#: lock files this process holds shared on the entries it handed out (released at exit)
_HELD: dict[str, int] = {}
_HELD_LOCK = threading.Lock()


def _flock(fd: int, how: int) -> bool:
    import fcntl

    try:
        fcntl.flock(fd, how)
        return True
    except BlockingIOError:
        return False


@dataclass(frozen=True)
class CacheEntry:
    digest: str
    size: int
    last_used: float
    in_use: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


@dataclass(frozen=True)
class CacheInfo:
    path: str
    max_size: int
    size: int
    entries: tuple[CacheEntry, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "max_size": self.max_size,
            "size": self.size,
            "entries": [e.to_dict() for e in self.entries],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


class DownloadCache:
    """The per-user cache of version checkouts (see module)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_cache_dir() / "files"

    # -- configuration ---------------------------------------------------------------------------
    @property
    def max_size(self) -> int:
        env = os.environ.get("ARTIFACTS_CACHE_MAX_SIZE")
        if env:
            try:
                return max(0, int(env))
            except ValueError:
                raise InvalidValueError(
                    f"$ARTIFACTS_CACHE_MAX_SIZE must be a number of bytes, not {env!r}"
                ) from None
        try:
            value = json.loads((self.path / "config.json").read_text())["max_size"]
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                return value
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return DEFAULT_MAX_SIZE

    def set_max_size(self, nbytes: int) -> None:
        check_int(nbytes, "the cache size (a number of bytes)")
        self.path.mkdir(parents=True, exist_ok=True)
        _write_atomic(self.path / "config.json", json.dumps({"max_size": nbytes}))
        with self._global():
            self._evict_locked(0)

    # -- listing and eviction --------------------------------------------------------------------
    def info(self) -> CacheInfo:
        """The entries and whether each is in use, probed under the cache's lock: a probe takes the
        entry's lock for a moment, and an evictor meeting it would take the entry for one in use and
        keep it (so listing the cache beside a download let the cache outgrow its bound)."""
        entries = []
        with self._global() if self.path.is_dir() else contextlib.nullcontext():
            for digest, size, used in self._entries():
                entries.append(CacheEntry(digest, size, used, self._in_use(digest)))
        return CacheInfo(
            str(self.path), self.max_size, sum(e.size for e in entries), tuple(entries)
        )

    def _entries(self) -> list[tuple[str, int, float]]:
        out = []
        for marker in self.path.glob("*.json") if self.path.is_dir() else []:
            if marker.name == "config.json":
                continue
            try:
                size = int(json.loads(marker.read_text())["size"])
                out.append((marker.stem, size, marker.stat().st_mtime))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return sorted(out, key=lambda e: e[2])

    def _in_use(self, digest: str) -> bool:
        if digest in _HELD:
            return True
        try:
            fd = os.open(self.path / f"{digest}.lock", os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            return not _flock(fd, _ex_nb())
        finally:
            os.close(fd)

    def prune(self) -> int:
        """Evict every entry no process is using; returns the bytes freed."""
        with self._global():
            return self._evict_locked(0, everything=True)

    def _global(self) -> contextlib.AbstractContextManager[None]:
        return _file_lock(self.path / ".lock")

    def _reserved(self, exclude: str = "") -> int:
        """Bytes reserved by builds in progress in live processes (a dead builder's are removed)."""
        total = 0
        for mark in self.path.glob("*.building"):
            digest = mark.stem
            if digest == exclude:
                continue
            try:
                size = int(json.loads(mark.read_text())["size"])
            except (OSError, ValueError, KeyError, TypeError):
                size = 0
            if digest in _HELD or self._in_use(digest):
                total += size
            else:
                with contextlib.suppress(FileNotFoundError):
                    mark.unlink()  # its builder is gone
        return total

    def _evict_locked(self, room: int, *, everything: bool = False, building: str = "") -> int:
        """Evict LRU entries nobody uses until ``room`` more bytes fit under the bound, counting
        what other processes' builds in progress have reserved.

        Reservations are counted before the entries: a builder finishes outside the global lock,
        writing its marker and then removing its reservation, so an entry finished between the two
        listings is counted twice (at worst one eviction early), never not at all. Listed the other
        way round, a build finishing between them was missed, and the cache outgrew its bound by
        that entry (the flaky two-downloader test)."""
        reserved = self._reserved(exclude=building)  # first (see above)
        entries = self._entries()
        total = sum(size for _, size, _ in entries) + reserved
        limit = self.max_size - room
        freed = 0
        for digest, size, _ in entries:
            if not everything and total <= limit:
                break
            if digest in _HELD:
                continue
            fd = os.open(self.path / f"{digest}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                if not _flock(fd, _ex_nb()):
                    continue  # an open process is reading it (or building it)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path / f"{digest}.json")  # invalid first, then gone
                _remove_tree(self.path / digest)
                total -= size
                freed += size
            finally:
                os.close(fd)
        return freed

    # -- getting an entry ------------------------------------------------------------------------
    def get(self, version: ArtifactVersion, callback: Callback | None = None) -> Path:
        """The complete, verified cache folder of ``version``, built if needed; held in use by this
        process from now on (never evicted while it runs)."""
        self.path.mkdir(parents=True, exist_ok=True)
        digest = version.digest
        folder, marker = self.path / digest, self.path / f"{digest}.json"
        with _HELD_LOCK:
            if digest in _HELD and marker.exists() and folder.is_dir():
                os.utime(marker)
                return folder
            fd = _HELD.get(digest)
            if fd is None:
                fd = os.open(self.path / f"{digest}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                _flock(fd, _sh())
                if marker.exists() and folder.is_dir():
                    os.utime(marker)
                    _HELD[digest] = fd
                    return folder
                _flock(fd, _ex())  # build it (others wait; an evictor skips it)
                if not (marker.exists() and folder.is_dir()):
                    self._build(version, callback)
                with self._global():  # flock drops EX before taking SH: no evictor in between
                    _flock(fd, _sh())
                _HELD[digest] = fd
                return folder
            except BaseException:
                if _HELD.get(digest) != fd:
                    os.close(fd)
                raise

    def release(self, digest: str) -> None:
        """Tell the cache this process no longer reads the folder of ``digest`` (it may be evicted).

        Long-running processes that download many versions call this when done with one; otherwise
        every folder a process got stays in use until it exits."""
        with _HELD_LOCK:
            fd = _HELD.pop(digest, None)
            if fd is not None:
                os.close(fd)

    def _build(self, version: ArtifactVersion, callback: Callback | None) -> None:
        digest = version.digest
        for stale in self.path.glob(f"{digest}.tmp-*"):  # left by a killed download
            _remove_tree(stale)
        _remove_tree(self.path / digest)  # an old folder without its marker: not trusted
        reservation = self.path / f"{digest}.building"
        with self._global():
            self._evict_locked(version.size, building=digest)
            _write_atomic(reservation, json.dumps({"size": version.size}))
        tmp = self.path / f"{digest}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            try:
                tmp.mkdir()
                checkout(version, tmp, callback=callback, fresh=True)
                for p in tmp.rglob("*"):
                    if p.is_file():
                        os.chmod(p, _READ_ONLY)
                os.rename(tmp, self.path / digest)
            except BaseException:
                _remove_tree(tmp)
                raise
            data = json.dumps({"size": version.size, "files": version.file_count()})
            _write_atomic(self.path / f"{digest}.json", data)  # before the reservation goes
        finally:
            with contextlib.suppress(FileNotFoundError):
                reservation.unlink()


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:12]}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _ex() -> int:
    import fcntl

    return fcntl.LOCK_EX


def _ex_nb() -> int:
    import fcntl

    return fcntl.LOCK_EX | fcntl.LOCK_NB


def _sh() -> int:
    import fcntl

    return fcntl.LOCK_SH


@contextlib.contextmanager
def _file_lock(path: Path) -> Any:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _flock(fd, _ex())
        yield
    finally:
        os.close(fd)


def _remove_tree(path: Path) -> None:
    """Remove a folder of read-only files (or a file); nothing if it is not there."""
    if not os.path.lexists(path):
        return
    if not path.is_dir() or path.is_symlink():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    gone = path.with_name(f"{path.name}.gone-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(path, gone)  # out of sight at once, then removed at leisure
    except FileNotFoundError:
        return
    shutil.rmtree(gone, ignore_errors=True)


# -- checkouts into a destination ----------------------------------------------------------------
def _plan(version: ArtifactVersion, target: Path) -> list[tuple[FileEntry, Path]]:
    """Each file with the path it is written to, all checked before anything is written.

    Paths are checked lexically (`check_path`: relative, no '..'), then what is already on disk is
    resolved once per directory, not once per file: a directory (or a symlink to one) under
    ``target`` that leads outside, or a symlink in the file's place that does, is refused.
    """
    real_dest = os.path.realpath(target)
    inside = real_dest.rstrip(os.sep) + os.sep
    fresh = not os.path.lexists(target)  # nothing on disk can redirect a write into a new folder
    dirs: dict[str, bool] = {}
    plan = []
    for f in version.files():
        check_depth(check_path(f.path), version.ref)  # before realpath recurses through 1,500 levels
        out = target / f.path
        if not fresh:
            parent = posixpath.dirname(f.path)
            ok = dirs.get(parent)
            if ok is None:
                real = os.path.realpath(target / parent) if parent else real_dest
                ok = dirs[parent] = real == real_dest or real.startswith(inside)
            if ok and os.path.islink(out):
                ok = os.path.realpath(out).startswith(inside)
            if not ok:
                raise InvalidPathError(
                    f"refusing to download {version.ref}: {f.path!r} would be written outside "
                    f"{target}"
                )
        plan.append((f, out))
    return plan


def _existing(target: Path, names: set[str]) -> set[str]:
    """Files already in ``target`` (relative paths), after removing temp files a killed get left there
    for files of this version (``.<name>.tmp-<12 hex>`` beside ``<name>``)."""
    found: set[str] = set()
    if not target.is_dir():
        return found
    for dirpath, _, filenames in os.walk(target):
        for fn in filenames:
            full = Path(dirpath, fn)
            rel = full.relative_to(target).as_posix()
            m = _TMP_FILE.fullmatch(fn)
            if m is not None:
                base = full.with_name(m["name"]).relative_to(target).as_posix()
                if base in names:
                    with contextlib.suppress(FileNotFoundError):
                        full.unlink()
                    continue
            found.add(rel)
    return found


def checkout(
    version: ArtifactVersion,
    target: Path,
    *,
    force: bool = False,
    callback: Callback | None = None,
    link: bool = False,
    fresh: bool = False,
) -> Path:
    """Write every file of ``version`` under ``target``, verified (see module).

    A non-empty ``target`` is refused unless it holds only files of this version (a previous get of
    it, complete or killed half-way: then only the missing or wrong files are fetched) or ``force``.
    """
    with gc_paused():  # 20k files: entries, paths, stats (see storage.gcpause)
        return _checkout(version, target, force=force, callback=callback, link=link, fresh=fresh)


def _checkout(
    version: ArtifactVersion,
    target: Path,
    *,
    force: bool,
    callback: Callback | None,
    link: bool,
    fresh: bool,
) -> Path:
    plan = _plan(version, target)
    names = {f.path for f, _ in plan}
    todo = plan
    if not fresh:
        have = _existing(target, names)
        if have and not have <= names and not force:
            raise ConflictError(
                f"{target} exists and is not empty; choose another destination or pass force=True"
            )
        if have:
            todo = _missing(version, plan, have)
    target.mkdir(parents=True, exist_ok=True)
    if not todo:
        return target
    if link:
        todo = _link_all(version, todo, callback)
    if (
        todo
    ):  # each file through a temp file, renamed over whatever (even a read-only link) was there
        version.store.blobs.get_files([(f.digest, out) for f, out in todo], callback=callback)
    return target


def _missing(
    version: ArtifactVersion, plan: list[tuple[FileEntry, Path]], have: set[str]
) -> list[tuple[FileEntry, Path]]:
    """What of ``plan`` is not already in place (``have``: the paths there) with the right content:
    the stat cache asked once for all of them, the rest hashed (`BlobStore.digest_files`)."""
    there = [(f, out) for f, out in plan if f.path in have]
    try:
        digests = version.store.blobs.digest_files([str(out.absolute()) for _, out in there])
    except (OSError, ArtifactsError):  # one changed meanwhile (gone, a directory): one by one
        ok = {f.path for f, out in there if _holds(version, f, out)}
    else:
        ok = {f.path for f, out in there if digests.get(str(out.absolute())) == f.digest}
    return [(f, out) for f, out in plan if f.path not in ok]


def _holds(version: ArtifactVersion, f: FileEntry, out: Path) -> bool:
    try:
        return (
            out.stat().st_size == f.size
            and version.store.blobs.hash_local_file(out)[0] == f.digest
        )
    except OSError:
        return False


def _link_all(
    version: ArtifactVersion, todo: list[tuple[FileEntry, Path]], callback: Callback | None
) -> list[tuple[FileEntry, Path]]:
    """Hard-link what can be linked (read-only, verified); returns what still needs a copy."""
    blobs = version.store.blobs
    sources: dict[str, Path] = {}
    if blobs.local_path(todo[0][0].digest) is None:  # remote store: link from the cache entry
        folder = DownloadCache().get(version, callback)
        sources = {f.digest: folder / f.path for f, _ in todo}
    rest = []
    for f, out in todo:
        src = sources.get(f.digest) or blobs.local_path(f.digest)
        if src is None or not _verified(version, f, src):
            rest.append((f, out))
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(PermissionError):
            os.chmod(src, _READ_ONLY)  # the same inode: the store's blob is read-only too
        tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:12]}")
        try:
            os.link(src, tmp)
            os.replace(tmp, out)
        except OSError as e:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            if e.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
                rest.append((f, out))  # another filesystem: a copy
                continue
            raise
        if os.access(out, os.W_OK) and os.stat(out).st_uid == os.getuid():
            os.chmod(out, _READ_ONLY)
        if callback is not None:
            callback.relative_update(f.size)
    return rest


def _verified(version: ArtifactVersion, f: FileEntry, src: Path) -> bool:
    """A linked file is the store's bytes themselves: link only what hashes to its digest."""
    try:
        return version.store.blobs.hash_local_file(src)[0] == f.digest
    except OSError:
        return False
