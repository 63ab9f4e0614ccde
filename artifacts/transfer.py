"""Copying versions with their runs, history, aliases and lineage into another store (`Store.copy_to`,
`artifacts sync SRC DST`).

A copy replays the source's accepted log entries, in log order, as new entries of the destination,
committed by the copying user (so the destination's quota applies to them) with the original time.
Each copied entry carries ``"source": {"store": <source store id>, "seq": <source entry>, "user":
<who wrote it>}``; the destination numbers versions by its own log. The destination's index keeps
which source entries were copied, and a rule refuses a second copy of one source entry
(`AlreadyCopiedError`, decided alike by every reader), so running a copy again commits nothing twice,
a copy killed half-way resumes where it stopped, and two copies into one store at once (two nodes
syncing, or a sync and its retry) never duplicate a version or a run: the later one skips what the
other committed first.

Blobs go first (only those the destination lacks, concurrently, verified as they are stored), entries
after, so no entry ever points at a missing blob. Quota is checked before the first byte moves.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from .catalog.entries import build
from .catalog.rules import AlreadyCopiedError
from .errors import (
    ConflictError,
    IntegrityError,
    InvalidValueError,
    NotFoundError,
    QuotaExceededError,
)
from .manifest import Manifest
from .untrusted import load_json

if TYPE_CHECKING:
    import sqlite3

    from fsspec.callbacks import Callback

    from .store import Store

__all__ = ["CopyReport", "copy_to"]

#: blobs up to this size are copied through memory (one request each way), larger ones stream
_SMALL = 8 * 1024 * 1024
#: into a remote store, blobs up to this size go in batches of concurrent creates ...
_BATCH_ITEM = 1024 * 1024
#: ... of at most this many bytes held in memory at once
_BATCH_BYTES = 64 * 1024 * 1024
_HEAD = ("format", "seq", "op", "user", "ts", "source")
#: operations that attach a version to a run (as its output or its input)
_EDGES = ("version_logged", "artifact_used")


@dataclass(frozen=True)
class CopyReport:
    """What one copy did: entries committed in the destination, entries found already copied,
    versions and runs among the committed ones, blobs and bytes actually stored."""

    source: str
    destination: str
    entries: int
    skipped: int
    versions: int
    runs: int
    blobs: int
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


class _Versions:
    """Which version of which artifact a ``version_logged`` entry of one store made (or re-logged)."""

    def __init__(self, store: Store) -> None:
        self.by_seq: dict[int, tuple[str, int]] = {}
        self.rows: dict[str, list[sqlite3.Row]] = {}
        for a in store.index.artifacts():
            rows = store.index.versions(a["name"], include_deleted=True)
            self.rows[a["name"]] = rows
            for r in rows:
                self.by_seq[r["seq"]] = (r["name"], r["version"])
        self.live = {
            (n, r["version"]) for n, rows in self.rows.items() for r in rows if not r["deleted"]
        }

    def of(self, seq: int, name: str, digest: str) -> tuple[str, int] | None:
        if seq in self.by_seq:
            return self.by_seq[seq]
        # same content as the latest version: the entry re-logged that one (it added a producer)
        best = None
        for r in self.rows.get(name, []):
            if (
                r["digest"] == digest
                and r["seq"] < seq
                and (best is None or r["seq"] > best["seq"])
            ):
                best = r
        return (name, best["version"]) if best is not None else None


def _entries(store: Store) -> list[tuple[int, dict[str, Any]]]:
    """The store's accepted log entries, in order (rejected ones never happened)."""
    rejected = {seq for seq, _ in store.index.rejected()}
    out = []
    for raw in store.log.read_after(0):
        if raw.seq in rejected:
            continue
        try:
            obj = load_json(raw.data, f"log entry {raw.seq}")
        except ValueError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("op"), str):
            out.append((raw.seq, obj))
    return out


