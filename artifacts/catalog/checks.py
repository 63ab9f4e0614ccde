"""verify and gc for packs and snapshots.

verify: every pack must decode and hold exactly the bytes of the log entries it covers; every snapshot
must pass the checks a cold open makes (digest, SQLite integrity, schema, row counts), and with
``replay`` its tables must equal an index rebuilt from the log up to its seq (slow: a full replay).
A snapshot made for another index format is not a problem (the library was upgraded; it is skipped and
gc removes it once a newer one exists).

gc keeps the newest snapshot that can serve a cold open, and every newer descriptor; it removes older
descriptors, unusable ones and data that no kept descriptor names once they are older than the grace
period. A bad pack is reported by verify and skipped by readers; gc replaces it, once older than the
grace period, by the pack its log entries make (`repair_packs`). gc also removes a smaller pack (a
sub-pack of the tail, see `tail.ScaleConfig`) that a larger good pack covers, once both are older than the
grace period: a reader that listed the packs before the larger one existed may still be reading it
(`drop_covered_packs`).
"""

from __future__ import annotations

import contextlib
import sqlite3
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storage.backend import mtime_of

from ..errors import ArtifactsError, ConflictError
from . import snapshots as snaps
from .log import RawEntry, read_entries
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
    from .engine import Catalog

__all__ = ["drop_covered_packs", "gc_scale", "pack_findings", "repair_packs", "verify_scale"]

_BATCH = 256


def verify_scale(store: Catalog, *, replay: bool = False) -> list[str]:
    """Problems with packs and snapshots, one line each naming the object."""
    return _pack_problems(store) + _snapshot_problems(store, replay)


def _pack_problems(store: Catalog) -> list[str]:
    return [problem for _, problem in pack_findings(store)]


def pack_findings(store: Catalog) -> list[tuple[PackName | None, str]]:
    """Each bad pack (None for an object under packs/ that is no pack) with its problem."""
    found: list[tuple[PackName | None, str]] = []
    names = []
    for n in store.root.list_after(PACK_DIR):
        p = parse_pack_name(n)
        if p is None:
            if not n.startswith(".tmp-"):
                found.append((None, f"unexpected object {PACK_DIR}/{n} among the packs"))
        else:
            names.append(p)
    for i in range(0, len(names), _BATCH):
        part = names[i : i + _BATCH]
        got = read_packs(store.root, part)
        logs = read_entries(store.root, [s for p in part for s in range(p.first, p.last + 1)])
        for p in part:
            try:
                entries = decode_pack(p, got.get(p, b""))
            except PackError as e:
                found.append((p, str(e)))
                continue
            for raw in entries:
                stored = logs.get(raw.seq)
                if stored is None:
                    found.append((p, f"pack {p.path} holds entry {raw.seq}, which is not in the log"))
                    break
                if stored != raw.data:
                    found.append((p, f"pack {p.path} disagrees with log entry {raw.seq}"))
                    break
    return found


def repair_packs(
    store: Catalog,
    *,
    cutoff: float,
    dry_run: bool,
    findings: list[tuple[PackName | None, str]] | None = None,
) -> list[str]:
    """Replace each bad pack older than ``cutoff`` by the pack its log entries make (it is determined
    by them; removed only, where the log lacks one of them); returns the paths replaced or removed.
    ``findings``: what `pack_findings` found already.

    Readers skip a bad pack already, but each cold open then warns and reads its entries one by one,
    and its name blocks the good pack's exclusive create for ever.
    """
    done: list[str] = []
    for p, _ in pack_findings(store) if findings is None else findings:
        if p is None:
            continue  # not ours to remove
        info = store.root.head(p.path)
        if info is None or not _old(info, cutoff):
            continue
        done.append(p.path)
        if dry_run:
            continue
        seqs = list(range(p.first, p.last + 1))
        logs = read_entries(store.root, seqs)
        store.root.delete(p.path)
        data = encode_pack([RawEntry(s, logs[s]) for s in seqs]) if len(logs) == len(seqs) else None
        if data is not None:  # else the log lacks an entry, or the range is over the bounds
            with contextlib.suppress(ConflictError):  # another gc made it just now: the same bytes
                store.root.create_exclusive(p.path, data)
    return done


def drop_covered_packs(
    store: Catalog, *, cutoff: float, dry_run: bool, bad: set[PackName]
) -> list[str]:
    """Remove each pack that a larger good pack (not in ``bad``) holds, both older than ``cutoff``;
    returns the paths. Only the larger pack's age makes it safe: a reader chooses the largest pack it
    lists, so only one that listed before the larger pack existed can still be reading the smaller."""
    listed: dict[PackName, dict[str, Any]] = {}
    for info in store.root.listdir(PACK_DIR):
        if (p := parse_pack_name(_rel(PACK_DIR, info))) is not None:
            listed[p] = info
    sizes = sorted({p.count for p in listed}, reverse=True)
    doomed: list[str] = []
    for p, info in sorted(listed.items(), key=lambda i: (i[0].first, i[0].count)):
        if not _old(info, cutoff):
            continue
        for size in (s for s in sizes if s > p.count):
            big = pack_bounds(p.first, size)
            if big.last >= p.last and big not in bad and big in listed and _old(listed[big], cutoff):
                doomed.append(p.path)
                break
    if not dry_run:
        for rel in doomed:
            store.root.delete(rel)
    return doomed


