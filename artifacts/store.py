"""`Store`: the catalog facade over one store root (blobs + commit log), with a local index."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import getpass
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from fsspec.callbacks import Callback

from storage import BlobStore, Root, StatCache, default_cache_dir, hash_bytes, open_root
from storage.blobs import Relay

from .artifact import Artifact
from .bounds import INT64_MAX, check_int
from .catalog.entries import (
    AdminAdded,
    AliasRemoved,
    AliasSet,
    ArtifactUsed,
    Entry,
    EntryError,
    QuotaSet,
    RunStarted,
    RunUpdated,
    VersionDeleted,
    VersionLogged,
    decode,
    encode,
)
from .catalog.identity import check_store_id, index_path
from .catalog.index import INDEX_FORMAT, Index, IndexMoved
from .catalog.log import CommitLog, RawEntry, backoff, log_path
from .catalog.rules import Applied, run_node, version_node
from .catalog.tail import LogMismatch, LogReader, warn
from .compare import RunComparison, VersionDiff, compare_runs, diff_versions
from .errors import (
    ConflictError,
    IntegrityError,
    InvalidNameError,
    InvalidStateError,
    InvalidValueError,
    NotFoundError,
    QuotaExceededError,
)
from .lineage import Lineage, LineageEdge, LineageNode
from .live import check_interval
from .manifest import FileEntry, Manifest, canonical_json
from .names import check_alias, check_name, parse_ref
from .run import Run, environment
from .runkeys import RunField, run_fields
from .runquery import (
    ComputeUsage,
    RunGroup,
    RunPage,
    compute,
    run_groups,
    select_runs,
    select_versions,
)
from .values import check_notes, check_tags, plain_mapping
from .version import ArtifactVersion

__all__ = ["ArtifactSummary", "Store", "open_store"]

STORE_FORMAT = 1
STORE_FILE = "store.json"
_MAX_ATTEMPTS = 200


class _Unset:
    """The default of an optional argument where None is a meaningful value."""


_UNSET = _Unset()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


def default_user() -> str:
    env = os.environ.get("ARTIFACTS_USER")
    if env:
        return env
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclass(frozen=True)
class ArtifactSummary:
    """One line of `Store.artifacts`: a name with its type, live version count and total size."""

    name: str
    type: str
    versions: int
    size: int
    updated_at: str | None


def open_store(
    url: str | os.PathLike[str] | None = None,
    *,
    user: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Store:
    """Open (creating on first use) the store at ``url``.

    ``url`` defaults to ``$ARTIFACTS_STORE``, else ``./.artifacts``; ``user`` to ``$ARTIFACTS_USER``, else
    the OS login. User names are asserted by the client, as git authors are.
    """
    url = os.fspath(url) if url is not None else os.environ.get("ARTIFACTS_STORE") or "./.artifacts"
    user = default_user() if user is None else user  # an explicit "" is an invalid name
    check_name(user, "user name")
    root = open_root(url, dict(storage_options or {}))
    return Store(root, user)


class Store:
    def __init__(self, root: Root, user: str) -> None:
        self.root = root
        self.url = root.url
        self.user = user
        self.info = self._store_info()
        self.blobs = BlobStore(root, stat_cache=StatCache())
        self.log = CommitLog(root)
        self._lock = threading.RLock()  # one SQLite connection: one transaction at a time
        self.index = Index(
            index_path(default_cache_dir(), self.info["id"], root),
            store_id=self.info["id"],
            admins=[self.info["created_by"]],
        )
        self.reader = LogReader(root, store_id=self.info["id"], index_format=INDEX_FORMAT)
        self._sync(check_head=True)

    def __repr__(self) -> str:
        return f"Store({self.url!r}, user={self.user!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self, *, wait: float = 30.0) -> None:
        """Close the index, first giving a pack or snapshot being made up to ``wait`` seconds."""
        self.reader.background.wait(wait)
        self.index.close()

    def _store_info(self) -> dict[str, Any]:
        """Read store.json, creating it (exactly once, whoever races) for a new store.

        The read is also the reachability check (a missing bucket or endpoint says so), so an existing
        store costs one request here.
        """
        try:
            data = self.root.read(STORE_FILE)
        except NotFoundError:
            self.root.check_reachable()
            info = {
                "format": STORE_FORMAT,
                "id": uuid.uuid4().hex,
                "created_at": _now(),
                "created_by": self.user,
            }
            with contextlib.suppress(ConflictError):
                self.root.create_exclusive(STORE_FILE, canonical_json(info))
                print(f"artifacts: created a new store at {self.url}", file=sys.stderr)
            data = self.root.read(STORE_FILE)
        try:
            info = json.loads(data)
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
        return info

    # -- the log ---------------------------------------------------------------------------------
    def sync(self) -> list[tuple[int, str]]:
        """Apply entries committed since the index was last brought up to date; returns rejections."""
        return self._sync()

    def _sync(self, *, check_head: bool = False) -> list[tuple[int, str]]:
        with self._lock:
            try:
                return self.reader.sync(self.index, check_head=check_head)
            except LogMismatch as e:
                warn(
                    f"the local index of {self.url} was built from a different log ({e}: a copy, or "
                    "a backup restored over the store?); rebuilding it from the store's log"
                )
                self.reindex()
                return self.index.rejected()

    def reindex(self) -> None:
        """Drop the local index and rebuild it from the log."""
        path = self.index.path
        self.index.close()
        self.index = Index(
            path, store_id=self.info["id"], admins=[self.info["created_by"]], fresh=True
        )
        self.sync()

    def _commit(self, entry: Entry, ts: str | None = None) -> Applied:
        """Validate against the head and create the next entry; on a lost race replay and retry.

        The entry is encoded and decoded again first, so a writer commits only what every reader
        accepts. Returns what the entry did, as validated at the head it was committed after.
        ``ts``: the entry's time when it is a copy of an older one (`copy_to`), else now.
        """
        with self._lock:
            return self._commit_locked(entry, ts)

    def _commit_locked(self, entry: Entry, ts: str | None = None) -> Applied:
        commit_id = uuid.uuid4().hex  # one per change, kept across retries (see _landed)
        for attempt in range(_MAX_ATTEMPTS):
            seq = self.index.last_seq + 1
            when = ts if isinstance(ts, str) else _now()
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
            try:
                applied = self.index.check(typed)
            except IndexMoved:
                self.sync()
                continue
            started = time.perf_counter()
            try:
                self.log.create(seq, data)
            except ConflictError:
                if self._landed(seq, commit_id):  # our own create, whose reply was lost
                    self.sync()
                    return applied
                backoff(attempt, time.perf_counter() - started)
                self.sync()
                continue
            rejected = dict(self.reader.committed(self.index, RawEntry(seq, data)))
            if seq in rejected:  # cannot happen when check() passed; keep the log honest anyway
                raise InvalidStateError(f"log entry {seq} was rejected: {rejected[seq]}")
            return applied
        raise ConflictError(
            f"gave up committing {entry.OP} after {_MAX_ATTEMPTS} lost races; retry later"
        )

    def _landed(self, seq: int, commit_id: str) -> bool:
        """True if entry ``seq`` is this very commit: a create retried after its first reply was
        lost (a dropped connection, a timeout) finds the entry it wrote itself and gets 412."""
        try:
            got = decode(seq, self.root.read(log_path(seq)))
        except (NotFoundError, EntryError):
            return False
        return got.commit == commit_id

    # -- runs ------------------------------------------------------------------------------------
    def start_run(
        self,
        *,
        project: str,
        config: Mapping[str, Any] | None = None,
        name: str | None = None,
        group: str | None = None,
        job_type: str | None = None,
        tags: Iterable[str] | None = None,
        notes: str | None = None,
        flush_interval: float | None = None,
        flush_rows: int | None = None,
    ) -> Run:
        """Start a run; use it as a context manager so it finishes (or fails) with the block.

        Its history and summary are flushed to the store every ``flush_interval`` seconds (default
        ``$ARTIFACTS_FLUSH_INTERVAL``, else 5) or every ``flush_rows`` rows (default 1000), from a
        background thread: a killed process loses at most the last interval.
        """
        check_name(project, "project name")
        if isinstance(tags, str):
            tags = [tags]
        tags = list(tags or ())
        if not all(isinstance(t, str) and t and len(t) <= 128 for t in tags):
            raise InvalidValueError("tags must be non-empty strings of at most 128 chars")
        for label, value in (("run name", name), ("group", group), ("job_type", job_type)):
            if value is not None and (not isinstance(value, str) or not value or len(value) > 128):
                raise InvalidValueError(f"{label} must be a non-empty string of at most 128 chars")
        cfg = plain_mapping(config, "config")
        extra: dict[str, Any] = {}
        if notes is not None:
            extra["notes"] = check_notes(notes)
        if flush_interval is not None:
            check_interval(flush_interval)
        run_id = uuid.uuid4().hex[:12]
        env = environment()
        self._commit(
            RunStarted(
                id=run_id,
                project=project,
                name=name,
                group=group,
                job_type=job_type,
                config=cfg,
                host=env["host"],
                command=tuple(env["command"]),
                git=env["git"],
                env=env["env"],
                tags=tuple(sorted(set(tags))),
                **extra,
            )
        )
        return Run(
            self,
            self.index.run(run_id),
            active=True,
            flush_interval=flush_interval,
            flush_rows=flush_rows,
        )

    def update_run(
        self,
        run_id: str,
        *,
        name: str | _Unset = _UNSET,
        tags: Iterable[str] | _Unset = _UNSET,
        notes: str | _Unset = _UNSET,
    ) -> Run:
        """Rename a run or replace its tags or notes, while it runs or after (its user or an admin)."""
        changes: dict[str, Any] = {}
        if not isinstance(name, _Unset):
            if not isinstance(name, str) or not name or len(name) > 128:
                raise InvalidValueError("run name must be a non-empty string of at most 128 chars")
            changes["name"] = name
        if not isinstance(tags, _Unset):
            changes["tags"] = check_tags(list(tags) if not isinstance(tags, str) else tags)
        if not isinstance(notes, _Unset):
            changes["notes"] = check_notes(notes)
        if not changes:
            raise InvalidValueError("update_run() needs name=, tags= or notes=")
        self.sync()
        self.index.run(run_id)  # a clear NotFoundError before committing anything
        if "tags" in changes:
            changes["tags"] = tuple(changes["tags"])
        self._commit(RunUpdated(run_id=run_id, **changes))
        return Run(self, self.index.run(run_id))

    def close_run(self, run_id: str, status: str = "crashed", *, force: bool = False) -> Run:
        """End a run that cannot end itself (its process was killed), keeping its flushed history.

        Anyone may mark a silent run ``crashed``; one with a recent heartbeat is refused unless
        ``force``.
        """
        from .run import close_run

        return close_run(self, run_id, status, force=force)

    def run(self, run_id: str) -> Run:
        self.sync()
        return Run(self, self.index.run(run_id))

    def runs(
        self,
        project: str | None = None,
        *,
        where: str | None = None,
        order_by: Sequence[str] | str | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> RunPage:
        """Runs matching the query ``where`` (see the README's query language), oldest first unless
        ``order_by`` says otherwise (``["-summary.val_acc", "started_at"]``). With ``limit``, the
        result's ``next_cursor`` passed as ``after`` gives the next page (keyset pagination)."""
        self.sync()
        with self._lock:
            rows, cursor = select_runs(
                self.index._conn,
                project=project,
                where=where,
                order_by=order_by,
                limit=limit,
                after=after,
            )
        return RunPage([Run(self, r) for r in rows], next_cursor=cursor)

    def run_groups(
        self,
        by: Sequence[str] | str = ("group", "job_type"),
        *,
        where: str | None = None,
        metrics: Iterable[str] = (),
        project: str | None = None,
    ) -> list[RunGroup]:
        """Run counts per distinct ``by`` value, with min/mean/max of each metric (``summary.<key>``)."""
        self.sync()
        with self._lock:
            return run_groups(
                self.index._conn, by=by, where=where, metrics=metrics, project=project
            )

    def run_fields(self) -> list[RunField]:
        """Every ``config.<key>`` / ``summary.<key>`` some run has, with the JSON types seen (columns
        to offer, keys to complete)."""
        self.sync()
        with self._lock:
            return run_fields(self.index._conn)

    def compute(
        self,
        by: str = "user",
        *,
        where: str | None = None,
        since: Any = None,
        until: Any = None,
    ) -> list[ComputeUsage]:
        """Runs, wall-clock hours and GPU-hours per ``by`` value (user, project, group, job_type, ...)
        within [since, until); runs still open count to their last heartbeat (or now), as estimates."""
        self.sync()
        with self._lock:
            return compute(self.index._conn, by=by, where=where, since=since, until=until)

    def _run_from_row(self, row: Any) -> Run:
        return Run(self, row)

    def _use_artifact(self, run: Run, ref: str | ArtifactVersion) -> ArtifactVersion:
        version = self.artifact(ref.ref if isinstance(ref, ArtifactVersion) else ref)
        self._commit(ArtifactUsed(run_id=run.id, name=version.name, version=version.version))
        return self._version(version.name, version.version)

    def _versions_of_run(self, run_id: str, kind: str) -> list[ArtifactVersion]:
        self.sync()
        return [ArtifactVersion.from_row(self, r) for r in self.index.run_versions(run_id, kind)]

    # -- versions --------------------------------------------------------------------------------
    def log_artifact(
        self,
        artifact: Artifact,
        aliases: Iterable[str] = (),
        *,
        run: Run | None = None,
        callback: Callback | None = None,
    ) -> ArtifactVersion:
        """Upload ``artifact``'s content (skipping blobs already stored) and commit it as a version.

        With a quota set, the exact growth of the user's usage is computed from digests before any
        upload, and checked again at commit against the replayed head.
        """
        if isinstance(aliases, str):
            aliases = [aliases]
        aliases = sorted({check_alias(a) for a in aliases})
        if len(artifact) == 0:
            raise InvalidValueError(
                f"artifact {artifact.name!r} is empty: add files before logging it"
            )
        self.sync()
        mem_digests: dict[str, str] = {}
        if self.index.quota(self.user) is not None:
            # hashed once here; the upload names each buffer's blob by this digest
            mem_digests = {s.path: hash_bytes(s.data) for s in artifact if s.data is not None}
            self._precheck_quota(artifact, mem_digests)
        manifest = self._upload(artifact, callback, mem_digests)
        same = self._same_as_latest(artifact, manifest.digest, aliases) if run is None else None
        if same is not None:
            return same
        self.blobs.put_bytes(manifest.encode())
        applied = self._commit(
            VersionLogged(
                name=artifact.name,
                type=artifact.type,
                digest=manifest.digest,
                manifest=manifest,
                metadata=dict(artifact.metadata),
                description=artifact.description,
                aliases=tuple(aliases),
                run_id=run.id if run is not None else None,
            )
        )
        assert applied.version is not None
        return self._version(artifact.name, applied.version)

    def _same_as_latest(
        self, artifact: Artifact, digest: str, aliases: list[str]
    ) -> ArtifactVersion | None:
        """The latest version when a commit would change nothing: the same content and type, every
        alias already on it, no run to record. An unchanged re-put then writes no log entry (the
        replay of a 20k-file manifest costs more than the rest of the re-put)."""
        with self._lock:
            if self._latest_if_same(artifact, digest, aliases) is None:
                return None  # the common case decided without a round trip
            self.sync()  # looks unchanged: make sure against the head before writing nothing
            return self._latest_if_same(artifact, digest, aliases)

    def _latest_if_same(
        self, artifact: Artifact, digest: str, aliases: list[str]
    ) -> ArtifactVersion | None:
        try:
            row = self.index.resolve(artifact.name)
        except NotFoundError:
            return None
        if row["digest"] != digest or row["type"] != artifact.type:
            return None  # a type mismatch is refused by the commit, with its own message
        if not set(aliases) <= set(self.index.aliases(row["name"], row["version"])):
            return None
        return ArtifactVersion.from_row(self, row)

    def _precheck_quota(self, artifact: Artifact, mem_digests: dict[str, str]) -> None:
        """Fail before any upload when the artifact's new blobs would exceed the user's quota.

        File digests come from the stat cache (one query) or one hash each, remembered for the put;
        in-memory buffers were hashed once by the caller and that digest is reused by the upload.
        """
        files = [s for s in artifact if s.source is not None and s.offset is None]
        by_path = self.blobs.digest_files([s.source for s in files], [s.key for s in files])  # type: ignore[misc]
        digests = {by_path[s.source]: s.size for s in files if s.source is not None}
        digests.update({mem_digests[s.path]: s.size for s in artifact if s.source is None})
        for s in artifact:  # one tensor of a file (safetensors): its byte range
            if s.source is not None and s.offset is not None:
                digests[self.blobs.hash_range(s.source, s.offset, s.size)] = s.size
        have = self.index.user_digests(self.user, list(digests))
        growth = sum(size for d, size in digests.items() if d not in have)
        quota, used = self.index.quota(self.user), self.index.usage(self.user)
        if quota is not None and used + growth > quota:
            raise QuotaExceededError(
                f"quota exceeded for user {self.user!r}: {artifact.name} adds {growth} bytes to "
                f"{used} used of {quota}; nothing was uploaded. Delete old versions (then gc) or "
                "ask an admin to raise the quota"
            )

    def _upload(
        self, artifact: Artifact, callback: Callback | None, mem_digests: dict[str, str]
    ) -> Manifest:
        """Store every staged file and buffer; this method alone owns the progress total."""
        staged = list(artifact)
        files = [s for s in staged if s.source is not None and s.offset is None]
        ranges = [s for s in staged if s.source is not None and s.offset is not None]
        mem = [s for s in staged if s.source is None]
        if callback is not None:
            callback.set_size(artifact.size)
        entries: list[FileEntry] = []
        if files:
            results = self.blobs.put_files(
                [s.source for s in files if s.source is not None],
                keys=[s.key for s in files],
                callback=Relay(callback),
            )
            entries += [
                FileEntry(s.path, r.digest, r.size, s.meta)
                for s, r in zip(files, results, strict=True)
            ]
        if ranges:
            relay = Relay(callback)

            def put_range(s: Any) -> FileEntry:
                r = self.blobs.put_range(s.source, s.offset, s.size, callback=relay)
                return FileEntry(s.path, r.digest, r.size, s.meta)

            entries += self.blobs._map(put_range, ranges, None if not self.root.is_local else 2)
        if mem:

            def put(s: Any) -> FileEntry:
                r = self.blobs.put_bytes(s.data, digest=mem_digests.get(s.path))
                if callback is not None:
                    callback.relative_update(s.size)
                return FileEntry(s.path, r.digest, r.size, s.meta)

            if len(mem) > 1 and not self.root.is_local:
                with ThreadPoolExecutor(min(16, len(mem))) as pool:
                    entries += list(pool.map(put, mem))
            else:
                entries += [put(s) for s in mem]
        return Manifest.build(entries)

    def artifact(self, ref: str) -> ArtifactVersion:
        """Resolve ``name``, ``name:latest``, ``name:vN`` or ``name:<alias>``."""
        r = parse_ref(ref)
        self.sync()
        return ArtifactVersion.from_row(self, self.index.resolve(r.name, r.version, r.alias))

    def _version(self, name: str, version: int) -> ArtifactVersion:
        return ArtifactVersion.from_row(self, self.index.resolve(name, version))

    def versions(self, name: str, *, where: str | None = None) -> list[ArtifactVersion]:
        """The live versions of ``name``, oldest first, optionally filtered by a query over version
        fields and ``metadata.<key>`` (``where='metadata.epoch >= 3 and aliases = "best"'``)."""
        check_name(name)
        self.sync()
        if not self.index.exists(name):
            raise NotFoundError(f"no artifact named {name!r}")
        with self._lock:
            rows = select_versions(self.index._conn, name, where)
        return [ArtifactVersion.from_row(self, r) for r in rows]

    def artifacts(self) -> list[ArtifactSummary]:
        self.sync()
        return [
            ArtifactSummary(r["name"], r["type"], r["versions"], r["size"], r["updated_at"])
            for r in self.index.artifacts()
        ]

    def set_alias(self, ref: str, alias: str) -> ArtifactVersion:
        """Point ``alias`` at the version ``ref`` resolves to (moving it from any other version)."""
        check_alias(alias)
        v = self.artifact(ref)
        self._commit(AliasSet(name=v.name, version=v.version, alias=alias))
        return self._version(v.name, v.version)

    def remove_alias(self, name: str, alias: str) -> None:
        check_name(name)
        check_alias(alias)
        self.sync()
        self.index.resolve(name, alias=alias)  # a clear NotFoundError before committing anything
        self._commit(AliasRemoved(name=name, alias=alias))

    def delete_version(self, ref: str) -> None:
        """Delete one version (its own creator or a store admin); its bytes go at the next gc."""
        r = parse_ref(ref)
        if r.version is None and r.alias is None and ":" not in ref:
            raise InvalidNameError(f"delete_version needs a version, e.g. {r.name}:v0, not {ref!r}")
        v = self.artifact(ref)
        self._commit(VersionDeleted(name=v.name, version=v.version))

    def compare_runs(self, ids: Sequence[str]) -> RunComparison:
        """Runs side by side (ids or unique prefixes): config keys that differ, summaries, inputs."""
        if isinstance(ids, str):
            raise InvalidValueError("compare_runs takes a list of run ids")
        return compare_runs([self.run(i) for i in ids])

    def diff(self, a: str, b: str) -> VersionDiff:
        """Files (tensors) added, removed and changed from version ``a`` to ``b``, and the bytes they
        share; `artifacts.torch.tensor_differences` adds max |b - a| per changed tensor."""
        return diff_versions(self.artifact(a), self.artifact(b))

    # -- lineage ---------------------------------------------------------------------------------
    def lineage(self, ref: str, direction: str = "upstream", depth: int | None = None) -> Lineage:
        """Runs and versions upstream (what made it), downstream (what used it) or both of ``ref``.

        ``ref`` is a version ref or ``run/<id>``; ``depth`` counts run+version levels.
        """
        if direction not in ("upstream", "downstream", "both"):
            raise InvalidValueError(
                f"direction must be 'upstream', 'downstream' or 'both', not {direction!r}"
            )
        if depth is not None:
            check_int(depth, "depth (levels of lineage, or None for all)", high=INT64_MAX // 2)
        self.sync()
        if ref.startswith("run/"):
            root = run_node(self.index.run(ref[4:])["id"])
        else:
            v = self.artifact(ref)
            root = version_node(v.name, v.version)
        node_ids, edge_rows = self.index.lineage(root, direction, depth)
        nodes = []
        for nid in node_ids:
            if nid.startswith("run/"):
                r = self.index.run(nid[4:])
                label = f"{r['job_type'] or 'run'} " + (
                    f"{r['name']} ({r['id']})" if r["name"] else r["id"]
                )
                nodes.append(
                    LineageNode(
                        nid,
                        "run",
                        label,
                        {
                            "run_id": r["id"],
                            "project": r["project"],
                            "name": r["name"],
                            "job_type": r["job_type"],
                            "status": r["status"],
                            "user": r["user"],
                            "config": json.loads(r["config"] or "{}"),
                            "summary": json.loads(r["summary"] or "{}"),
                        },
                    )
                )
            else:
                row = self.index.version_by_node(nid)
                if row is None:  # an edge to a version the index does not hold: not a node
                    continue
                nodes.append(
                    LineageNode(
                        nid,
                        "version",
                        nid,
                        {
                            "name": row["name"],
                            "version": row["version"],
                            "type": row["type"],
                            "digest": row["digest"],
                            "size": row["size"],
                            "deleted": bool(row["deleted"]),
                            "aliases": self.index.aliases(row["name"], row["version"]),
                        },
                    )
                )
        edges = tuple(LineageEdge(e["src"], e["dst"], e["kind"]) for e in edge_rows)
        return Lineage(root, direction, tuple(nodes), edges)

    # -- quotas and admins -----------------------------------------------------------------------
    def set_quota(self, user: str, nbytes: int | None) -> None:
        """Set ``user``'s quota in bytes (None removes it). Store admins only."""
        check_name(user, "user name")
        if nbytes is not None:
            check_int(nbytes, "quota (a number of bytes, or None for no quota)")
        self.sync()
        self._commit(QuotaSet(target=user, bytes=nbytes))

    def quota(self, user: str | None = None) -> int | None:
        self.sync()
        return self.index.quota(user or self.user)

    def usage(self, user: str | None = None) -> int:
        """Bytes of distinct blobs referenced by the live versions ``user`` created."""
        self.sync()
        return self.index.usage(user or self.user)

    def add_admin(self, user: str) -> None:
        check_name(user, "user name")
        self._commit(AdminAdded(target=user))

    def admins(self) -> list[str]:
        self.sync()
        return self.index.admins()

    def is_admin(self, user: str | None = None) -> bool:
        self.sync()
        return self.index.is_admin(user or self.user)

    # -- between stores --------------------------------------------------------------------------
    def copy_to(
        self,
        other: Store,
        refs: Iterable[str] | None = None,
        *,
        with_lineage: bool = True,
        callback: Callback | None = None,
    ) -> CopyReport:
        """Copy versions (default: all live ones) with the runs that produced and consumed them, their
        history and aliases, into ``other``; only missing blobs move. Idempotent and resumable: each
        copied entry remembers its source (see `artifacts.transfer`)."""
        from .transfer import copy_to

        return copy_to(self, other, refs, with_lineage=with_lineage, callback=callback)

    # -- maintenance -----------------------------------------------------------------------------
    def verify(
        self, ref: str | None = None, *, quick: bool = False, snapshots: bool = False
    ) -> VerifyReport:
        """Check the store (see `artifacts.maintenance.verify`); ``snapshots`` also replays the log to
        compare each index snapshot with it."""
        from .maintenance import verify

        return verify(self, ref, quick=quick, snapshots=snapshots)

    def gc(self, grace_period: float = 24 * 3600, *, dry_run: bool = False) -> GcReport:
        from .maintenance import gc

        return gc(self, grace_period=grace_period, dry_run=dry_run)


from .maintenance import GcReport, VerifyReport  # noqa: E402  (maintenance imports Store lazily)
from .transfer import CopyReport  # noqa: E402
