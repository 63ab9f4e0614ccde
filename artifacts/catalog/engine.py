"""`Catalog`: the engine under the `Store` facade: one root (store.json, blobs, log) and a local index.

It owns what every operation shares: reading (or creating, exactly once) ``store.json``, the blob store,
the commit log, the SQLite index kept up to date by `sync`, and `commit`, the optimistic-concurrency
loop (validate at the head, create the next entry exclusively, on a lost race back off, replay, retry).
The facade (`artifacts.Store`), maintenance, the fsspec view and the CLI use these public methods and
attributes; none of them reaches into another module's private state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from storage import BlobStore, Root, StatCache, default_cache_dir
from storage.conditional import ensure_exclusive_creates

from .. import bounds
from ..errors import (
    ConflictError,
    DiskFullError,
    IntegrityError,
    InvalidStateError,
    InvalidValueError,
    NotFoundError,
    StoreNotFoundError,
)
from ..manifest import canonical_json
from ..names import check_name
from ..untrusted import load_json
from .entries import Entry, EntryError, decode, encode
from .identity import check_store_id, index_path
from .index import INDEX_FORMAT, Index
from .log import CommitLog, RawEntry, backoff, log_path
from .rules import Applied
from .tail import LogMismatch, LogReader, warn

__all__ = ["STORE_FILE", "STORE_FORMAT", "Catalog", "is_corrupt", "now"]

STORE_FORMAT = 1
STORE_FILE = "store.json"
_MAX_ATTEMPTS = 200


def now() -> str:
    """The time stamp written into entries: UTC, ISO 8601, microseconds."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


def is_corrupt(e: BaseException) -> bool:
    """SQLite says the file's pages are damaged (SQLITE_CORRUPT, SQLITE_NOTADB), not full or busy."""
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (11, 26)
    return "malformed" in str(e) or "not a database" in str(e)


