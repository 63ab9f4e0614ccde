"""`Store`: the catalog facade over one store root (blobs + commit log), with a local index."""

from __future__ import annotations

import contextlib
import getpass
import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from storage import BlobStore, Root, hash_bytes, open_root
from storage.gcpause import gc_paused
from storage.quarantine import set_aside_among

from .artifact import Artifact
from .bounds import INT64_MAX, check_int
from .catalog.engine import Catalog
from .catalog.entries import (
    AdminAdded,
    AliasRemoved,
    AliasSet,
    QuotaSet,
    RunStarted,
    RunUpdated,
    VersionDeleted,
    VersionLogged,
)
from .catalog.index import Index
from .catalog.log import CommitLog
from .catalog.records import RunRecord
from .catalog.rules import run_node, version_node
from .errors import (
    InvalidNameError,
    InvalidStateError,
    InvalidValueError,
    NotFoundError,
    QuotaExceededError,
)
from .lineage import Lineage, LineageEdge, LineageNode
from .live import check_interval
from .manifest import FileEntry, Manifest, encode_plain
from .names import check_alias, check_name, parse_ref
from .run import Run, environment
from .values import check_notes, check_tags, plain_mapping
from .version import ArtifactVersion

if TYPE_CHECKING:
    from fsspec.callbacks import Callback

    from .bulk import BulkCommit
    from .catalog.bulk import Bulk
    from .catalog.maintenance import GcReport, VerifyReport
    from .catalog.tail import LogReader
    from .compare import RunComparison, VersionDiff
    from .runkeys import RunField
    from .runquery import ComputeUsage, RunGroup, RunPage

__all__ = ["ArtifactSummary", "Store", "open_store"]


class _Unset:
    """The default of an optional argument where None is a meaningful value."""


_UNSET = _Unset()


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
    create: bool = True,
) -> Store:
    """Open (creating on first use) the store at ``url``; with ``create=False`` a missing store is
    `StoreNotFoundError` instead (what the CLI wants, at no extra request).

    ``url`` defaults to ``$ARTIFACTS_STORE``, else ``./.artifacts``; ``user`` to ``$ARTIFACTS_USER``, else
    the OS login. User names are asserted by the client, as git authors are.
    """
    url = os.fspath(url) if url is not None else os.environ.get("ARTIFACTS_STORE") or "./.artifacts"
    user = default_user() if user is None else user  # an explicit "" is an invalid name
    check_name(user, "user name")
    root = open_root(url, dict(storage_options or {}))
    return Store(root, user, create=create)