def _selection(
    src: Store, versions: _Versions, refs: Iterable[str] | None, with_lineage: bool
) -> tuple[set[tuple[str, int]], set[str]]:
    if refs is None:
        every = {r["id"] for r in src.index.runs()} if with_lineage else set()
        return set(versions.live), every
    chosen: set[tuple[str, int]] = set()
    runs: set[str] = set()
    for ref in refs:
        v = src.artifact(ref)
        chosen.add((v.name, v.version))
        if not with_lineage:
            continue
        for node in src.lineage(v.ref, "upstream").nodes:
            if node.kind == "run":
                runs.add(node.attrs["run_id"])
            elif not node.attrs["deleted"]:
                chosen.add((node.attrs["name"], node.attrs["version"]))
    if with_lineage:  # the runs that produced or consumed what is copied
        for name, number in list(chosen):
            for kind in ("produced", "consumed"):
                runs.update(r["id"] for r in src.index.version_runs(f"{name}:v{number}", kind))
    return chosen, runs


def _copied(dst: Store, src_id: str) -> dict[int, int]:
    """Source entry -> destination entry, for everything copied from ``src_id`` before (the index
    keeps them: no read of the destination's whole log)."""
    return dst.index.copies(src_id)


def copy_to(
    src: Store,
    dst: Store,
    refs: Iterable[str] | None = None,
    *,
    with_lineage: bool = True,
    callback: Callback | None = None,
    max_workers: int = 16,
) -> CopyReport:
    """Copy ``refs`` (default: every live version and every run) of ``src`` into ``dst``; see module."""
    if isinstance(refs, str):
        refs = [refs]
    src_id = src.info["id"]
    if src_id == dst.info["id"]:
        raise InvalidValueError(
            f"{src.url} and {dst.url} are the same store (id {src_id}); nothing to copy"
        )
    src.sync()
    dst.sync()
    sv = _Versions(src)
    chosen, runs = _selection(src, sv, refs, with_lineage)
    copied = _copied(dst, src_id)
    dv = _Versions(dst)
    vmap: dict[tuple[str, int], int] = {}  # (name, source version) -> destination version
    plan: list[tuple[int, dict[str, Any]]] = []
    starts: dict[str, int] = {}  # run id -> the source entry that started it
    skipped = 0
    for seq, obj in _entries(src):
        op = obj["op"]
        if op == "run_started" and isinstance(obj["run"].get("id"), str):
            starts[obj["run"]["id"]] = seq
        if op == "version_logged":
            key = sv.of(seq, obj.get("name"), obj.get("digest"))  # type: ignore[arg-type]
            wanted = key in chosen and (seq in sv.by_seq or obj.get("run_id") in runs)
            if wanted and seq in copied and key is not None:
                mapped = dv.of(copied[seq], key[0], obj["digest"])
                if mapped is not None:
                    vmap[key] = mapped[1]
        elif op in ("run_started", "run_finished"):
            run_id = obj["run"].get("id") if op == "run_started" else obj.get("run_id")
            wanted = run_id in runs
        elif op == "artifact_used":
            wanted = obj.get("run_id") in runs and (obj.get("name"), obj.get("version")) in chosen
        elif op == "alias_set":
            wanted = (obj.get("name"), obj.get("version")) in chosen
        elif op == "alias_removed":
            wanted = any(n == obj.get("name") for n, _ in chosen)
        else:  # quotas, admins, deletions: the destination's own business
            wanted = False
        if not wanted:
            continue
        if seq in copied:
            skipped += 1
        else:
            plan.append((seq, obj))
    # each manifest parsed once (a 1M-file one costs seconds), for the blobs, the quota and the copy
    manifests = {
        seq: Manifest.from_json(obj["manifest"])
        for seq, obj in plan
        if obj["op"] == "version_logged"
    }
    need = _needed_blobs(src, plan, manifests)
    _precheck_quota(dst, manifests, src)
    have = dst.index.live_digests()
    todo = {d: s for d, s in need.items() if d not in have}
    from storage.progress import as_callback  # fsspec: not for a command that copies nothing

    cb = as_callback(callback)
    cb.set_size(sum(todo.values()))
    stored = _copy_blobs(src, dst, todo, cb, max_workers)
    dst.blobs.put_bytes_many([m.encode() for m in manifests.values()])  # manifests are blobs too
    counts = {"versions": 0, "runs": 0, "entries": 0, "skipped": skipped}
    for seq, obj in plan:
        _commit_copy(src_id, dst, seq, obj, vmap, sv, counts, starts)
    written = sum(todo[d] for d in stored)
    return CopyReport(
        src.url,
        dst.url,
        counts["entries"],
        counts["skipped"],
        counts["versions"],
        counts["runs"],
        len(stored),
        written,
    )


