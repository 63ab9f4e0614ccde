"""`ArtifactVersion`: one committed, immutable version, read through its store."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, BinaryIO

from .catalog.records import RunRecord, file_entry
from .errors import IntegrityError, NotFoundError
from .manifest import FileEntry

if TYPE_CHECKING:
    from fsspec.callbacks import Callback

    from .catalog.records import VersionRecord
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
    def from_record(cls, store: Store, record: VersionRecord) -> ArtifactVersion:
        """The version ``record`` describes, read through ``store``."""
        return cls(
            name=record.name,
            type=record.type,
            version=record.version,
            digest=record.digest,
            size=record.size,
            aliases=record.aliases,
            metadata=MappingProxyType(dict(record.metadata)),
            description=record.description,
            user=record.user,
            created_at=record.created_at,
            run_id=record.run_id,
            _store=store,
            _id=record.id,
        )

    @property
    def store(self) -> Store:
        """The store this version was read from."""
        return self._store

    def to_dict(self) -> dict[str, Any]:
        """The version's fields as JSON-ready values (what `artifacts show --json` prints)."""
        return {
            "ref": self.ref,
            "name": self.name,
            "version": self.version,
            "type": self.type,
            "digest": self.digest,
            "size": self.size,
            "aliases": list(self.aliases),
            "metadata": dict(self.metadata),
            "description": self.description,
            "user": self.user,
            "created_at": self.created_at,
            "run_id": self.run_id,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @property
    def ref(self) -> str:
        return f"{self.name}:v{self.version}"

    def __str__(self) -> str:
        return self.ref

    # -- content ---------------------------------------------------------------------------------
    def files(self) -> list[FileEntry]:
        return [file_entry(r) for r in self._store.index.files(self._id)]

    def file_count(self) -> int:
        """``len(self.files())``, counted by the index."""
        return self._store.index.file_count(self._id)

    def file(self, path: str) -> FileEntry:
        row = self._store.index.file(self._id, path)
        if row is None:
            raise NotFoundError(f"{self.ref} has no file {path!r}")
        return file_entry(row)

    def read_bytes(self, path: str, *, verify: bool = True) -> bytes:
        """The file's bytes, never more than its manifest entry's size (a blob that holds more or
        less is an `IntegrityError`): the readers' size limits bound what they allocate."""
        f = self.file(path)
        return self._store.blobs.read_bytes(f.digest, verify=verify, size=f.size)

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
        files = self.files()
        state: dict[str, str | None] = {}  # each blob hashed once, however many entries name it
        bad = []
        for f in files:
            if f.digest not in state:
                try:
                    ok = self._store.blobs.verify_blob(f.digest, set_aside_bad=True)
                    state[f.digest] = None if ok else "corrupt"
                except IntegrityError:  # set aside by an earlier verify
                    state[f.digest] = "corrupt"
                except NotFoundError:
                    state[f.digest] = "missing"
            if state[f.digest] is not None:
                bad.append(f"{f.path} (blob {f.digest} is {state[f.digest]})")
        if bad:
            more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
            raise IntegrityError(f"{self.ref}: {bad[0]}{more}")
        return len(files)

    # -- lineage ---------------------------------------------------------------------------------
    def produced_by(self) -> Run | None:
        """The run that created this version (None when it was logged outside a run)."""
        runs = self._runs("produced")
        return next((r for r in runs if r.id == self.run_id), runs[0]) if runs else None

    def producers(self) -> list[Run]:
        """Every run that logged this exact content (a re-log of identical content adds a producer)."""
        return self._runs("produced")

    def consumed_by(self) -> list[Run]:
        """The runs that used this version as an input, in log order."""
        return self._runs("consumed")

    def _runs(self, kind: str) -> list[Run]:
        from .run import Run  # run.py builds versions too

        rows = self._store.index.version_runs(self.ref, kind)
        return [Run(self._store, RunRecord.from_row(r)) for r in rows]

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
