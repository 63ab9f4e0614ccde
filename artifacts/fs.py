"""`ArtifactsFileSystem`: a read-only fsspec view of every version in a store (protocol ``artifacts``).

A path is a version reference followed by a path inside that version::

    model:best/weights.json        dataset:v2/        dataset:latest/train/part-0.csv       dataset/train.csv

The first segment is any ref the catalog accepts (``name``, ``name:latest``, ``name:vN``,
``name:<alias>``); directories below it are derived from the '/'-separated paths of the version's
manifest. The top level (``""``) lists one directory per live version, named canonically ``name:vN``;
aliases are not listed there (they would show every file twice) but can be addressed directly.

    fs = fsspec.filesystem("artifacts", store="s3://bucket/store", storage_options={...})
    with fsspec.open("artifacts://model:best/weights.json", store=store) as f: ...
    pandas.read_csv("artifacts://dataset:latest/train.csv", storage_options={"store": url})

Every write (open for writing, mkdir, rm, pipe, put, copy, move, touch) raises `PermissionError` (our
`PermissionDeniedError`): versions are immutable, and new ones are logged through the catalog.

Reads are verified: a whole-file read (``cat_file``, ``get_file``, or reading an opened file from start
to end) re-hashes the bytes and raises `IntegrityError` on a mismatch; a partial range cannot be checked.
A ref is resolved again after ``ref_ttl`` seconds (default 5), so an alias that moves is followed
without a log probe on every call; ``invalidate_cache()`` forces it.
"""

from __future__ import annotations

import datetime as _dt
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, ClassVar

from fsspec.callbacks import DEFAULT_CALLBACK, Callback
from fsspec.spec import AbstractBufferedFile, AbstractFileSystem, _Cached

from storage.hashing import Hasher

from .errors import IntegrityError, InvalidNameError, NotFoundError, PermissionDeniedError
from .manifest import FileEntry
from .store import Store, default_user, open_store
from .version import ArtifactVersion

__all__ = ["ArtifactsFile", "ArtifactsFileSystem"]

_TREE_CACHE = 64  # versions whose directory trees are kept per filesystem instance


class _StoreAwareCache(_Cached):
    """fsspec caches instances by their constructor arguments; make that cache key mean something.

    A store URL is normalized (a relative path made absolute, the default filled in) and the user
    resolved, so ``store=None`` today and after ``cd`` do not share an instance. A `Store` object is
    the caller's own: it is wrapped afresh every time instead of being cached under its repr.
    """

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        store = kwargs.pop("store", args[0] if args else None)
        args = args[1:]
        if isinstance(store, Store):
            kwargs["skip_instance_cache"] = True
        else:
            url = os.fspath(store) if store is not None else None
            url = url or os.environ.get("ARTIFACTS_STORE") or "./.artifacts"
            if "://" not in url:
                url = os.path.abspath(os.path.expanduser(url))
            store = url
            kwargs["user"] = kwargs.get("user") or default_user()
        return super().__call__(*args, store=store, **kwargs)


@dataclass(frozen=True)
class _Tree:
    """One version's manifest as a directory tree: files by path, and each directory's children."""

    files: dict[str, FileEntry]
    children: dict[str, list[str]]  # "" is the version's top; names are full inner paths

    @classmethod
    def build(cls, entries: list[FileEntry]) -> _Tree:
        files = {f.path: f for f in entries}
        kids: dict[str, set[str]] = {"": set()}
        for path in files:
            parts = path.split("/")
            for i in range(len(parts)):
                parent = "/".join(parts[:i])
                kids.setdefault(parent, set()).add("/".join(parts[: i + 1]))
        return cls(files, {d: sorted(c) for d, c in kids.items()})


