"""`verify` (is every committed byte intact?) and `gc` (drop bytes nothing live refers to)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import NotFoundError
from .log import LOG_DIR

if TYPE_CHECKING:
    from .store import Store

__all__ = ["GcReport", "VerifyReport", "gc", "verify"]


@dataclass(frozen=True)
class VerifyReport:
    """Problems found, each one line naming a digest or a log sequence number; empty means clean."""

    problems: tuple[str, ...]
    blobs_checked: int
    entries_checked: int

    @property
    def ok(self) -> bool:
        return not self.problems

    def __bool__(self) -> bool:
        return self.ok


@dataclass(frozen=True)
class GcReport:
    deleted: tuple[str, ...]
    bytes_freed: int
    kept: int
    dry_run: bool


def verify(store: Store, ref: str | None = None, *, quick: bool = False) -> VerifyReport:
    """Check the log (every entry parses and applied) and the blobs it refers to.

    ``quick`` checks existence and size only; otherwise every blob is re-hashed.
    """
    problems: list[str] = []
    store.sync()
    entries = 0
    if ref is None:
        paths = store.log.entry_paths()
        entries = len(paths)
        head = max(paths, default=0)
        missing = [s for s in range(1, head + 1) if s not in paths]
        problems += [f"log entry {s} is missing (gap in the log)" for s in missing[:20]]
        for rel in _odd_log_names(store):
            problems.append(f"unexpected object {rel} in the log")
        for seq, reason in store.index.rejected():
            problems.append(f"log entry {seq} was rejected: {reason}")
        unapplied = [s for s in paths if s > store.index.last_seq]
        problems += [f"log entry {s} is not applied" for s in unapplied[:20]]
        wanted = store.index.all_referenced()
    else:
        v = store.artifact(ref)
        wanted = {f.digest: f"{v.ref}/{f.path}" for f in v.files()}
        wanted.setdefault(v.digest, f"manifest of {v.ref}")
    sizes = _expected_sizes(store)

    def check(item: tuple[str, str]) -> str | None:
        digest, where = item
        try:
            if quick:
                size = store.blobs.size(digest)
                want = sizes.get(digest)
                if want is not None and size != want:
                    return f"blob {digest} ({where}) has {size} bytes, expected {want}"
                return None
            if not store.blobs.verify_blob(digest):
                return f"blob {digest} ({where}) is corrupt: its content does not hash to its name"
        except NotFoundError:
            return f"blob {digest} ({where}) is missing"
        return None

    workers = 1 if store.root.is_local and not quick else 8
    with ThreadPoolExecutor(workers) as pool:
        problems += [p for p in pool.map(check, sorted(wanted.items())) if p]
    return VerifyReport(tuple(problems), len(wanted), entries)


def _odd_log_names(store: Store) -> list[str]:
    out = []
    for info in store.root.listdir(LOG_DIR):
        name = info["name"].rstrip("/").rsplit("/", 1)[-1]
        if name.startswith(".tmp-"):
            continue
        stem = name[:-5] if name.endswith(".json") else name
        if not (stem.isdigit() and len(stem) == 20):
            out.append(f"{LOG_DIR}/{name}")
    return out


def _expected_sizes(store: Store) -> dict[str, int]:
    return {r[0]: r[1] for r in store.index._conn.execute("SELECT digest, size FROM files")}


def gc(store: Store, *, grace_period: float = 24 * 3600, dry_run: bool = False) -> GcReport:
    """Delete blobs that no live version or run refers to and that are older than ``grace_period``.

    The grace period protects uploads of commits still in flight: their blobs exist before the log
    entry that references them. Blobs touched by a dedup hit are refreshed (locally) for the same reason.
    """
    store.sync()
    live = store.index.live_digests()
    cutoff = time.time() - grace_period
    doomed = [
        b
        for b in store.blobs.iter_blobs()
        if b.digest not in live and b.mtime is not None and b.mtime < cutoff
    ]
    store.sync()  # anything committed while we listed is live too
    live |= store.index.live_digests()
    doomed = [b for b in doomed if b.digest not in live]
    if not dry_run:
        for b in doomed:
            store.blobs.delete(b.digest)
        store.blobs.clean_tmp(grace_period)
    kept = len(live)
    return GcReport(tuple(b.digest for b in doomed), sum(b.size for b in doomed), kept, dry_run)
