"""`Bulk`: many commits of one process, as the same log entries one commit at a time would write.

Importing history (thousands of versions and aliases from another tracker) one `Catalog.commit` at a
time costs, per entry, a sync, an index transaction and the exclusive create (a commit is a batch of
one). A bulk opens one index transaction per batch instead: each entry
is encoded at the next sequence number (chained to the one before by ``prev``), decoded again and
applied in a savepoint of that transaction, so a rule it breaks is raised at once, as by `commit`, and
it leaves no trace. At the end of a batch the staged entries are created in the log one after another,
each exclusively (the log never gets a gap), and only then is the transaction committed: the index
never holds an entry the log does not. The format is untouched: entries, packs and snapshots are the
ones single commits make (a batch ends at every snapshot boundary, so the snapshot covers that seq).

A writer killed mid-batch leaves the entries it created (each a whole, valid commit) and an index
transaction that never committed; the next open replays them from the log. Losing a race to another
writer is handled as `commit` handles it: the entries created so far stand, the index is synced, and
the rest are staged again at the new head (one the new head refuses raises `ConflictError`).
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from typing import TYPE_CHECKING

from ..errors import ArtifactsError, ConflictError, InvalidStateError, InvalidValueError
from .entries import Entry, EntryError, decode, encode
from .log import RawEntry, backoff

if TYPE_CHECKING:
    from .engine import Catalog
    from .rules import Applied

__all__ = ["Bulk"]

_MAX_LOST = 200


@dataclasses.dataclass(frozen=True)
class _Staged:
    entry: Entry  # as the caller gave it (seq, user, ts, commit, prev filled in at staging)
    commit: str
    ts: str | None
    raw: RawEntry


class Bulk:
    """Stages entries in batches of ``batch``; use through `Store.bulk` (a context manager)."""

    def __init__(self, catalog: Catalog, batch: int = 1000) -> None:
        self.catalog = catalog
        self.batch = max(1, int(batch))
        self.committed = 0  # entries this bulk created in the log
        self._staged: list[_Staged] = []
        self._open = False
        self._before = 0
        self._lost = 0

    @property
    def staged(self) -> int:
        """Entries accepted but not yet in the log (they are at the end of the batch)."""
        return len(self._staged)

    def begin(self) -> None:
        """Open a batch (sync, then the index transaction) unless one is open: reads made after this
        see the staged entries, and no other writer of this index moves it meanwhile."""
        if self._open:
            return
        cat = self.catalog
        cat.lock.acquire()
        try:
            cat.sync()
            self._before = cat.index.begin_own()
        except BaseException:
            cat.lock.release()
            raise
        self._open = True

    def add(self, entry: Entry, ts: str | None = None) -> Applied:
        """Validate ``entry`` at the head (staged entries included) and stage it; raises the rule it
        breaks, as `Catalog.commit` does. In the log at the end of the batch (`flush`)."""
        return self._add(entry, uuid.uuid4().hex, ts)

    def _add(self, entry: Entry, commit: str, ts: str | None) -> Applied:
        from .engine import now

        self.begin()
        index = self.catalog.index
        seq = index.last_seq + 1
        data = encode(
            dataclasses.replace(
                entry,
                seq=seq,
                user=self.catalog.user,
                ts=ts if isinstance(ts, str) else now(),
                commit=commit,
                prev=index.last_digest(seq - 1),
            )
        )
        try:
            typed = decode(seq, data)  # what every reader will make of these bytes
        except EntryError as e:
            raise InvalidValueError(f"cannot commit {entry.OP}: {e}") from None
        raw = RawEntry(seq, data)
        applied = index.stage_own(raw, typed)
        self._staged.append(_Staged(entry, commit, ts, raw))
        every = self.catalog.reader.config.snapshot_every
        if len(self._staged) >= self.batch or (every and seq % every == 0):
            self.flush()
        return applied

    def flush(self) -> None:
        """Create the staged entries in the log, in order, then commit the index transaction."""
        if not self._open:
            return
        cat = self.catalog
        staged, self._staged = self._staged, []
        lost = None
        started = time.perf_counter()
        try:
            for i, s in enumerate(staged):
                try:
                    cat.log.create(s.raw.seq, s.raw.data)
                except ConflictError:
                    if cat._landed(s.raw.seq, s.raw.data):  # our own create, its reply lost
                        continue
                    lost = i
                    break
                self.committed += 1
        except BaseException:
            self._end(commit=False, raws=[])  # whatever was created is replayed from the log
            raise
        if lost is None:
            self._end(commit=True, raws=[s.raw for s in staged])
            return
        self._end(commit=False, raws=[])  # the next batch's sync applies the ones created
        cat.commits += lost
        self._lost += 1
        if self._lost > _MAX_LOST:
            raise ConflictError(
                f"gave up a bulk commit after {_MAX_LOST} lost races; "
                f"{len(staged) - lost} entries were not committed"
            )
        backoff(self._lost, time.perf_counter() - started)
        rest = staged[lost:]
        for k, s in enumerate(rest):  # validated again at the new head, as a lost commit is
            try:
                self._add(s.entry, s.commit, s.ts)
            except ArtifactsError as e:
                self.flush()
                raise ConflictError(
                    f"another writer committed during a bulk, and {s.entry.OP} is refused at the "
                    f"new head: {e}; {len(rest) - k - 1} later entries of the bulk were not "
                    "committed either"
                ) from e
        self.flush()

    def _end(self, *, commit: bool, raws: list[RawEntry]) -> None:
        cat = self.catalog
        try:
            cat.index.end_own(commit=commit)
            if commit:
                cat.commits += len(raws)
                cat.reader.bulk_committed(cat.index, self._before, raws)
        finally:
            self._open = False
            cat.lock.release()

    def rollback(self) -> None:
        """Drop the staged entries (nothing of them is in the log yet)."""
        self._staged = []
        if self._open:
            self._end(commit=False, raws=[])

    def close(self) -> None:
        """Flush; a bulk is not used after."""
        if self._staged or self._open:
            self.flush()
        if self._open:  # pragma: no cover - flush always ends the batch
            raise InvalidStateError("bulk left a batch open")