class Store:
    """The user-facing catalog of one store: runs, artifact versions, lineage, quotas.

    A facade over `artifacts.catalog.Catalog` (the engine: store.json, blobs, log, index, commits);
    ``store.catalog`` is that engine, and ``root``, ``blobs``, ``log``, ``index`` are its parts.
    """

    def __init__(self, root: Root, user: str, *, create: bool = True) -> None:
        self.catalog = Catalog(root, user, create=create)

    @property
    def url(self) -> str:
        return self.catalog.url

    @property
    def user(self) -> str:
        return self.catalog.user

    @property
    def info(self) -> dict[str, Any]:
        """store.json: format, id, created_at, created_by."""
        return self.catalog.info

    @property
    def root(self) -> Root:
        return self.catalog.root

    @property
    def blobs(self) -> BlobStore:
        return self.catalog.blobs

    @property
    def log(self) -> CommitLog:
        return self.catalog.log

    @property
    def index(self) -> Index:
        return self.catalog.index

    @property
    def reader(self) -> LogReader:
        """How the index finds new log entries (snapshots, packs, single entries)."""
        return self.catalog.reader

    def __repr__(self) -> str:
        return f"Store({self.url!r}, user={self.user!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self, *, wait: float = 30.0) -> None:
        """Close the index, first giving a pack or snapshot being made up to ``wait`` seconds."""
        self.catalog.close(wait=wait)

    # -- the log ---------------------------------------------------------------------------------
    def sync(self) -> list[tuple[int, str]]:
        """Apply entries committed since the index was last brought up to date; returns rejections."""
        return self.catalog.sync()

    def reindex(self) -> int:
        """Drop the local index and rebuild it from the log; returns the entries replayed."""
        return self.catalog.reindex()

    @contextlib.contextmanager
    def bulk(self, *, batch: int = 1000) -> Iterator[BulkCommit]:
        """Many versions and aliases, committed as the very log entries one call each would write,
        in batches of ``batch`` (one index transaction and one pass over the log each): for importing
        history from another tracker, or generating a large store. See `artifacts.bulk.BulkCommit`.

        On leaving the block the last batch is committed, also when the block raised an `Exception`
        (every call that returned was accepted, as a commit would have been); on a `BaseException`
        (Ctrl-C) the uncommitted batch is dropped, as a killed process drops it.
        """
        from .bulk import BulkCommit

        b = BulkCommit(self, batch)
        try:
            yield b
        except Exception:
            b.close()
            raise
        except BaseException:
            b.rollback()
            raise
        b.close()

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
        tags = check_tags(list(tags or ()))
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
        self.catalog.commit(
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
            self.index.run_record(run_id),
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
        self.catalog.commit(RunUpdated(run_id=run_id, **changes))
        return Run(self, self.index.run_record(run_id))

    def close_run(self, run_id: str, status: str = "crashed", *, force: bool = False) -> Run:
        """End a run that cannot end itself (its process was killed), keeping its flushed history.

        Anyone may mark a silent run ``crashed``; one with a recent heartbeat is refused unless
        ``force``.
        """
        from .run import close_run

        return close_run(self, run_id, status, force=force)

    def run(self, run_id: str) -> Run:
        """The run with this id (as recorded in the log; read-only unless this process started it)."""
        self.sync()
        return Run(self, self.index.run_record(run_id))

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
        from .runquery import RunPage, select_runs  # the query engine: not for a put or an ls

        self.sync()
        with self.catalog.reading() as conn:
            rows, cursor = select_runs(
                conn, project=project, where=where, order_by=order_by, limit=limit, after=after
            )
        return RunPage([Run(self, RunRecord.from_row(r)) for r in rows], next_cursor=cursor)

    def run_groups(
        self,
        by: Sequence[str] | str = ("group", "job_type"),
        *,
        where: str | None = None,
        metrics: Iterable[str] = (),
        project: str | None = None,
    ) -> list[RunGroup]:
        """Run counts per distinct ``by`` value, with min/mean/max of each metric (``summary.<key>``)."""
        from .runquery import run_groups

        self.sync()
        with self.catalog.reading() as conn:
            return run_groups(conn, by=by, where=where, metrics=metrics, project=project)

    def run_fields(self) -> list[RunField]:
        """Every ``config.<key>`` / ``summary.<key>`` some run has, with the JSON types seen (columns
        to offer, keys to complete)."""
        from .runkeys import run_fields

        self.sync()
        with self.catalog.reading() as conn:
            return run_fields(conn)

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
        from .runquery import compute

        self.sync()
        with self.catalog.reading() as conn:
            return compute(conn, by=by, where=where, since=since, until=until)

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
        return self._log_artifact(artifact, aliases, run, callback)

    def _log_artifact(
        self,
        artifact: Artifact,
        aliases: Iterable[str],
        run: Run | None,
        callback: Callback | None,
        bulk: Bulk | None = None,
        stored: Callable[[str], None] | None = None,
    ) -> ArtifactVersion:
        """`log_artifact`, or with ``bulk`` its staged form: the index is read as the bulk's batch
        has it (no sync in between) and the entry is staged there instead of committed alone. The
        cyclic gc is paused throughout (20k files: results, entries, rows; see storage.gcpause).
        ``stored(path)``: called once an in-memory buffer's blob is stored and the buffer is read no
        more (a background upload frees its private copy there: `artifacts.pending`)."""
        with gc_paused():
            return self._log_artifact_paused(artifact, aliases, run, callback, bulk, stored)

    def _log_artifact_paused(
        self,
        artifact: Artifact,
        aliases: Iterable[str],
        run: Run | None,
        callback: Callback | None,
        bulk: Bulk | None,
        stored: Callable[[str], None] | None,
    ) -> ArtifactVersion:
        aliases, mem_digests = self._precheck(artifact, aliases, sync=bulk is None)
        known: dict[str, str] | None = None
        if run is None:
            same, known = self._unchanged(artifact, aliases, sync=bulk is None)
            if same is not None:
                return same
        manifest = self._upload(artifact, callback, mem_digests, known, stored)
        same = (
            self._same_as_latest(artifact, manifest.digest, aliases, sync=bulk is None)
            if run is None
            else None
        )
        if same is not None:
            return same
        self.blobs.put_bytes(manifest.encode())
        applied = (bulk.add if bulk is not None else self.catalog.commit)(
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

    def precheck(self, artifact: Artifact, aliases: Iterable[str] = ()) -> None:
        """Raise what `log_artifact` would refuse before any upload (bad aliases, an empty artifact,
        a type other than the name's, the quota), so a caller can fail before it records anything
        (``artifacts put --project`` checks before it starts its run)."""
        self._precheck(artifact, aliases)

    def _precheck(
        self, artifact: Artifact, aliases: Iterable[str], *, sync: bool = True
    ) -> tuple[list[str], dict[str, str]]:
        """The checked aliases, and the in-memory buffers' digests when a quota needed them."""
        if isinstance(aliases, str):
            aliases = [aliases]
        checked = sorted({check_alias(a) for a in aliases})
        if len(artifact) == 0:
            raise InvalidValueError(
                f"artifact {artifact.name!r} is empty: add files before logging it"
            )
        if sync:
            self.sync()
        known = self.index.artifact_type(artifact.name)
        if known is not None and known != artifact.type:
            raise InvalidStateError(
                f"artifact {artifact.name!r} has type {known!r}, not {artifact.type!r}; "
                "use another name"
            )
        mem_digests: dict[str, str] = {}
        if self.index.quota(self.user) is not None:
            # hashed once here; the upload names each buffer's blob by this digest
            mem_digests = {s.path: hash_bytes(s.data) for s in artifact if s.data is not None}
            self._precheck_quota(artifact, mem_digests)
        return checked, mem_digests

    def _same_as_latest(
        self, artifact: Artifact, digest: str, aliases: list[str], *, sync: bool = True
    ) -> ArtifactVersion | None:
        """The latest version when a commit would change nothing: the same content and type, every
        alias already on it, no run to record. An unchanged re-put then writes no log entry (the
        replay of a 20k-file manifest costs more than the rest of the re-put)."""
        with self.catalog.lock:
            same = self._latest_if_same(artifact, digest, aliases)
            if same is None or not sync:  # decided without a round trip (a bulk reads its batch)
                return same
            self.sync()  # looks unchanged: make sure against the head before writing nothing
            return self._latest_if_same(artifact, digest, aliases)

    def _unchanged(
        self, artifact: Artifact, aliases: list[str], *, sync: bool = True
    ) -> tuple[ArtifactVersion | None, dict[str, str] | None]:
        """The latest version when ``artifact`` is whole local files whose stat-cache digests make
        exactly its manifest (an unchanged re-put), decided before anything is read, stored or
        freshened; and the digests the stat cache knew (path -> digest; None if it was not asked), for
        the put when not.

        Skipping the put is sound because the version already exists: its blobs were stored before
        it was committed and gc keeps what a live version refers to, so nothing needs freshening;
        a blob that `verify` set aside as corrupt is the exception (its content must be stored
        again, which repairs the version), so any of those among the digests takes the full put.
        An unchanged 20k-file re-put costs the walk, one stat-cache query and one manifest encoding
        (freshening every blob was 0.4 s of its 1.1 s).
        """
        cache = self.blobs.stat_cache
        files = list(artifact)
        if cache is None or any(s.source is None or s.offset is not None or s.meta for s in files):
            return None, None
        known = cache.lookup_many((s.source, s.key) for s in files)  # type: ignore[misc]
        if len(known) < len(files):
            return None, known
        rows = [(s.path, known[s.source], s.size, s.meta) for s in files]  # type: ignore[index]
        data = encode_plain(rows)  # a walk's order is usually sorted already
        if data is None:
            data = encode_plain(sorted(rows))
        if data is None:
            return None, known
        same = self._same_as_latest(artifact, hash_bytes(data), aliases, sync=sync)
        if same is None or set_aside_among(self.root, {r[1] for r in rows}):
            return None, known
        return same, known

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
        return self._from_row(row)

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
        self,
        artifact: Artifact,
        callback: Callback | None,
        mem_digests: dict[str, str],
        known: dict[str, str] | None = None,
        stored: Callable[[str], None] | None = None,
    ) -> Manifest:
        """Store every staged file and buffer; this method alone owns the progress total. ``known``:
        the stat cache's digests of files, already looked up (path -> digest); ``stored``: see
        `_log_artifact`."""
        staged = list(artifact)
        files = [s for s in staged if s.source is not None and s.offset is None]
        ranges = [s for s in staged if s.source is not None and s.offset is not None]
        mem = [s for s in staged if s.source is None]
        if callback is not None:
            callback.set_size(artifact.size)
        entries: list[FileEntry] = []
        if files:
            from storage.progress import Relay  # fsspec loads here, where bytes may move

            results = self.blobs.put_files(
                [s.source for s in files if s.source is not None],
                keys=[s.key for s in files],
                callback=Relay(callback),
                known=known,
            )
            entries += [
                FileEntry(s.path, r.digest, r.size, s.meta)
                for s, r in zip(files, results, strict=True)
            ]
        if ranges:
            results = self.blobs.put_ranges(
                [(s.source, s.offset or 0, s.size) for s in ranges if s.source is not None],
                callback=callback,
            )
            entries += [
                FileEntry(s.path, r.digest, r.size, s.meta)
                for s, r in zip(ranges, results, strict=True)
            ]
        if mem:
            results = self.blobs.put_many_bytes(
                [s.data if s.data is not None else b"" for s in mem],
                digests=[mem_digests.get(s.path) for s in mem],
                callback=callback,
                stored=None if stored is None else lambda i: stored(mem[i].path),
            )
            entries += [
                FileEntry(s.path, r.digest, r.size, s.meta)
                for s, r in zip(mem, results, strict=True)
            ]
        return Manifest.build(entries)

    def artifact(self, ref: str) -> ArtifactVersion:
        """Resolve ``name``, ``name:latest``, ``name:vN`` or ``name:<alias>``."""
        r = parse_ref(ref)
        self.sync()
        return self._from_row(self.index.resolve(r.name, r.version, r.alias))

    def _from_row(self, row: Any) -> ArtifactVersion:
        return ArtifactVersion.from_record(self, self.index.version_record(row))

    def _version(self, name: str, version: int) -> ArtifactVersion:
        return self._from_row(self.index.resolve(name, version))

    def versions(self, name: str, *, where: str | None = None) -> list[ArtifactVersion]:
        """The live versions of ``name``, oldest first, optionally filtered by a query over version
        fields and ``metadata.<key>`` (``where='metadata.epoch >= 3 and aliases = "best"'``)."""
        from .runquery import select_versions

        check_name(name)
        self.sync()
        if not self.index.exists(name):
            raise NotFoundError(f"no artifact named {name!r}")
        with self.catalog.reading() as conn:
            rows = select_versions(conn, name, where)
        return [self._from_row(r) for r in rows]

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
        self.catalog.commit(AliasSet(name=v.name, version=v.version, alias=alias))
        return self._version(v.name, v.version)

    def remove_alias(self, name: str, alias: str) -> None:
        check_name(name)
        check_alias(alias)
        self.sync()
        self.index.resolve(name, alias=alias)  # a clear NotFoundError before committing anything
        self.catalog.commit(AliasRemoved(name=name, alias=alias))

    def delete_version(self, ref: str) -> None:
        """Delete one version (its own creator or a store admin); its bytes go at the next gc."""
        r = parse_ref(ref)
        if r.version is None and r.alias is None and ":" not in ref:
            raise InvalidNameError(f"delete_version needs a version, e.g. {r.name}:v0, not {ref!r}")
        v = self.artifact(ref)
        self.catalog.commit(VersionDeleted(name=v.name, version=v.version))

    def compare_runs(self, ids: Sequence[str]) -> RunComparison:
        """Runs side by side (ids or unique prefixes): config keys that differ, summaries, inputs."""
        if isinstance(ids, str):
            raise InvalidValueError("compare_runs takes a list of run ids")
        from .compare import compare_runs  # (and the query engine it uses): not for a put or an ls

        return compare_runs([self.run(i) for i in ids])

    def diff(self, a: str, b: str) -> VersionDiff:
        """Files (tensors) added, removed and changed from version ``a`` to ``b``, and the bytes they
        share; `artifacts.torch.tensor_differences` adds max |b - a| per changed tensor."""
        from .compare import diff_versions

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
            root = run_node(self.index.run_record(ref[4:]).id)
        else:
            v = self.artifact(ref)
            root = version_node(v.name, v.version)
        node_ids, edge_rows = self.index.lineage(root, direction, depth)
        nodes = []
        for nid in node_ids:
            if nid.startswith("run/"):
                run = Run(self, self.index.run_record(nid[4:]))
                label = f"{run.job_type or 'run'} " + (
                    f"{run.name} ({run.id})" if run.name else run.id
                )
                attrs = {("run_id" if k == "id" else k): v for k, v in run.to_dict().items()}
                nodes.append(LineageNode(nid, "run", label, attrs))
            else:
                row = self.index.version_by_node(nid)
                if row is None:  # an edge to a version the index does not hold: not a node
                    continue
                record = self.index.version_record(row)
                version = ArtifactVersion.from_record(self, record)
                attrs = {**version.to_dict(), "deleted": bool(record.deleted)}
                nodes.append(LineageNode(nid, "version", nid, attrs))
        edges = tuple(LineageEdge(e["src"], e["dst"], e["kind"]) for e in edge_rows)
        return Lineage(root, direction, tuple(nodes), edges)

    # -- quotas and admins -----------------------------------------------------------------------
    def set_quota(self, user: str, nbytes: int | None) -> None:
        """Set ``user``'s quota in bytes (None removes it). Store admins only."""
        check_name(user, "user name")
        if nbytes is not None:
            check_int(nbytes, "quota (a number of bytes, or None for no quota)")
        self.sync()
        self.catalog.commit(QuotaSet(target=user, bytes=nbytes))

    def quota(self, user: str | None = None) -> int | None:
        self.sync()
        return self.index.quota(user or self.user)

    def usage(self, user: str | None = None) -> int:
        """Bytes of distinct blobs referenced by the live versions ``user`` created."""
        self.sync()
        return self.index.usage(user or self.user)

    def add_admin(self, user: str) -> None:
        check_name(user, "user name")
        self.catalog.commit(AdminAdded(target=user))

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
        """Check the log, its packs and snapshots, and every blob it refers to (with ``ref``: that
        version's files and manifest only).

        ``quick`` checks existence and size only; otherwise every blob is re-hashed. ``snapshots``
        also replays the log to compare each index snapshot with it (slow).
        """
        from .catalog.maintenance import verify

        if ref is None:
            return verify(self.catalog, quick=quick, snapshots=snapshots)
        v = self.artifact(ref)
        wanted = {f.digest: f"{v.ref}/{f.path}" for f in v.files()}
        wanted.setdefault(v.digest, f"manifest of {v.ref}")
        return verify(self.catalog, wanted, quick=quick)

    def gc(self, grace_period: float = 24 * 3600, *, dry_run: bool = False) -> GcReport:
        """Delete blobs no live version or run refers to, older than ``grace_period`` seconds."""
        from .catalog.maintenance import gc

        return gc(self.catalog, grace_period=grace_period, dry_run=dry_run)


from .transfer import CopyReport  # noqa: E402