class ArtifactsFileSystem(AbstractFileSystem, metaclass=_StoreAwareCache):
    """Read-only view of a store: ``<ref>/<path>`` for every version; see the module docstring.

    ``store`` is a `Store` or a store URL (default ``$ARTIFACTS_STORE``, else ``./.artifacts``);
    ``storage_options`` and ``user`` are passed to `open_store` when a URL is given.
    """

    protocol: ClassVar[str | tuple[str, ...]] = "artifacts"
    root_marker = ""
    async_impl = False

    def __init__(
        self,
        store: Store | str | None = None,
        *,
        storage_options: dict[str, Any] | None = None,
        user: str | None = None,
        ref_ttl: float = 5.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(store, Store):
            self.store = store
        else:
            self.store = open_store(store, user=user, storage_options=storage_options)
        self.ref_ttl = float(ref_ttl)
        self._lock = threading.Lock()
        self._refs: dict[str, tuple[float, ArtifactVersion]] = {}
        self._trees: OrderedDict[str, _Tree] = OrderedDict()

    def __repr__(self) -> str:
        return f"ArtifactsFileSystem({self.store.url!r})"

    # -- paths and resolution ----------------------------------------------------------------------
    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = os.fspath(path) if not isinstance(path, str) else path
        for prefix in ("artifacts://", "artifacts::"):
            if path.startswith(prefix):
                path = path[len(prefix) :]
        return path.strip("/")

    def unstrip_protocol(self, name: str) -> str:
        return f"artifacts://{self._strip_protocol(name)}"

    def _split(self, path: str) -> tuple[str, str]:
        ref, _, inner = self._strip_protocol(path).partition("/")
        return ref, inner

    def invalidate_cache(self, path: str | None = None) -> None:
        """Forget resolved refs (an alias may have moved); version trees are immutable and stay."""
        with self._lock:
            if path is None:
                self._refs.clear()
            else:
                self._refs.pop(self._split(path)[0], None)

    def _version(self, ref: str) -> ArtifactVersion:
        now = time.monotonic()
        with self._lock:
            hit = self._refs.get(ref)
        if hit is not None and now - hit[0] < self.ref_ttl:
            return hit[1]
        try:
            v = self.store.artifact(ref)
        except (NotFoundError, InvalidNameError) as e:
            raise FileNotFoundError(f"{ref}: {e}") from None
        with self._lock:
            self._refs[ref] = (now, v)
        return v

    def _tree(self, v: ArtifactVersion) -> _Tree:
        with self._lock:
            tree = self._trees.get(v.digest)
            if tree is not None:
                self._trees.move_to_end(v.digest)
                return tree
        tree = _Tree.build(v.files())
        with self._lock:
            self._trees[v.digest] = tree
            while len(self._trees) > _TREE_CACHE:
                self._trees.popitem(last=False)
        return tree

    def _file(self, path: str) -> tuple[ArtifactVersion, FileEntry]:
        ref, inner = self._split(path)
        if not ref:
            raise IsADirectoryError(f"{path!r} is the top of the store, not a file")
        v = self._version(ref)
        tree = self._tree(v)
        f = tree.files.get(inner)
        if f is None:
            if inner in tree.children:
                raise IsADirectoryError(f"{self._strip_protocol(path)} is a directory")
            raise FileNotFoundError(f"{ref} ({v.ref}) has no file {inner!r}")
        return v, f

    # -- listing -----------------------------------------------------------------------------------
    @staticmethod
    def _dir_info(name: str, v: ArtifactVersion | None = None, top: bool = False) -> dict[str, Any]:
        info: dict[str, Any] = {"name": name, "size": 0, "type": "directory"}
        if v is not None:
            info["ref"] = v.ref
            if top:
                info.update(digest=v.digest, artifact_type=v.type, created=v.created_at)
        return info

    @staticmethod
    def _file_info(name: str, v: ArtifactVersion, f: FileEntry) -> dict[str, Any]:
        info: dict[str, Any] = {
            "name": name,
            "size": f.size,
            "type": "file",
            "digest": f.digest,
            "ref": v.ref,
            "created": v.created_at,
        }
        if f.meta:
            info["meta"] = dict(f.meta)
        return info

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        ref, inner = self._split(path)
        if not ref:
            return self._dir_info("")
        v = self._version(ref)
        tree = self._tree(v)
        if not inner:
            return self._dir_info(ref, v, top=True)
        if inner in tree.files:
            return self._file_info(f"{ref}/{inner}", v, tree.files[inner])
        if inner in tree.children:
            return self._dir_info(f"{ref}/{inner}", v)
        raise FileNotFoundError(f"{ref} ({v.ref}) has no file or directory {inner!r}")

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        ref, inner = self._split(path)
        if not ref:
            out = [
                self._dir_info(v.ref, v, top=True)
                for a in self.store.artifacts()
                for v in self.store.versions(a.name)
            ]
        else:
            v = self._version(ref)
            tree = self._tree(v)
            if inner in tree.files:
                out = [self._file_info(f"{ref}/{inner}", v, tree.files[inner])]
            elif inner in tree.children:
                out = [
                    self._file_info(f"{ref}/{c}", v, tree.files[c])
                    if c in tree.files
                    else self._dir_info(f"{ref}/{c}", v)
                    for c in tree.children[inner]
                ]
            else:
                raise FileNotFoundError(f"{ref} ({v.ref}) has no file or directory {inner!r}")
        return out if detail else [e["name"] for e in out]

    def ukey(self, path: str) -> str:
        """The content's BLAKE3 digest for a file (content-addressed, so a perfect cache key)."""
        info = self.info(path)
        return info.get("digest") or super().ukey(path)

    def checksum(self, path: str) -> int:
        return int(self.ukey(path)[:16], 16)

    def created(self, path: str) -> _dt.datetime:
        ref, _ = self._split(path)
        if not ref:
            raise FileNotFoundError("the top of the store has no creation time")
        return _dt.datetime.fromisoformat(self._version(ref).created_at)

    def modified(self, path: str) -> _dt.datetime:
        return self.created(path)  # versions are immutable

    # -- reading -----------------------------------------------------------------------------------
    def _read_range(self, digest: str, start: int, end: int) -> bytes:
        """A part of a blob, through the blob store (its errors, its trash recovery)."""
        return self.store.blobs.read_range(digest, start, end)

    def cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        _, f = self._file(path)
        lo, hi = _bounds(start, end, f.size)
        if lo == 0 and hi == f.size:
            return self.store.blobs.read_bytes(f.digest, size=f.size)  # whole file: verified
        if lo >= hi:
            return b""
        return self._read_range(f.digest, lo, hi)

    def get_file(
        self,
        rpath: str,
        lpath: Any,
        callback: Callback = DEFAULT_CALLBACK,
        outfile: Any = None,
        **kwargs: Any,
    ) -> None:
        """Download one file, verified; ``lpath`` appears only once its content checks out."""
        if self.isdir(rpath):
            if outfile is None:
                os.makedirs(lpath, exist_ok=True)
            return
        _, f = self._file(rpath)
        callback.set_size(f.size)
        if outfile is not None:
            outfile.write(self.store.blobs.read_bytes(f.digest, size=f.size))
            callback.relative_update(f.size)
            return
        self.store.blobs.get_file(f.digest, os.fspath(lpath), callback=callback)

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> ArtifactsFile:
        if mode != "rb":
            self._refuse(f"open {path!r} with mode {mode!r}")
        v, f = self._file(path)
        return ArtifactsFile(
            self,
            f"{self._split(path)[0]}/{f.path}",
            entry=f,
            block_size=block_size if block_size is not None else "default",
            cache_options=cache_options,
            **kwargs,
        )

    # -- writes are refused ------------------------------------------------------------------------
    def _refuse(self, what: str) -> None:
        raise PermissionDeniedError(
            f"cannot {what}: the artifacts filesystem is read-only; log a new version instead "
            "(`artifacts put` or Store.log_artifact)"
        )

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        self._refuse(f"create directory {path!r}")

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        self._refuse(f"create directory {path!r}")

    def rmdir(self, path: str) -> None:
        self._refuse(f"remove {path!r}")

    def rm_file(self, path: str) -> None:
        self._refuse(f"remove {path!r}")

    def _rm(self, path: str) -> None:
        self._refuse(f"remove {path!r}")

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        self._refuse(f"remove {path!r}")

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        self._refuse(f"write {path!r}")

    def pipe(self, path: Any, value: Any = None, **kwargs: Any) -> None:
        self._refuse(f"write {path!r}")

    def put_file(self, lpath: Any, rpath: str, *args: Any, **kwargs: Any) -> None:
        self._refuse(f"upload to {rpath!r}")

    def put(self, lpath: Any, rpath: Any, *args: Any, **kwargs: Any) -> None:
        self._refuse(f"upload to {rpath!r}")

    def touch(self, path: str, truncate: bool = True, **kwargs: Any) -> None:
        self._refuse(f"create {path!r}")

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        self._refuse(f"copy to {path2!r}")

    def copy(self, path1: Any, path2: Any, *args: Any, **kwargs: Any) -> None:
        self._refuse(f"copy to {path2!r}")

    def mv(self, path1: Any, path2: Any, *args: Any, **kwargs: Any) -> None:
        self._refuse(f"move {path1!r}")

    def setxattrs(self, path: str, **kwargs: Any) -> None:
        self._refuse(f"set attributes of {path!r}")


class ArtifactsFile(AbstractBufferedFile):
    """A read-only file of one version, fetched by byte range from its blob.

    Ranges read in order from the start are hashed as they arrive; when the last byte is in, the digest
    is compared and a mismatch raises `IntegrityError`. Any jump forward turns the check off.
    """

    def __init__(self, fs: ArtifactsFileSystem, path: str, *, entry: FileEntry, **kwargs: Any):
        self.entry = entry
        self._hasher: Hasher | None = Hasher()
        self._hashed = 0
        super().__init__(fs, path, mode="rb", size=entry.size, **kwargs)

    def _fetch_range(self, start: int, end: int) -> bytes:
        end = min(end, self.entry.size)
        if start >= end:
            return b""
        data = self.fs._read_range(self.entry.digest, start, end)
        self._check(start, data)
        return data

    def _check(self, start: int, data: bytes) -> None:
        if self._hasher is None:
            return
        if start > self._hashed:
            self._hasher = None  # a gap: this reader will never see every byte in order
            return
        new = data[self._hashed - start :]
        if new:
            self._hasher.update(new)
            self._hashed += len(new)
        if self._hashed >= self.entry.size:
            actual = self._hasher.hexdigest()
            self._hasher = None
            if actual != self.entry.digest:
                raise IntegrityError(
                    f"blob {self.entry.digest} ({self.path}) is corrupt: its content hashes to "
                    f"{actual}; run `artifacts verify`"
                )


def _bounds(start: int | None, end: int | None, size: int) -> tuple[int, int]:
    """fsspec range semantics: None means the edge, negative counts from the end, clamp to size."""
    lo = 0 if start is None else (max(size + start, 0) if start < 0 else min(start, size))
    hi = size if end is None else (max(size + end, 0) if end < 0 else min(end, size))
    return lo, hi