def _needed_blobs(
    src: Store, plan: list[tuple[int, dict[str, Any]]], manifests: dict[int, Manifest]
) -> dict[str, int]:
    need: dict[str, int] = {}
    for seq, obj in plan:
        if obj["op"] == "version_logged":
            need.update(manifests[seq].blobs())
        elif obj["op"] == "run_finished":
            for key in ("history", "series"):
                if isinstance(obj.get(key), str):
                    need[obj[key]] = src.blobs.size(obj[key])
    return need


def _precheck_quota(dst: Store, manifests: dict[int, Manifest], src: Store) -> None:
    quota = dst.index.quota(dst.user)
    if quota is None:
        return
    digests: dict[str, int] = {}
    for manifest in manifests.values():
        digests.update(manifest.blobs())
    have = dst.index.user_digests(dst.user, list(digests))
    growth = sum(size for d, size in digests.items() if d not in have)
    used = dst.index.usage(dst.user)
    if used + growth > quota:
        raise QuotaExceededError(
            f"quota exceeded for user {dst.user!r} in {dst.url}: copying from {src.url} adds {growth} "
            f"bytes to {used} used of {quota}; nothing was copied. Copy fewer versions or ask an "
            "admin of the destination to raise the quota"
        )


def _copy_blobs(
    src: Store, dst: Store, todo: dict[str, int], cb: Callback, max_workers: int
) -> list[str]:
    """Store every blob of ``todo`` in ``dst``, verified against its digest; the ones written.

    Into a remote store, small blobs go in batches of concurrent exclusive creates (one task each
    on the filesystem's event loop, as s3fs's own ``put`` sends files); larger ones stream, a few
    threads at once.
    """
    small = sorted(d for d in todo if dst.root.remote and todo[d] <= _BATCH_ITEM)
    written = _copy_small(src, dst, small, todo, cb) if small else []

    from storage.progress import Relay

    def one(digest: str) -> str | None:
        relay = Relay(cb)
        local = src.blobs.local_path(digest)
        if local is not None:
            if not local.exists():
                raise _missing(src, digest)
            r = dst.blobs.put_file(local, callback=relay)
        elif todo[digest] <= _SMALL:
            r = dst.blobs.put_bytes(src.blobs.read_bytes(digest, verify=True))
            relay.relative_update(todo[digest])
        else:
            with src.blobs.open(digest, verify=True) as f:
                r = dst.blobs.put_stream(f, callback=relay)
        _check_copied(src, digest, r.digest)
        return digest if r.written else None

    chosen = set(small)
    items = sorted(d for d in todo if d not in chosen)
    workers = max(1, min(max_workers, len(items)))
    # two disks gain nothing past two copies at once; a round trip on either side wants many
    workers = min(workers, max(src.blobs.concurrency, dst.blobs.concurrency))
    with ThreadPoolExecutor(workers) as pool:
        return written + [d for d in pool.map(one, items) if d is not None]


def _copy_small(
    src: Store, dst: Store, digests: list[str], todo: dict[str, int], cb: Callback
) -> list[str]:
    """Small blobs into a remote store, a bounded batch at a time (read, checked, created)."""
    written: list[str] = []
    start = 0
    while start < len(digests):
        end, size = start, 0
        while end < len(digests) and (end == start or size + todo[digests[end]] <= _BATCH_BYTES):
            size += todo[digests[end]]
            end += 1
        batch = digests[start:end]
        start = end
        if src.root.os_paths:
            datas = []
            for d in batch:
                try:
                    datas.append(src.blobs.read_bytes(d, verify=False))  # checked below
                except NotFoundError:
                    raise _missing(src, d) from None
        else:
            got = src.root.read_many([src.blobs.relpath(d) for d in batch])
            missing = [d for d in batch if src.blobs.relpath(d) not in got]
            if missing:
                raise _missing(src, missing[0])
            datas = [got[src.blobs.relpath(d)] for d in batch]
        results = dst.blobs.put_bytes_many(datas, callback=cb)
        for d, r in zip(batch, results, strict=True):
            _check_copied(src, d, r.digest)  # before any entry refers to it
            if r.written:
                written.append(d)
    return written