def _snapshot_problems(store: Catalog, replay: bool) -> list[str]:
    from .index import INDEX_FORMAT

    problems: list[str] = []
    schema = snaps.schema_digest(store.index.connection)
    with tempfile.TemporaryDirectory(prefix="artifacts-verify-") as tmp:
        for where in snaps.all_snapshots(store.root):
            try:
                desc = snaps.read_descriptor(store.root, where)
                if desc.index_format != INDEX_FORMAT:
                    continue  # made by another library version: stale, not damaged
                if desc.seq > store.index.last_seq:
                    problems.append(f"snapshot {where} covers entries beyond the log's head")
                    continue
                _, path = snaps.check_snapshot(
                    store.root,
                    where,
                    index_format=INDEX_FORMAT,
                    schema=schema,
                    store_id=store.info["id"],
                    workdir=Path(tmp),
                )
            except (snaps.SnapshotError, ArtifactsError) as e:
                problems.append(str(e))
                continue
            try:
                if replay:
                    problems += [
                        f"snapshot {where} {d}" for d in _replay_differs(store, desc.seq, path)
                    ]
            finally:
                path.unlink()
    return problems


def _replay_differs(store: Catalog, seq: int, path: Path) -> list[str]:
    """Rebuild the index from the log entries 1..seq in a scratch file and compare every table."""
    from .index import Index
    from .log import RawEntry

    with tempfile.TemporaryDirectory(prefix="artifacts-replay-") as tmp:
        index = Index(
            Path(tmp) / "replay.sqlite",
            store_id=store.info["id"],
            admins=[store.info["created_by"]],
        )
        try:
            for lo in range(1, seq + 1, 1000):
                hi = min(seq, lo + 999)
                got = read_entries(store.root, list(range(lo, hi + 1)))
                index.apply([RawEntry(s, data) for s, data in got.items()])
            if index.last_seq != seq:
                return [f"cannot be replayed: the log stops at {index.last_seq}"]
            return _tables_differ(index.connection, path)
        finally:
            index.close()


def _tables_differ(conn: sqlite3.Connection, path: Path) -> list[str]:
    conn.execute("ATTACH DATABASE ? AS snap", (str(path),))
    try:
        out = []
        for (t,) in conn.execute(
            "SELECT name FROM snap.sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall():
            extra = conn.execute(
                f'SELECT COUNT(*) FROM (SELECT * FROM snap."{t}" EXCEPT SELECT * FROM main."{t}")'
            ).fetchone()[0]
            lacking = conn.execute(
                f'SELECT COUNT(*) FROM (SELECT * FROM main."{t}" EXCEPT SELECT * FROM snap."{t}")'
            ).fetchone()[0]
            if extra or lacking:
                out.append(
                    f"differs from a replay of the log in table {t}"
                    f" ({extra} rows not in the replay, {lacking} missing)"
                )
        return out
    finally:
        conn.execute("DETACH DATABASE snap")


def gc_scale(store: Catalog, *, cutoff: float, dry_run: bool) -> list[str]:
    """Remove what no cold open needs any more (see the module docstring); returns the paths."""
    from .index import INDEX_FORMAT

    root = store.root
    listed = {_rel(snaps.SNAPSHOT_DIR, i): i for i in root.listdir(snaps.SNAPSHOT_DIR)}
    names = sorted((n for n in listed if snaps.parse_descriptor_name(n)), reverse=True)
    descs: dict[str, snaps.Snapshot | None] = {}
    for where in names:
        try:
            descs[where] = snaps.read_descriptor(root, where)
        except (snaps.SnapshotError, ArtifactsError):
            descs[where] = None
    newest = next(
        (
            w
            for w, d in descs.items()
            if d is not None
            and d.index_format == INDEX_FORMAT
            and d.seq <= store.index.last_seq
            and root.exists(d.data_path)
        ),
        None,
    )
    doomed: list[str] = []
    data_kept: set[str] = set()
    for where, d in descs.items():
        older = newest is not None and where < newest
        if (d is None or older) and _old(listed[where], cutoff):
            doomed.append(where)
        elif d is not None:  # the newest usable, newer ones (other formats), or still young
            data_kept.add(d.data_path)
    for info in root.listdir(snaps.DATA_DIR):
        rel = _rel(snaps.DATA_DIR, info)
        if rel not in data_kept and _old(info, cutoff):
            doomed.append(rel)
    if not dry_run:
        for rel in doomed:
            root.delete(rel)
    return doomed


def _rel(prefix: str, info: dict[str, Any]) -> str:
    return f"{prefix}/{info['name'].rstrip('/').rsplit('/', 1)[-1]}"


def _old(info: dict[str, Any], cutoff: float) -> bool:
    m = mtime_of(info)
    return m is not None and m + 1.0 < cutoff
