"""Reading the log at scale: snapshot, then packs, then single entries found with one LIST.

`LogReader` is what a store's sync calls. A cold index (nothing applied yet) first tries the newest
usable snapshot, then takes whole packs from where it stands, then LISTs ``log/`` after the last key it
has (``StartAfter``) and GETs the new entries concurrently; a warm sync with nothing new is that one LIST.
On a root where probing is a syscall (`Root.prefers_listing` is False: local disk) new entries are
probed by name instead, as a directory listing would read every entry's name.
Every doubt (a bad snapshot, a bad pack) is a `StoreWarning` naming the object, and the reader goes on
with the next best source, down to the entries themselves.

It also keeps packs and snapshots coming without touching a commit's critical path: when the applied
sequence crosses a pack boundary, the range's bytes (kept from this process's reads and commits, the rest
fetched) are written as the pack by a background thread (and crossing a sub-pack boundary, 10 or 100
entries by default, writes that smaller pack, so the tail a cold open reads is a few dozen objects); when it crosses a snapshot boundary, the index
state is pinned by a read transaction right there and copied out in the background.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import tempfile
import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storage import Root, hash_bytes

from ..errors import ArtifactsError, ConflictError, StoreWarning
from . import snapshots as snaps
from .log import LOG_DIR, RawEntry, log_path, read_entries
from .packs import (
    PACK_DIR,
    PackError,
    PackName,
    decode_pack,
    encode_pack,
    pack_bounds,
    parse_pack_name,
    read_packs,
)

if TYPE_CHECKING:
    from .entries import Entry

__all__ = ["LogMismatch", "LogReader", "ScaleConfig"]

_BATCH = 1000  # entries or packs fetched per concurrent batch
_MAX_PENDING = 64  # background jobs queued at most; beyond that a later reader makes them


@dataclass(frozen=True)
class ScaleConfig:
    """How often packs and snapshots are made; ``ARTIFACTS_PACK_SIZE`` / ``ARTIFACTS_SNAPSHOT_EVERY``
    override the defaults (tests use tiny ones). 0 turns making them off; reading them never is.

    Sub-packs keep a log that ends far past a pack boundary cheap to open: crossing a multiple of
    each sub-pack size makes that smaller aligned pack too, so the tail after the last full pack is
    at most 9 packs of each sub-size and 9 entries, not up to ``pack_size - 1`` single GETs. By default
    they are ``pack_size / 10`` and ``pack_size / 100`` where those divide it and are at least 10
    (1000 -> 100, 10; tiny test sizes get none); ``ARTIFACTS_SUB_PACKS`` ("4,2"; "" for none)
    names them instead."""

    pack_size: int = 1000
    snapshot_every: int = 10_000
    sub_packs: tuple[int, ...] | None = None  # None: derived from pack_size

    @classmethod
    def from_env(cls) -> ScaleConfig:
        def num(key: str, default: int) -> int:
            try:
                return max(0, int(os.environ.get(key, default)))
            except ValueError:
                return default

        subs: tuple[int, ...] | None = None
        if (raw := os.environ.get("ARTIFACTS_SUB_PACKS")) is not None:
            try:
                subs = tuple(int(x) for x in raw.replace(",", " ").split())
            except ValueError:
                subs = None
        return cls(
            num("ARTIFACTS_PACK_SIZE", cls.pack_size),
            num("ARTIFACTS_SNAPSHOT_EVERY", cls.snapshot_every),
            subs,
        )

    @property
    def pack_sizes(self) -> tuple[int, ...]:
        """The sizes packs are made in, largest first; each divides the one before (so a smaller
        pack's range lies inside one of every larger size), sizes that do not are dropped."""
        if not self.pack_size:
            return ()
        if self.sub_packs is None:
            wanted = [self.pack_size // 10, self.pack_size // 100]
            wanted = [s for s in wanted if s >= 10]
        else:
            wanted = sorted(set(self.sub_packs), reverse=True)
        sizes = [self.pack_size]
        for s in wanted:
            if 0 < s < sizes[-1] and sizes[-1] % s == 0:
                sizes.append(s)
        return tuple(sizes)


def warn(message: str) -> None:
    warnings.warn(message, StoreWarning, stacklevel=3)


class _Background:
    """A few daemon threads, so a CLI process is never held up by maintenance; `wait` drains them."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._pending = 0

    def submit(self, fn: Callable[[], Any]) -> bool:
        with self._cv:
            if self._pending >= _MAX_PENDING:
                return False
            self._pending += 1

        def run() -> None:
            try:
                fn()
            except ArtifactsError:
                pass  # a pack or snapshot not made now is made by a later reader
            except Exception as e:  # noqa: BLE001 - never let maintenance kill the caller's process
                warn(f"background maintenance failed: {type(e).__name__}: {e}")
            finally:
                with self._cv:
                    self._pending -= 1
                    self._cv.notify_all()

        threading.Thread(target=run, daemon=True, name="artifacts-maintenance").start()
        return True

    def wait(self, timeout: float | None = None) -> bool:
        with self._cv:
            return self._cv.wait_for(lambda: self._pending == 0, timeout)


class LogMismatch(Exception):
    """Internal: the log is not the one this index was built from (a copy or a backup restored over
    the root); the store rebuilds its index."""


def _check_head(index: Any, last: int, got: list[RawEntry]) -> None:
    """Entry ``last`` must still hold the bytes the index applied (an index that was never told
    their digest, e.g. one loaded from an older snapshot, learns it here)."""
    if not got:
        raise LogMismatch(f"log entry {last}, the last one applied, is not in the log")
    digest, known = hash_bytes(got[0].data), index.last_digest(last)
    if known is None:
        index.remember_digest(last, digest)
    elif known != digest:
        raise LogMismatch(f"log entry {last} is not the entry this index applied")


def _check_link(
    index: Any, last: int, got: list[RawEntry], fetch: Callable[[list[int]], list[RawEntry]]
) -> None:
    """The first new entry names (``prev``) the digest of the last one applied, when both are known.

    On a mismatch entry ``last`` is read again: if it still holds the bytes applied, the log is this
    index's and the new entry itself is wrong (apply rejects it, as a full replay does); otherwise
    the log was replaced. An index that was never told the digest of ``last`` (written before the
    chain, or loaded from such a snapshot) learns it from the log, so it checks the link as a full
    replay would.
    """
    first = next((e for e in got if e.seq == last + 1), None)
    if first is None or last == 0 or b'"prev"' not in first.data:
        return
    try:
        prev = json.loads(first.data).get("prev")
    except (ValueError, AttributeError, RecursionError):
        return  # not an entry: apply rejects it with its reason
    if not isinstance(prev, str):
        return
    known = index.last_digest(last)
    if known is None or prev != known:
        again = fetch([last])
        if not again:
            raise LogMismatch(f"log entry {last}, the last one applied, is not in the log")
        digest = hash_bytes(again[0].data)
        if known is None:
            index.remember_digest(last, digest)
        elif digest != known:
            raise LogMismatch(
                f"log entry {last + 1} follows another entry {last} than this index applied"
            )


def _cover(names: list[PackName], first: int) -> list[PackName]:
    """The chain of packs from ``first`` on, at each step the largest one starting there.

    Packs are aligned and each size divides the larger ones, so a pack starting inside a larger one
    ends inside it too: largest-first is the fewest objects, never overlaps, and reaches as far as
    any chain does. Packs of other sizes (another writer's configuration) are followed alike.
    """
    by_first: dict[int, PackName] = {}
    for n in names:
        if n.first not in by_first or n.last > by_first[n.first].last:
            by_first[n.first] = n
    chain: list[PackName] = []
    while first in by_first:
        chain.append(by_first[first])
        first = by_first[first].last + 1
    return chain


class LogReader:
    """Brings an index up to the log's head; see the module docstring."""

    def __init__(
        self, root: Root, *, store_id: str, index_format: int, config: ScaleConfig | None = None
    ) -> None:
        self.root = root
        self.store_id = store_id
        self.index_format = index_format
        self.config = config or ScaleConfig.from_env()
        self.background = _Background()
        self._recent: dict[int, bytes] = {}  # entries of ranges not yet packed, from reads/commits
        self._packed: set[PackName] = set()  # packs this process read or wrote
        self.unusable: set[str] = set()  # snapshot descriptors refused here: replace, do not skip
        self._bootstrapped: Any = None  # the index a cold start was tried for (an empty log: once)

    # -- reading -----------------------------------------------------------------------------------
    def sync(self, index: Any, *, check_head: bool = False) -> list[tuple[int, str]]:
        """Apply everything new to ``index`` (an `Index`); returns the rejected (seq, reason).

        Raises `LogMismatch` when the log is not the one the index was built from: the first new
        entry's ``prev`` is not the digest of the last entry applied, or (``check_head``, on open) that
        entry is gone or holds other bytes. Where the log is listed, the head check rides on the LIST
        (it starts one key earlier), so only its existence is checked there, not its bytes.
        """
        last = index.last_seq
        cold = last == 0 and index is not self._bootstrapped
        if cold:
            self._bootstrapped = index
            self._bootstrap(index)
            last = index.last_seq
        check_head = check_head and not cold and last > 0
        got = self._read_packs(last) if cold else []
        after = got[-1].seq if got else last
        if not self.root.prefers_listing:
            if check_head:
                _check_head(index, last, self._fetch([last]))
            got += self._probe(after)
            _check_link(index, last, got, self._fetch)
            return self.apply(index, got) if got else []
        want = self._list_new(after, with_last=check_head)
        size = min(self.config.pack_sizes, default=ScaleConfig.pack_size)
        if not cold and len(want) >= 2 * size:  # far behind: whole packs save a GET per entry
            got = self._read_packs(last)
            want = [s for s in want if not got or s > got[-1].seq]
        got += self._fetch(want)
        _check_link(index, last, got, self._fetch)
        return self.apply(index, got) if got else []

    def _probe(self, last: int) -> list[RawEntry]:
        """Where a probe is a syscall (local disk): read forward in batches that grow while full."""
        out: list[RawEntry] = []
        start, batch = last + 1, 1
        while True:
            got = self._fetch(list(range(start, start + batch)))
            out += got
            if len(got) < batch:
                return out
            start += batch
            batch = min(batch * 4, _BATCH)

    def _bootstrap(self, index: Any) -> None:
        """Load the newest usable snapshot into an empty index; warn about each one refused."""
        try:
            names = snaps.list_snapshots(self.root)
        except ArtifactsError as e:
            warn(f"cannot list snapshots ({e}); replaying from packs and the log")
            return
        schema = snaps.schema_digest(index._conn)
        with tempfile.TemporaryDirectory(prefix="artifacts-cold-") as tmp:
            while names:
                for where in names:
                    try:
                        _, path = snaps.check_snapshot(
                            self.root,
                            where,
                            index_format=self.index_format,
                            schema=schema,
                            store_id=self.store_id,
                            workdir=Path(tmp),
                        )
                        snaps.load_snapshot(index._conn, path, where)
                    except (snaps.SnapshotError, ArtifactsError) as e:
                        self.unusable.add(where)
                        warn(f"{e}; falling back to an older snapshot, packs or the log")
                        continue
                    return  # leaving the block removes the checked copy
                # everything from the hint on was refused: look further back
                oldest = min(snaps.parse_descriptor_name(n) or 0 for n in names)
                names = snaps.list_snapshots(self.root, before=oldest)

    def _read_packs(self, last: int) -> list[RawEntry]:
        """The entries of contiguous packs from ``last + 1`` on (see `_cover`), in order."""
        size = self.config.pack_size or ScaleConfig.pack_size
        listed = self.root.list_after(PACK_DIR, f"{max(0, last + 1 - size):020d}")
        names = [n for n in map(parse_pack_name, listed) if n and n.last > last]
        start = [n for n in names if n.first <= last + 1]  # may overlap what is applied
        first = max(start, key=lambda n: n.last).first if start else last + 1
        got = self._take(_cover(names, first), names)[0]
        if self.config.pack_size and got:  # the open range's bytes, for its pack (see _recent)
            keep_from = got[-1].seq // self.config.pack_size * self.config.pack_size + 1
            for e in reversed(got):
                if e.seq < keep_from:
                    break
                self._recent[e.seq] = e.data
        return got

    def _take(self, chain: list[PackName], names: list[PackName]) -> tuple[list[RawEntry], bool]:
        """The entries of ``chain``'s packs; a bad pack's range is covered by the smaller packs
        listed inside it (``names``), the rest entry by entry. False: the log itself has a gap
        there (stop, as apply would)."""
        out: list[RawEntry] = []
        for i in range(0, len(chain), _BATCH):
            part = chain[i : i + _BATCH]
            got = read_packs(self.root, part)
            for p in part:
                try:
                    data = got.get(p)
                    if data is None:
                        raise PackError(f"pack {p.path} disappeared")
                    out += decode_pack(p, data)
                    self._packed.add(p)
                except PackError as e:
                    sub, ok = self._instead(p, names, e)
                    out += sub
                    if not ok:
                        return out, False
        return out, True

    def _instead(
        self, bad: PackName, names: list[PackName], why: PackError
    ) -> tuple[list[RawEntry], bool]:
        """The entries of a bad pack's range: from the smaller packs inside it, then single GETs."""
        inner = [
            n for n in names if n.count < bad.count and bad.first <= n.first <= n.last <= bad.last
        ]
        warn(f"{why}; reading its range from {'smaller packs and ' * bool(inner)}entries")
        out, ok = self._take(_cover(inner, bad.first), inner) if inner else ([], True)
        nxt = out[-1].seq + 1 if out else bad.first
        if ok and nxt <= bad.last:
            singles = self._fetch(list(range(nxt, bad.last + 1)))
            ok = len(singles) == bad.last + 1 - nxt
            out += singles
        return out, ok

    def _list_new(self, last: int, *, with_last: bool = False) -> list[int]:
        """Entries after ``last``, by one LIST (StartAfter the last applied key), up to any gap.

        ``with_last``: start one key earlier, and raise `LogMismatch` if entry ``last`` is not there.
        """
        seqs = []
        start = last - 1 if with_last else last
        for name in self.root.list_after(LOG_DIR, log_path(start).rsplit("/", 1)[-1]):
            stem = name[:-5] if name.endswith(".json") else ""
            if len(stem) == 20 and stem.isdigit():
                seqs.append(int(stem))
        if with_last:
            if last not in seqs:
                raise LogMismatch(f"log entry {last}, the last one applied, is not in the log")
            seqs.remove(last)
        want: list[int] = []
        for s in sorted(seqs):  # stop at a gap: apply would, and the next sync lists again
            if s != last + 1 + len(want):
                break
            want.append(s)
        return want

    def _fetch(self, seqs: list[int]) -> list[RawEntry]:
        """GET entries concurrently, in order, stopping at the first one missing."""
        out: list[RawEntry] = []
        for i in range(0, len(seqs), _BATCH):
            part = seqs[i : i + _BATCH]
            got = read_entries(self.root, part)
            for s in part:
                data = got.get(s)
                if data is None:
                    return out
                out.append(RawEntry(s, data))
                if self.config.pack_size:
                    self._recent[s] = data
        return out

    # -- applying, and what crossing a boundary sets off -----------------------------------------
    def apply(
        self, index: Any, entries: list[RawEntry], decoded: Mapping[int, Entry] | None = None
    ) -> list[tuple[int, str]]:
        """Apply in order, stopping once at the newest snapshot boundary crossed to pin that state
        (``decoded``: see `Index.apply`)."""
        before = index.last_seq
        every = self.config.snapshot_every
        rejected: list[tuple[int, str]] = []
        if every and entries and entries[-1].seq // every > before // every:
            boundary = entries[-1].seq // every * every
            head = [e for e in entries if e.seq <= boundary]
            rejected += index.apply(head, decoded)
            if index.last_seq >= boundary:
                self._snapshot(index)
            entries = [e for e in entries if e.seq > boundary]
        if entries:
            rejected += index.apply(entries, decoded)
        self._packs_crossed(before, index.last_seq)
        return rejected

    def committed(
        self, index: Any, raw: RawEntry, entry: Entry | None = None
    ) -> list[tuple[int, str]]:
        """Apply this process's own new entry (``raw``; ``entry``: its ``decode``, which the commit
        did already), keeping its bytes for the pack it falls in."""
        if self.config.pack_size:
            self._recent[raw.seq] = raw.data
        return self.apply(index, [raw], {raw.seq: entry} if entry is not None else None)

    def bulk_committed(self, index: Any, before: int, raws: list[RawEntry]) -> None:
        """A bulk (`artifacts.catalog.bulk`) committed ``raws`` after ``before``, applied as it staged
        them: keep their bytes for the packs they fall in, and do what crossing a boundary does
        (a bulk ends each batch at a snapshot boundary, so the snapshot covers the same seq)."""
        if self.config.pack_size:
            for raw in raws:
                self._recent[raw.seq] = raw.data
        after, every = index.last_seq, self.config.snapshot_every
        if every and after // every > before // every and after % every == 0:
            self._snapshot(index)
        self._packs_crossed(before, after)

    def _snapshot(self, index: Any) -> None:
        pinned, _ = snaps.pin(index.path)
        fmt, sid, bad = self.index_format, self.store_id, frozenset(self.unusable)
        if not self.background.submit(
            lambda: snaps.write_snapshot(
                self.root, pinned, index_format=fmt, store_id=sid, unusable=bad
            )
        ):
            pinned.close()

    def _packs_crossed(self, before: int, after: int) -> None:
        """Make the pack of every range whose end the applied seq crossed, of each size, unless a
        larger pack holds it: one this process read or wrote, or one whose end was crossed too (so
        a writer crossing 1,000 makes the 1,000-pack alone, and a reader replaying far makes only
        the big packs and the smaller ones of the tail)."""
        sizes = self.config.pack_sizes
        if not sizes or after // sizes[-1] <= before // sizes[-1]:
            self._trim(after)
            return
        for size in sizes:
            for end in range((before // size + 1) * size, after // size * size + 1, size):
                rng = pack_bounds(end, size)
                if self._covered(rng, after):
                    continue
                self._packed.add(rng)
                have = {s: self._recent[s] for s in range(rng.first, end + 1) if s in self._recent}
                if not self.background.submit(functools.partial(self._write_pack, rng, have)):
                    self._packed.discard(rng)
        self._trim(after)

    def _covered(self, rng: PackName, after: int) -> bool:
        """``rng`` is made or read already, or lies in a larger range complete by ``after``."""
        for size in self.config.pack_sizes:
            if size >= rng.count:
                big = pack_bounds(rng.first, size)
                if big in self._packed or (size > rng.count and big.last <= after):
                    return True
        return False

    def _trim(self, after: int) -> None:
        size = self.config.pack_size
        if not size:
            return
        keep_from = after // size * size + 1
        for s in [s for s in self._recent if s < keep_from]:
            del self._recent[s]
        # smaller packs below the last full range decide nothing more (that range covers them)
        self._packed -= {p for p in self._packed if p.count < size and p.last < keep_from}

    def _write_pack(self, rng: PackName, have: dict[int, bytes]) -> None:
        missing = [s for s in range(rng.first, rng.last + 1) if s not in have]
        # a sub-pack with every entry at hand: its exclusive create alone settles it (a refused
        # PUT of a few KB costs what the HEAD would); a full pack's body is worth a HEAD first
        if (missing or rng.count >= self.config.pack_size) and self.root.exists(rng.path):
            return
        if missing:
            got = read_entries(self.root, missing)
            for s in missing:
                if s not in got:
                    return  # not in the log (yet): nothing to pack
                have[s] = got[s]
        data = encode_pack([RawEntry(s, have[s]) for s in range(rng.first, rng.last + 1)])
        if data is None:
            return  # over the bounds: left to be read entry by entry
        with contextlib.suppress(ConflictError):  # someone made the same bytes first
            self.root.create_exclusive(rng.path, data)