def _missing(src: Store, digest: str) -> NotFoundError:
    return NotFoundError(f"blob {digest} is missing from {src.url}; run `artifacts verify`")


def _check_copied(src: Store, digest: str, got: str) -> None:
    if got != digest:
        raise IntegrityError(
            f"blob {digest} in {src.url} is corrupt (it hashes to {got}); nothing that refers "
            "to it was copied. Run `artifacts verify` on the source"
        )


def _commit_copy(
    src_id: str,
    dst: Store,
    seq: int,
    obj: dict[str, Any],
    vmap: dict[tuple[str, int], int],
    sv: _Versions,
    counts: dict[str, int],
    starts: dict[str, int],
) -> None:
    op = obj["op"]
    payload = {k: v for k, v in obj.items() if k not in _HEAD}
    payload["source"] = {"store": src_id, "seq": seq, "user": obj.get("user")}
    run_seq = starts.get(payload.get("run_id")) if op in _EDGES else None  # type: ignore[arg-type]
    if run_seq is not None:  # lets the edge join the run an earlier, partial sync copied finished
        payload["source"]["run_seq"] = run_seq
    if dst.index.copy_of(src_id, seq) is not None:  # a concurrent copy committed it meanwhile
        _copied_meanwhile(src_id, dst, seq, obj, vmap, sv, counts)
        return
    if op == "run_started":
        run_id = payload["run"]["id"]
        try:
            dst.index.run(run_id)
        except NotFoundError:
            pass
        else:
            if dst.index.copy_of(src_id, seq) is not None:  # the other copy got there in between
                _copied_meanwhile(src_id, dst, seq, obj, vmap, sv, counts)
                return
            raise ConflictError(
                f"run {run_id} exists in {dst.url} but was not copied from this source; "
                "nothing more was copied"
            )
        counts["runs"] += 1
    elif op in _EDGES and not _attachable(dst, src_id, payload.get("run_id"), run_seq):
        # the run is finished in the destination and was not copied from this source by this user:
        # keep the version, lose only this edge (the destination cannot reopen someone's run)
        if op == "artifact_used":
            return
        payload["run_id"] = None
    if op in ("artifact_used", "alias_set"):
        key = (obj["name"], obj["version"])
        if key not in vmap:
            return  # its version was not copied (cannot happen for a selected one)
        payload["version"] = vmap[key]
    if op == "alias_removed":
        try:
            dst.index.resolve(obj["name"], alias=obj["alias"])
        except NotFoundError:
            return
    try:
        applied = dst.catalog.commit(build(op, payload), ts=obj.get("ts"))
    except AlreadyCopiedError:  # another sync into this store committed it just before us
        _copied_meanwhile(src_id, dst, seq, obj, vmap, sv, counts)
        return
    counts["entries"] += 1
    if op == "version_logged":
        key = sv.of(seq, obj["name"], obj["digest"])  # type: ignore[assignment]
        if key is not None and applied.version is not None:
            vmap[key] = applied.version  # a new version, or the latest one it equals
        counts["versions"] += 1


def _copied_meanwhile(
    src_id: str,
    dst: Store,
    seq: int,
    obj: dict[str, Any],
    vmap: dict[tuple[str, int], int],
    sv: _Versions,
    counts: dict[str, int],
) -> None:
    """Count an entry another copy committed as skipped, and learn the version it made."""
    counts["skipped"] += 1
    if obj["op"] != "version_logged":
        return
    key = sv.of(seq, obj["name"], obj["digest"])
    there = dst.index.copy_of(src_id, seq)
    if key is None or there is None:
        return
    mapped = _Versions(dst).of(there, key[0], obj["digest"])
    if mapped is not None:
        vmap[key] = mapped[1]


def _attachable(dst: Store, src_id: str, run_id: str | None, run_seq: int | None) -> bool:
    """Whether the destination's rules take an edge to ``run_id``: the run is running, or it is the
    copy of the source's run (by this user), finished by an earlier sync of other refs."""
    if run_id is None:
        return True
    try:
        row = dst.index.run(run_id)
    except NotFoundError:
        return False
    if row["status"] == "running":
        return True
    return (
        run_seq is not None
        and row["user"] == dst.user
        and dst.index.copy_of(src_id, run_seq) == row["seq"]
    )
