"""`verify` (is every committed byte intact?) and `gc` (drop bytes nothing live refers to).

verify reads the store, never the index alone: every log entry is listed (gaps, strays) and, in a full
check, parsed again; every blob a live version or a run refers to is re-hashed (``quick``: existence and
size only). Each problem is one line naming a blob digest or a log sequence number.

gc marks the blobs reachable from live versions (their files and manifests) and from runs (metric
histories), and sweeps the other blobs older than the grace period. Three rules keep a commit that races
with gc safe:

- blobs are uploaded before the entry that refers to them, and the grace period (default 24 h) spares any
  blob younger than it, so the uploads of commits in flight are never swept;
- a put that dedups against an existing blob freshens its modification time (see `storage.BlobStore`), so
  an old unreferenced blob that a new commit is about to reuse (the content of a deleted version, logged
  again) counts as young;
- each doomed blob's age is checked again at the moment it goes. Locally the blob is first renamed into
  a quarantine name (atomic) and its mtime re-read there: a put that freshened it before the rename is
  seen and the blob is put back; a put after the rename finds no blob and writes it again. On a remote
  root a dedup hit refreshes a blob's age only when it is older than ``BlobStore.freshen_after`` (1 h),
  so a doomed blob is not deleted but moved to ``trash/`` (see `storage.trash`): reads that miss it put
  it back, and it is purged only by a pass that replayed the log after it sat there for the grace
  period, which puts back instead every trashed blob a commit refers to. So any grace period longer
  than a commit takes is safe on every backend.

gc refuses to sweep when the log holds entries this library cannot read because they are newer (their
blobs would look unreferenced) or when the index could not apply the whole log (a gap).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from storage import hash_bytes
from storage.leftovers import clean_leftovers
from storage.quarantine import corrupt_message, is_set_aside

from .. import bounds
from ..errors import IntegrityError, InvalidStateError, InvalidValueError, NotFoundError
from .checks import drop_covered_packs, gc_scale, pack_findings, repair_packs, verify_scale
from .entries import LOG_FORMAT, EntryError, decode, entry_format
from .log import LOG_DIR, log_path, read_entries

if TYPE_CHECKING:
    from .engine import Catalog

__all__ = ["GcReport", "VerifyReport", "gc", "verify"]

_MAX_LISTED = 20  # per kind of log problem; the rest is summarized in one line
_BULK_BLOB = 8 * 1024 * 1024  # remote verify fetches blobs up to this size in batches...
_BULK_BATCH = 64 * 1024 * 1024  # ...of at most this many bytes


@dataclass(frozen=True)
class VerifyReport:
    """Problems found, each one line naming a digest or a log sequence number; empty means clean."""

    problems: tuple[str, ...]
    blobs_checked: int
    entries_checked: int
    quick: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def __bool__(self) -> bool:
        return self.ok


@dataclass(frozen=True)
class GcReport:
    """What gc removed (or, with ``dry_run``, would remove): digests and bytes.

    ``kept`` counts the blobs left in place; ``spared`` lists blobs that were doomed when listed but
    were reused by a commit while gc ran; ``tmp_removed`` counts leftovers of killed uploads removed;
    ``restored`` lists blobs put back from a remote root's trash because a commit refers to them.
    ``uploads_aborted`` counts multipart uploads left by puts that died (S3; a dead endpoint
    defeats their own abort) and ``temp_removed`` temp files of killed commits (local), both once
    older than the grace period (see `storage.leftovers`). ``packs_repaired`` lists damaged log
    packs replaced by the pack their entries make (see `checks.repair_packs`); ``packs_dropped``
    smaller packs a larger good one covers (see `checks.drop_covered_packs`).
    """

    deleted: tuple[str, ...]
    bytes_freed: int
    kept: int
    dry_run: bool
    spared: tuple[str, ...] = ()
    tmp_removed: int = 0
    restored: tuple[str, ...] = ()
    snapshots_removed: tuple[str, ...] = ()
    uploads_aborted: int = 0
    temp_removed: int = 0
    packs_repaired: tuple[str, ...] = ()
    packs_dropped: tuple[str, ...] = ()


# -- verify ----------------------------------------------------------------------------------------
def verify(
    store: Catalog,
    only: Mapping[str, str] | None = None,
    *,
    quick: bool = False,
    snapshots: bool = False,
) -> VerifyReport:
    """Check the log (every entry present, parses and applied), its packs and snapshots, and the blobs
    it refers to.

    With ``only`` (digest -> where it is referred to), just those blobs. ``quick`` checks existence
    and size only; otherwise every blob is re-hashed and every log entry parsed again. ``snapshots``
    also compares each snapshot with a replay of the log (slow).
    """
    problems: list[str] = []
    store.sync()
    entries = 0
    if only is None:
        applied = store.index.last_seq  # entries up to here existed before the listing below
        paths, odd = _list_log(store)
        store.sync()  # entries listed are all applied now, unless they follow a gap
        entries = len(paths)
        problems += [f"unexpected object {rel} in the log" for rel in odd]
        problems += _log_problems(store, paths, applied, reparse=not quick)
        problems += verify_scale(store, replay=snapshots)
        problems += _listed(
            store.blobs.stray_names(),
            "unexpected object {} under blobs/ (not a blob's name; gc leaves it): remove it",
            "unexpected objects under blobs/",
        )
        wanted = store.index.all_referenced()
    else:
        wanted = dict(only)
    sizes = store.index.file_sizes()
    items = sorted(wanted.items())
    if only is None and store.root.remote:
        problems += _check_blobs_in_bulk(store, items, sizes, quick)
    else:  # on a disk hashing is the work: as many threads as cores (BLAKE3 releases the GIL)
        workers = 16 if store.root.remote else min(8, os.cpu_count() or 1)
        problems += [
            p for p in _map(lambda i: _check_blob(store, *i, sizes, quick), items, workers) if p  # type: ignore[call-arg]
        ]
    return VerifyReport(tuple(problems), len(wanted), entries, quick)


def _check_blob(
    store: Catalog, digest: str, where: str, sizes: dict[str, int], quick: bool
) -> str | None:
    try:
        if quick:
            return _size_problem(digest, where, store.blobs.size(digest), sizes.get(digest))
        if not store.blobs.verify_blob(digest, set_aside_bad=True):
            return _corrupt(digest, where)
    except IntegrityError:  # set aside by an earlier verify
        return _corrupt(digest, where)
    except NotFoundError:
        return f"blob {digest} ({where}) is missing"
    return None


def _corrupt(digest: str, where: str) -> str:
    """The line for a blob whose content does not hash to its name; it is set aside by now, so a put
    of the right content repairs it (see `storage.quarantine`)."""
    return (
        f"blob {digest} ({where}) is corrupt: its content does not hash to its name "
        f"({corrupt_message(digest)})"
    )


def _size_problem(digest: str, where: str, size: int, want: int | None) -> str | None:
    if want is None or size == want:
        return None
    return f"blob {digest} ({where}) is corrupt: it has {size} bytes, expected {want}"


def _check_blobs_in_bulk(
    store: Catalog, items: list[tuple[str, str]], sizes: dict[str, int], quick: bool
) -> list[str]:
    """A whole remote store: one listing for existence and sizes, then small blobs fetched many at a
    time (one round trip per batch instead of a HEAD and a GET per blob), large ones streamed."""
    listed = {b.digest: b.size for b in store.blobs.iter_blobs()}
    problems: list[str] = []
    small: list[tuple[str, str]] = []
    large: list[tuple[str, str]] = []
    for digest, where in items:
        size = listed.get(digest)
        if size is None:  # perhaps in gc's trash (then put back) or set aside as corrupt
            with contextlib.suppress(NotFoundError, IntegrityError):
                size = listed[digest] = store.blobs.size(digest)
        if size is None:
            problems.append(
                _corrupt(digest, where)
                if is_set_aside(store.root, digest)
                else f"blob {digest} ({where}) is missing"
            )
        elif quick:
            if (p := _size_problem(digest, where, size, sizes.get(digest))) is not None:
                problems.append(p)
        else:  # a wrong size shows as a wrong hash, as in the one-by-one check
            (small if size <= _BULK_BLOB else large).append((digest, where))
    batches: list[list[tuple[str, str]]] = [[]]
    total = 0
    for digest, where in small:
        if total + listed[digest] > _BULK_BATCH or len(batches[-1]) >= 256:
            batches.append([])
            total = 0
        batches[-1].append((digest, where))
        total += listed[digest]
    for batch in batches:
        got = store.blobs.read_many([d for d, _ in batch])
        for digest, where in batch:
            data = got.get(digest)
            if data is None:
                problems.append(f"blob {digest} ({where}) is missing")
            elif hash_bytes(data) != digest and not store.blobs.verify_blob(
                digest, set_aside_bad=True
            ):
                problems.append(_corrupt(digest, where))
    problems += [p for p in _map(lambda i: _check_blob(store, *i, sizes, False), large, 16) if p]  # type: ignore[call-arg]
    return problems


def _list_log(store: Catalog) -> tuple[dict[int, str], list[str]]:
    """One listing of the log: sequence number -> path of every entry, and anything else found."""
    paths: dict[int, str] = {}
    odd: list[str] = []
    for info in store.root.listdir(LOG_DIR):
        name = info["name"].rstrip("/").rsplit("/", 1)[-1]
        if name.startswith(".tmp-"):
            continue
        stem = name[:-5] if name.endswith(".json") else name
        if stem.isdigit() and len(stem) == 20 and name.endswith(".json"):
            paths[int(stem)] = f"{LOG_DIR}/{name}"
        else:
            odd.append(f"{LOG_DIR}/{name}")
    return paths, sorted(odd)


def _log_problems(
    store: Catalog, paths: dict[int, str], applied_before: int, *, reparse: bool
) -> list[str]:
    problems: list[str] = []
    head = max(paths, default=0)
    applied = store.index.last_seq
    missing = [s for s in range(1, max(head, applied_before) + 1) if s not in paths]
    problems += _listed(
        missing, "log entry {} is missing (a gap in the log)", "log entries missing"
    )
    rejected = dict(store.index.rejected())
    problems += [
        f"log entry {seq} was rejected: {reason}" for seq, reason in sorted(rejected.items())
    ]
    unapplied = sorted(s for s in paths if s > applied)
    problems += _listed(
        unapplied, "log entry {} is not applied (it follows a gap)", "log entries not applied"
    )
    if reparse:
        every = [s for s in sorted(paths) if s <= applied]
        todo = [s for s in every if s not in rejected]
        got: dict[int, bytes] = {}
        for i in range(0, len(every), 1000):
            got.update(read_entries(store.root, every[i : i + 1000]))
        for seq in todo:
            data = got.get(seq)
            if data is None:
                problems.append(f"log entry {seq} disappeared while verifying")
                continue
            try:
                entry = decode(seq, data)
            except EntryError as e:  # changed after it was applied (bit rot, a hand edit)
                problems.append(f"log entry {seq} does not parse any more: {e}")
                continue
            before = got.get(seq - 1)
            if entry.prev is not None and before is not None and hash_bytes(before) != entry.prev:
                problems.append(
                    f"log entry {seq - 1} was changed after entry {seq} was written: its bytes no "
                    f"longer hash to the digest entry {seq} records (restore it from a backup)"
                )
    return problems


def _listed(seqs: Sequence[object], one: str, many: str) -> list[str]:
    out = [one.format(s) for s in seqs[:_MAX_LISTED]]
    if len(seqs) > _MAX_LISTED:
        out.append(f"... and {len(seqs) - _MAX_LISTED} more {many}")
    return out


# -- gc --------------------------------------------------------------------------------------------
def gc(store: Catalog, *, grace_period: float = 24 * 3600, dry_run: bool = False) -> GcReport:
    """Delete blobs that no live version or run refers to and that are older than ``grace_period``.

    ``grace_period`` (seconds) must exceed the longest time a commit may take between uploading its
    blobs and writing its log entry; blobs younger than it are never swept.
    """
    if (
        isinstance(grace_period, bool)
        or not isinstance(grace_period, int | float)
        or grace_period < 0
    ):
        raise InvalidValueError(
            f"grace_period must be a number of seconds >= 0, not {grace_period!r}"
        )
    cutoff = time.time() - grace_period
    if not dry_run:
        store.blobs.recover_quarantine()
    head = store.log.head()  # listed before syncing: every entry it names must apply
    store.sync()
    _refuse_unsafe(store, head)
    live = store.index.live_digests()
    listed = list(store.blobs.iter_blobs())
    store.sync()  # anything committed while we listed is live too
    live |= store.index.live_digests()
    doomed = [b for b in listed if b.digest not in live and store.blobs.older(b.mtime, cutoff)]
    old_snapshots = tuple(gc_scale(store, cutoff=cutoff, dry_run=dry_run))
    findings = pack_findings(store)
    packs = tuple(repair_packs(store, cutoff=cutoff, dry_run=dry_run, findings=findings))
    bad = {p for p, _ in findings if p is not None}
    covered = tuple(drop_covered_packs(store, cutoff=cutoff, dry_run=dry_run, bad=bad))
    left = clean_leftovers(store.root, cutoff, dry_run=dry_run)
    if dry_run:
        return GcReport(
            tuple(b.digest for b in doomed),
            sum(b.size for b in doomed),
            len(listed) - len(doomed),
            True,
            snapshots_removed=old_snapshots,
            uploads_aborted=len(left.uploads),
            temp_removed=len(left.temp_files),
            packs_repaired=packs,
            packs_dropped=covered,
        )
    results = store.blobs.sweep_many(doomed, cutoff)
    deleted = [b for b, gone in zip(doomed, results, strict=True) if gone]
    spared = tuple(b.digest for b, gone in zip(doomed, results, strict=True) if not gone)
    tmp_removed = store.blobs.clean_tmp(grace_period)
    store.sync()  # after the sweep: a commit that found a blob before it moved has landed by now
    restored = store.blobs.empty_trash(
        store.index.live_digests(), cutoff, everything=grace_period == 0
    )
    return GcReport(
        tuple(b.digest for b in deleted if b.digest not in restored),
        sum(b.size for b in deleted if b.digest not in restored),
        len(listed) - len(deleted),
        False,
        spared + tuple(d for d in restored if d in {b.digest for b in deleted}),
        tmp_removed,
        restored,
        old_snapshots,
        len(left.uploads),
        len(left.temp_files),
        packs,
        covered,
    )


def _refuse_unsafe(store: Catalog, head: int) -> None:
    """Raise unless every entry up to ``head`` was understood: unknown entries may refer to blobs."""
    applied = store.index.last_seq
    if head > applied:
        raise InvalidStateError(
            f"gc refused: the log goes up to entry {head} but only entries up to {applied} could be "
            f"applied (entry {applied + 1} is missing); run `artifacts verify` and repair the log first"
        )
    for seq, _reason in store.index.rejected():
        try:
            data = store.root.read(log_path(seq), limit=bounds.MAX_ENTRY_BYTES)
        except NotFoundError:
            continue
        fmt = entry_format(data) if len(data) <= bounds.MAX_ENTRY_BYTES else None
        if fmt is not None and fmt > LOG_FORMAT:  # else garbage: no reader can use it
            raise InvalidStateError(
                f"gc refused: log entry {seq} is written in log format {fmt}, newer than this "
                f"library's {LOG_FORMAT}; its blobs would look unreferenced. Upgrade, then run gc"
            )


def _map(fn: Callable[[Any], Any], items: Iterable[Any], workers: int) -> list[Any]:
    items = list(items)
    if workers <= 1 or len(items) <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(min(workers, len(items))) as pool:
        return list(pool.map(fn, items))
