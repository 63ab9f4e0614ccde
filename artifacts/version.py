"""`ArtifactVersion`: one committed, immutable version, read through its store."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, BinaryIO

from fsspec.callbacks import Callback

from .errors import IntegrityError, NotFoundError
from .manifest import FileEntry

if TYPE_CHECKING:
    import sqlite3

    from .run import Run
    from .store import Store

__all__ = ["ArtifactVersion"]


@dataclass(frozen=True)
class ArtifactVersion:
    name: str
    type: str
    version: int
    digest: str
    size: int
    aliases: tuple[str, ...]
    metadata: MappingProxyType[str, Any]
    description: str
    user: str
    created_at: str
    run_id: str | None
    _store: Store = field(repr=False, compare=False)
    _id: int = field(repr=False, compare=False)

    @classmethod
    def from_row(cls, store: Store, row: sqlite3.Row) -> ArtifactVersion:
        return cls(
            name=row["name"],
            type=row["type"],
            version=row["version"],
            digest=row["digest"],
            size=row["size"],
            aliases=tuple(store.index.aliases(row["name"], row["version"])),
            metadata=MappingProxyType(json.loads(row["metadata"] or "{}")),
            description=row["description"] or "",
            user=row["user"],
            created_at=row["created_at"],
            run_id=row["run_id"],
            _store=store,
            _id=row["id"],
        )

    @property
    def ref(self) -> str:
        return f"{self.name}:v{self.version}"

    def __str__(self) -> str:
        return self.ref

    # -- content ---------------------------------------------------------------------------------
    def files(self) -> list[FileEntry]:
        return [_entry(r) for r in self._store.index.files(self._id)]

    def file(self, path: str) -> FileEntry:
        row = self._store.index.file(self._id, path)
        if row is None:
            raise NotFoundError(f"{self.ref} has no file {path!r}")
        return _entry(row)

    def read_bytes(self, path: str, *, verify: bool = True) -> bytes:
        return self._store.blobs.read_bytes(self.file(path).digest, verify=verify)

    def open(self, path: str, *, verify: bool = True) -> BinaryIO:
        """A binary stream of one file; a full read with ``verify`` raises on corruption."""
        return self._store.blobs.open(self.file(path).digest, verify=verify)

    def local_blob_path(self, path: str) -> Path | None:
        """The blob's OS path when the store is on local disk (to memory-map it), else None."""
        return self._store.blobs.local_path(self.file(path).digest)

    def download(
        self,
        dest: str | os.PathLike[str] | None = None,
        *,
        force: bool = False,
        callback: Callback | None = None,
        link: bool = False,
    ) -> Path:
        """Write every file under ``dest``, verified; by default into the per-user download cache
        (bounded, see `artifacts.cache`), whose folder stays valid while this process runs.

        Refuses a non-empty ``dest`` unless it holds only files of this version (a previous get, even
        one killed half-way: only what is missing is fetched) or ``force``. Every path is checked before
        anything is written: nothing lands outside ``dest``. ``link`` hard-links files from a local
        store or the cache (read-only) instead of copying, falling back to copies across filesystems.
        """
        from .cache import DownloadCache, checkout

        if dest is None:
            return DownloadCache().get(self, callback)
        return checkout(self, Path(dest), force=force, callback=callback, link=link)

    def verify(self) -> int:
        """Re-hash every file of this version; raise `IntegrityError` naming the bad ones.

        Returns the number of files checked.
        """
        bad = []
        for f in self.files():
            try:
                if not self._store.blobs.verify_blob(f.digest, set_aside_bad=True):
                    bad.append(f"{f.path} (blob {f.digest} is corrupt)")
            except IntegrityError:  # set aside by an earlier verify
                bad.append(f"{f.path} (blob {f.digest} is corrupt)")
            except NotFoundError:
                bad.append(f"{f.path} (blob {f.digest} is missing)")
        if bad:
            more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
            raise IntegrityError(f"{self.ref}: {bad[0]}{more}")
        return len(self.files())

    # -- lineage ---------------------------------------------------------------------------------
    def produced_by(self) -> Run | None:
        """The run that created this version (None when it was logged outside a run)."""
        runs = self._store.index.version_runs(self.ref, "produced")
        if not runs:
            return None
        first = next((r for r in runs if r["id"] == self.run_id), runs[0])
        return self._store._run_from_row(first)

    def producers(self) -> list[Run]:
        """Every run that logged this exact content (a re-log of identical content adds a producer)."""
        return [
            self._store._run_from_row(r)
            for r in self._store.index.version_runs(self.ref, "produced")
        ]

    def consumed_by(self) -> list[Run]:
        return [
            self._store._run_from_row(r)
            for r in self._store.index.version_runs(self.ref, "consumed")
        ]

    def save_safetensors(
        self,
        path: str | os.PathLike[str],
        prefix: str | None = None,
        *,
        callback: Callback | None = None,
    ) -> Path:
        """Write this version's tensors as one standard ``.safetensors`` file (same version, same bytes);
        see `artifacts.safetensors.save_safetensors`."""
        from .safetensors import save_safetensors

        return save_safetensors(self, path, prefix, callback=callback)

    # -- torch -----------------------------------------------------------------------------------
    def load_state_dict(
        self, prefix: str = "", map_location: Any = "cpu", *, verify: bool = True
    ) -> dict[str, Any]:
        """Rebuild a state_dict saved with `Artifact.add_state_dict`, without pickle."""
        from . import torch as _torch

        return _torch.load_state_dict(self, prefix=prefix, map_location=map_location, verify=verify)


def _entry(row: sqlite3.Row) -> FileEntry:
    meta = json.loads(row["meta"]) if row["meta"] else {}
    return FileEntry(row["path"], row["digest"], row["size"], MappingProxyType(meta))