class Catalog:
    """One store root and its index, for one acting ``user``. Thread-safe (one lock per catalog)."""

    def __init__(self, root: Root, user: str, *, create: bool = True) -> None:
        self.root = root
        self.url = root.url
        self.user = user
        self.info = self._store_info(create)
        self.blobs = BlobStore(root, stat_cache=StatCache())
        self.log = CommitLog(root)
        #: one SQLite connection: one transaction at a time; held across a check and what follows it
        self.lock = threading.RLock()
        self.index = self._open_index()
        #: log entries this catalog created (a caller retrying after a damaged index checks it)
        self.commits = 0
        #: finds new entries (snapshots, packs, then single entries) and makes packs and snapshots
        self.reader = LogReader(root, store_id=self.info["id"], index_format=INDEX_FORMAT)
        #: the open's own sync stands for the first one a command asks for (`trust_open`)
        self._open_synced = False
        try:
            self._sync(check_head=True)
        except sqlite3.DatabaseError as e:
            if not is_corrupt(e):
                raise
            self.heal(e)

    def heal(self, e: sqlite3.DatabaseError) -> None:
        """Rebuild an index whose pages are damaged (``database disk image is malformed``): it is a
        cache of the log, so nothing is lost; as a damaged header already is, on open."""
        warn(f"the local index of {self.url} is damaged ({e}); rebuilding it from the store's log")
        self.reindex()

    @property
    def id(self) -> str:
        """The store's id (from store.json)."""
        return str(self.info["id"])

    @property
    def head(self) -> int:
        """The last log entry applied to the index."""
        return self.index.last_seq

    def close(self, *, wait: float = 30.0) -> None:
        """Close the index, first giving a pack or snapshot being made up to ``wait`` seconds."""
        self.reader.background.wait(wait)
        self.index.close()

    @contextlib.contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The index's connection for read-only queries (the query engine, views), under the lock
        that serialises this catalog's use of it."""
        with self.lock:
            yield self.index.connection

    def _open_index(self, *, fresh: bool = False) -> Index:
        return Index(
            index_path(default_cache_dir(), self.info["id"], self.root),
            store_id=self.info["id"],
            admins=[self.info["created_by"]],
            fresh=fresh,
        )

    def _store_info(self, create: bool = True) -> dict[str, Any]:
        """Read store.json, creating it (exactly once, whoever races) for a new store, unless not
        ``create`` (then a missing one is `StoreNotFoundError`).

        The read is also the reachability check (a missing bucket or endpoint says so), so an existing
        store costs one request here (the CLI asks for no existence check before it).
        """
        try:
            data = self.root.read(STORE_FILE, limit=bounds.MAX_SMALL_BYTES)
        except NotFoundError:
            self.root.check_reachable(create=create)
            if not create:
                raise StoreNotFoundError(
                    f"no store at {self.url}: create one with `artifacts init` (or open_store() "
                    "without create=False)"
                ) from None
            info = {
                "format": STORE_FORMAT,
                "id": uuid.uuid4().hex,
                "created_at": now(),
                "created_by": self.user,
            }
            ensure_exclusive_creates(self.root)  # two racing inits must not both win
            with contextlib.suppress(ConflictError):
                self.root.create_exclusive(STORE_FILE, canonical_json(info))
                print(f"artifacts: created a new store at {self.url}", file=sys.stderr)
            data = self.root.read(STORE_FILE, limit=bounds.MAX_SMALL_BYTES)
        try:
            info = load_json(data, STORE_FILE, limit=bounds.MAX_SMALL_BYTES)
            fmt = info["format"]
            check_store_id(info["id"], f"{self.url}/{STORE_FILE}")
            check_name(info["created_by"], "user name")
        except (ValueError, KeyError, TypeError) as e:  # InvalidNameError is a ValueError
            raise IntegrityError(
                f"{self.url}/{STORE_FILE} is not a store description: {e}"
            ) from None
        if fmt != STORE_FORMAT:
            raise IntegrityError(
                f"{self.url} uses store format {fmt}; this library reads format {STORE_FORMAT}: upgrade"
            )
        return dict(info)

    # -- the log ---------------------------------------------------------------------------------
    def sync(self) -> list[tuple[int, str]]:
        """Apply entries committed since the index was last brought up to date; returns rejections."""
        with self.lock:
            if self._open_synced:
                self._open_synced = False
                return []
        return self._sync()

    def trust_open(self) -> None:
        """Let the sync the open just did stand for the next one (one request fewer on S3).

        For a caller that opens, then at once runs one command (the CLI): nothing it could have waited
        for lies between the two, so the state it sees is the state of the open. Library code that
        opens a store and later reads it always syncs.
        """
        with self.lock:
            self._open_synced = True

    def _sync(self, *, check_head: bool = False) -> list[tuple[int, str]]:
        with self.lock:
            try:
                return self.reader.sync(self.index, check_head=check_head)
            except LogMismatch as e:
                warn(
                    f"the local index of {self.url} was built from a different log ({e}: a copy, or "
                    "a backup restored over the store?); rebuilding it from the store's log"
                )
                self.reindex()
                return self.index.rejected()

    def reindex(self) -> int:
        """Drop the local index and rebuild it from the log; returns the entries replayed."""
        with self.lock:
            with contextlib.suppress(sqlite3.Error):  # a damaged file may not even close cleanly
                self.index.close()
            self.index = self._open_index(fresh=True)  # emptied under the index's init lock
            self.sync()
            return self.index.last_seq

    def commit(self, entry: Entry, ts: str | None = None) -> Applied:
        """Validate ``entry`` at the head and create the next log entry; on a lost race replay, retry.

        The entry is encoded and decoded again first, so a writer commits only what every reader
        accepts. Returns what the entry did, as validated at the head it was committed after.
        ``ts``: the entry's time when it is a copy of an older one (`copy_to`), else now.
        """
        with self.lock:
            applied = self._commit_locked(entry, ts)
            self.commits += 1
            return applied

    def _commit_locked(self, entry: Entry, ts: str | None) -> Applied:
        """Validate the entry at the head in an index transaction, create it in the log, then apply it.

        On local disk the transaction stays open across the create (about a millisecond) and is
        committed once the entry is in the log, as a `Bulk` batch of one: the entry is applied once.
        On a remote root a create can take seconds (retries), and other processes sharing this index
        must not wait on it: there the validating transaction is rolled back before the create and
        the entry applied after it. Either way the index never holds an entry the log does not; a
        writer killed after the create leaves a whole entry, which the next sync applies."""
        commit_id = uuid.uuid4().hex  # one per change, kept across retries (see _landed)
        held = self.root.os_paths
        for attempt in range(_MAX_ATTEMPTS):
            seq = self.index.last_seq + 1
            when = ts if isinstance(ts, str) else now()
            data = encode(
                dataclasses.replace(
                    entry,
                    seq=seq,
                    user=self.user,
                    ts=when,
                    commit=commit_id,
                    prev=self.index.last_digest(seq - 1),
                )
            )
            try:
                typed = decode(seq, data)
            except EntryError as e:
                raise InvalidValueError(f"cannot commit {entry.OP}: {e}") from None
            raw = RawEntry(seq, data)
            if self.index.begin_own() != seq - 1:  # another process of this index applied more
                self.index.end_own(commit=False)
                self.sync()
                continue
            try:
                applied = self.index.stage_own(raw, typed)  # raises the rule it breaks
            except BaseException:
                self.index.end_own(commit=False)
                raise
            if not held:
                self.index.end_own(commit=False)
            started = time.perf_counter()
            try:
                self.log.create(seq, data)
            except ConflictError:
                if held:
                    self.index.end_own(commit=False)
                if self._landed(seq, data):  # our own create, whose reply was lost
                    self.sync()
                    return applied
                backoff(attempt, time.perf_counter() - started)
                self.sync()
                continue
            except BaseException:
                if held:
                    self.index.end_own(commit=False)
                raise
            try:
                if held:
                    self.index.end_own(commit=True)
                    self.reader.bulk_committed(self.index, seq - 1, [raw])
                    return applied
                rejected = dict(self.reader.committed(self.index, raw, typed))
            except DiskFullError as e:  # the entry is in the log, whole: only this cache is behind
                raise DiskFullError(
                    f"disk full: {entry.OP} was committed (log entry {seq}), but the local index "
                    f"at {self.index.path} could not record it; it catches up by itself once there "
                    "is space"
                ) from e
            if seq in rejected:  # cannot happen when the validation passed; keep the log honest
                raise InvalidStateError(f"log entry {seq} was rejected: {rejected[seq]}")
            return applied
        raise ConflictError(
            f"gave up committing {entry.OP} after {_MAX_ATTEMPTS} lost races; retry later"
        )

    def _landed(self, seq: int, data: bytes) -> bool:
        """True if entry ``seq`` is this very commit: a create retried after its first reply was
        lost (a dropped connection, a timeout) finds the entry it wrote itself and gets 412. Only
        the very bytes count (they carry the commit id): another commit's entry, or a short one,
        is never taken as ours."""
        try:
            return self.root.read(log_path(seq), limit=len(data)) == data
        except NotFoundError:
            return False
