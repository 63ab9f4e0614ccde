"""`BulkCommit`: what `Store.bulk` yields: `log_artifact`, `set_alias` and `remove_alias` as on the
store, committed in batches (`artifacts.catalog.bulk.Bulk`), for importing history from another tracker
(W&B, MLflow) or generating a large store.

Each call validates at once against the index as the batch has it (staged entries included) and raises
what the store's own method raises; the log entries are the ones single calls write, created at the end
of each batch. What a call returns is the version as staged: other writers committing to the same store
meanwhile may move what a later batch lands on (it is validated again there, as a lost commit is).

Blobs are uploaded by each call, before its entry is staged, as `Store.log_artifact` does. An artifact
with files on disk, or over 1 MiB of buffers, is committed alone (the batch before it first): its upload
must not hold the index's write transaction, which other processes sharing the index wait on.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .catalog.bulk import Bulk
from .catalog.entries import AliasRemoved, AliasSet
from .names import check_alias, check_name, parse_ref

if TYPE_CHECKING:
    from .artifact import Artifact
    from .store import Store
    from .version import ArtifactVersion

__all__ = ["BulkCommit"]

_SMALL = 1 << 20  # bytes of in-memory buffers an artifact may hold to be staged in a batch


class BulkCommit:
    def __init__(self, store: Store, batch: int = 1000) -> None:
        self.store = store
        self._bulk = Bulk(store.catalog, batch)

    @property
    def committed(self) -> int:
        """Log entries created by this bulk so far (artifacts committed alone not counted)."""
        return self._bulk.committed

    def log_artifact(self, artifact: Artifact, aliases: Iterable[str] = ()) -> ArtifactVersion:
        """`Store.log_artifact` (without a run), staged in the batch."""
        if artifact.size > _SMALL or any(s.source is not None for s in artifact):
            self._bulk.flush()
            return self.store.log_artifact(artifact, aliases)
        self._bulk.begin()
        return self.store._log_artifact(artifact, aliases, None, None, bulk=self._bulk)

    def set_alias(self, ref: str, alias: str) -> ArtifactVersion:
        """`Store.set_alias`, staged: ``ref`` resolves against the batch (``name:latest`` is the
        version staged last, if any)."""
        check_alias(alias)
        r = parse_ref(ref)
        self._bulk.begin()
        row = self.store.index.resolve(r.name, r.version, r.alias)
        self._bulk.add(AliasSet(name=row["name"], version=row["version"], alias=alias))
        return self.store._version(row["name"], row["version"])

    def remove_alias(self, name: str, alias: str) -> None:
        """`Store.remove_alias`, staged."""
        check_name(name)
        check_alias(alias)
        self._bulk.begin()
        self.store.index.resolve(name, alias=alias)
        self._bulk.add(AliasRemoved(name=name, alias=alias))

    def flush(self) -> None:
        """Commit what is staged now (also done every ``batch`` entries and on leaving the block)."""
        self._bulk.flush()

    def close(self) -> None:
        self._bulk.close()

    def rollback(self) -> None:
        self._bulk.rollback()
