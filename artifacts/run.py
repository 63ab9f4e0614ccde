"""`Run`: one execution of a script (train, evaluate, ...) and what it consumed and produced."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, overload

from .artifact import Artifact, check_json
from .catalog.entries import ArtifactUsed, RunFinished
from .catalog.records import RunRecord
from .chunks import epoch_seconds, is_stale, json_lines, merge_rows, read_chunks, read_heartbeat
from .errors import InvalidStateError, InvalidValueError
from .live import LiveHistory, clean_json
from .manifest import canonical_json
from .names import check_alias
from .pending import PendingUploads, PendingVersion
from .values import Config, Summary

if TYPE_CHECKING:
    from types import TracebackType

    from .chunks import Chunk, Heartbeat
    from .series import MetricSeries
    from .store import Store
    from .version import ArtifactVersion

__all__ = ["SERIES_ROWS", "STATUSES", "Run", "close_run", "environment", "exit_status"]

_PACKAGES = ("artifacts-store", "torch", "numpy", "fsspec", "s3fs", "blake3", "sqlite-utils")
STATUSES = ("running", "finished", "failed", "killed", "crashed")
_REMOTE_TTL = 1.0  # seconds a read-only Run reuses what it read of a live run
#: A run that ends with at least this many history rows also stores its metric series as arrays
#: (`artifacts.series`), for charts; a shorter history parses in milliseconds.
SERIES_ROWS = 1000


class Run:
    """A run record; the one returned by `Store.start_run` is active and can log.

    An active run flushes its new history rows and summary to the store from a background thread every
    ``flush_interval`` seconds (see `artifacts.live`); its finish entry writes the whole history as one
    blob and records how many chunks were flushed. Any other process reads a live run's flushed rows,
    summary and heartbeat; a run silent past the crash timeout reads as ``crashed``.
    """

    def __init__(
        self,
        store: Store,
        record: RunRecord,
        *,
        active: bool = False,
        flush_interval: float | None = None,
        flush_rows: int | None = None,
    ) -> None:
        self._store = store
        self.id: str = record.id
        self.project: str = record.project
        self._name: str | None = record.name
        self.group: str | None = record.group
        self.job_type: str | None = record.job_type
        self.user: str = record.user
        self.host: str | None = record.host
        self._status: str = record.status
        self._tags: tuple[str, ...] = record.tags
        self._notes: str = record.notes
        self._config = Config(dict(record.config), on_change=self._config_changed)
        self._summary = Summary(dict(record.summary))
        self.command: list[str] | None = list(record.command) if record.command is not None else None
        self.git: str | None = record.git
        self.env: dict[str, Any] = dict(record.env)
        self.started_at: str = record.started_at
        self.finished_at: str | None = record.finished_at
        self._history_digest: str | None = record.history
        self._chunks: int | None = record.chunks
        self._series_digest: str | None = record.series
        self._active = active
        self._config_dirty = False
        self._remote: tuple[float, Heartbeat | None, list[Chunk] | None] | None = None
        self._watch: Any = None
        self._live: LiveHistory | None = None
        if active:
            self._live = LiveHistory(
                store.root,
                self.id,
                self._summary,
                flush_interval=flush_interval,
                flush_rows=flush_rows,
                config=lambda: dict(self._config),
            )
        self._pending: PendingUploads | None = None

    def to_dict(self) -> dict[str, Any]:
        """The run's fields as JSON-ready values (what `artifacts run --json` prints, less inputs and
        outputs); the same dict describes a run node in `Lineage`."""
        return {
            "id": self.id,
            "project": self.project,
            "name": self.name,
            "group": self.group,
            "job_type": self.job_type,
            "status": self.status,
            "user": self.user,
            "host": self.host,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "summary": dict(self.summary),
            "config": dict(self.config),
            "command": self.command,
            "git": self.git,
            "env": dict(self.env),
            "tags": list(self.tags),
            "notes": self.notes,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def __repr__(self) -> str:
        return f"Run({self.id!r}, project={self.project!r}, name={self.name!r}, status={self.status!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Run) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    # -- state -----------------------------------------------------------------------------------
    @property
    def status(self) -> str:
        """``running``, ``finished``, ``failed``, ``killed``, or ``crashed``: a running run whose
        heartbeat is older than the crash timeout reads as crashed (derived, until closed)."""
        if self._status == "running" and not self._active:
            beat, _ = self._remote_state(chunks=False)
            last = beat.t if beat is not None else epoch_seconds(self.started_at)
            if is_stale(last, beat.interval if beat is not None else None):
                return "crashed"
        return self._status

    @property
    def heartbeat(self) -> float | None:
        """Epoch seconds of the last flush of a running run (None if it never flushed or ended)."""
        if self._status != "running":
            return None
        if self._live is not None:
            return time.time()
        beat, _ = self._remote_state(chunks=False)
        return beat.t if beat is not None else None

    @property
    def summary(self) -> Summary:
        """The last logged value of each metric, or what was set explicitly (``summary["best"] = x``).
        For a live run in another process: as of its last flush."""
        if self._status == "running" and not self._active:
            _, chunks = self._remote_state()
            if chunks:
                return Summary(chunks[-1].summary)
        return self._summary

    @property
    def config(self) -> Config:
        """The run's config; on an active run, changes (``config.lr = ...``, ``config.update()``) are
        flushed with the history and recorded in the finish entry."""
        if self._status == "running" and not self._active:
            _, chunks = self._remote_state()
            for chunk in reversed(chunks):
                if chunk.config is not None:
                    return Config(chunk.config)
        return self._config

    @property
    def name(self) -> str | None:
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self._store.update_run(self.id, name=value)
        self._name = value

    @property
    def tags(self) -> list[str]:
        return list(self._tags)

    @tags.setter
    def tags(self, value: Iterable[str]) -> None:
        tags = tuple(value)
        self._store.update_run(self.id, tags=tags)
        self._tags = tags

    @property
    def notes(self) -> str:
        return self._notes

    @notes.setter
    def notes(self, value: str) -> None:
        self._store.update_run(self.id, notes=value)
        self._notes = value

    def _config_changed(self) -> None:
        self._config_dirty = True
        if self._live is not None:
            self._live.config_changed()

    def _remote_state(self, chunks: bool = True) -> tuple[Heartbeat | None, list[Chunk]]:
        """Heartbeat and flushed chunks of a live run elsewhere, re-read at most once a second."""
        now = time.monotonic()
        cached = self._remote
        if (
            cached is not None
            and now - cached[0] < _REMOTE_TTL
            and (not chunks or cached[2] is not None)
        ):
            return cached[1], cached[2] or []
        beat = read_heartbeat(self._store.root, self.id)
        got = (
            read_chunks(self._store.root, self.id, hint=beat.chunks if beat else 0)
            if chunks
            else None
        )
        self._remote = (now, beat, got)
        return beat, got or []

    # -- writing (active runs only) ---------------------------------------------------------------
    def _require_active(self) -> LiveHistory:
        if self._status != "running":
            raise InvalidStateError(f"run {self.id} is {self._status}; start a new run to log more")
        if self._live is None:
            raise InvalidStateError(
                f"run {self.id} was started by another process; it is read-only here"
            )
        return self._live

    def log(
        self, metrics: Mapping[str, Any], step: int | None = None, commit: bool | None = None
    ) -> None:
        """Record metrics, with W&B's step rules (see `artifacts.live`); the latest value of each key
        also goes into ``summary``. No I/O: a background thread flushes."""
        live = self._require_active()
        if self._watch is not None:
            metrics = self._watch.add_to(metrics)
        live.log(metrics, step, commit)

    @property
    def step(self) -> int:
        """The current (open) step: where ``log()`` without ``step=`` puts its metrics."""
        return self._live.step if self._live is not None else 0

    def use_artifact(self, ref: str | ArtifactVersion) -> ArtifactVersion:
        """Declare an input: resolves ``ref`` and records the edge version -> this run."""
        self._require_active()
        version = self._store.artifact(ref if isinstance(ref, str) else ref.ref)
        self._store.catalog.commit(
            ArtifactUsed(run_id=self.id, name=version.name, version=version.version)
        )
        return self._store.artifact(version.ref)

    @overload
    def log_artifact(
        self, artifact: Artifact, aliases: Iterable[str] = (), *, wait: Literal[True] = True
    ) -> ArtifactVersion: ...

    @overload
    def log_artifact(
        self, artifact: Artifact, aliases: Iterable[str] = (), *, wait: Literal[False]
    ) -> PendingVersion: ...

    def log_artifact(
        self, artifact: Artifact, aliases: Iterable[str] = (), *, wait: bool = True
    ) -> ArtifactVersion | PendingVersion:
        """Upload and commit ``artifact`` as an output of this run.

        ``wait=False`` returns a `PendingVersion` as soon as the artifact's tensors are copied (so
        training may change them at once) and uploads and commits in the background, in logging
        order; see `artifacts.pending`. An earlier background failure nobody has seen is raised here.
        """
        self._require_active()
        if not isinstance(artifact, Artifact):
            raise InvalidValueError(
                f"log_artifact() takes an Artifact, got {type(artifact).__name__}"
            )
        aliases = [aliases] if isinstance(aliases, str) else list(aliases)
        for a in aliases:
            check_alias(a)  # bad input fails here, in the caller's thread
        pending = self._pending
        if wait:
            if pending is not None:  # keep logging order: after the pending ones
                pending.wait_all()
                pending.raise_unsurfaced()
            return self._store.log_artifact(artifact, aliases=aliases, run=self)
        if pending is None:
            pending = self._pending = PendingUploads()
        return pending.submit(
            artifact,
            lambda copy, stored: self._store._log_artifact(copy, aliases, self, None, stored=stored),
        )

    def flush(self) -> None:
        """Write what was logged so far now, instead of at the next flush interval."""
        self._require_active().flush()

    def finish(self, status: str | None = None, exit_code: int | None = None) -> None:
        """Write the whole history (one blob) and the summary, and end the run (idempotent).

        ``status`` defaults to ``finished``, or ``failed`` for a non-zero ``exit_code`` (W&B's).
        """
        if self._live is None or self._status != "running":
            return
        error: BaseException | None = None
        if self._pending is not None:  # every background upload commits (or fails) first
            self._pending.close()
            try:
                self._pending.raise_unsurfaced()
            except BaseException as e:  # noqa: BLE001 - raised below, after the run is closed
                error, status = e, "failed"
        if status is None:
            status = "finished" if not exit_code else "failed"
        if status not in STATUSES[1:]:
            raise InvalidValueError(
                f"status must be one of {', '.join(STATUSES[1:])}, not {status!r}"
            )
        summary = check_json(clean_json(dict(self._summary)), "summary")
        self._live.close()
        lines = self._live.lines
        history = series = None
        if lines:
            data = b"\n".join(lines) + b"\n"
            history = self._store.blobs.put_bytes(data).digest
            if len(lines) >= SERIES_ROWS:  # parsed back: the series are those of the very blob
                from .series import store_series  # numpy: only where there are many rows

                series = store_series(self._store.blobs, json_lines(data))
        config = None
        if self._config_dirty:
            config = check_json(clean_json(dict(self._config)), "config")
        self._store.catalog.commit(
            RunFinished(
                run_id=self.id,
                status=status,
                summary=summary,
                history=history,
                chunks=self._live.chunks,
                config=config,
                series=series,
            )
        )
        self._status = status
        self._history_digest = history
        self._series_digest = series
        self._chunks = self._live.chunks
        self._active = False
        if error is not None:
            raise error

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.finish(exit_status(exc_type, exc))

    # -- reading ---------------------------------------------------------------------------------
    def history(self) -> list[dict[str, Any]]:
        """Every step's metrics, in order, each with its ``_step``; a live run's as flushed so far."""
        if self._live is not None and self._status == "running":
            rows = [json.loads(line) for line in self._live.lines]
            return merge_rows([*rows, *self._live.pending()])
        if self._history_digest is not None:
            data = self._store.blobs.read_bytes(self._history_digest)
            return json_lines(data)
        if self._status != "running":  # a finished run with rows always has its history blob
            return []
        _, chunks = self._remote_state()
        return merge_rows(row for c in chunks for row in c.rows)

    def series(self, keys: Iterable[str] | None = None) -> dict[str, MetricSeries]:
        """Each metric's steps and finite values as numpy arrays, in step order (``keys``: only
        these), as `artifacts.series.from_rows` makes them from `history`. A finished run with many
        rows reads its series blob instead of parsing the history; a missing or unsound one is a
        `StoreWarning`, and the history is read."""
        from . import series as _series  # numpy: not for `artifacts --help`

        got = None
        if self._series_digest is not None and not self._active:
            got = _series.load(self._store.blobs, self._series_digest, f"run {self.id}")
        if got is None:
            return _series.from_rows(self.history(), keys)
        return got if keys is None else {k: got[k] for k in sorted(set(keys) & got.keys())}

    def inputs(self) -> list[ArtifactVersion]:
        """The versions this run used, in log order."""
        return self._versions("consumed")

    def outputs(self) -> list[ArtifactVersion]:
        """The versions this run logged, in log order."""
        return self._versions("produced")

    def _versions(self, kind: str) -> list[ArtifactVersion]:
        from .version import ArtifactVersion  # fsspec's callbacks: not for `artifacts --help`

        self._store.sync()
        index = self._store.index
        return [
            ArtifactVersion.from_record(self._store, index.version_record(r))
            for r in index.run_versions(self.id, kind)
        ]


def exit_status(exc_type: type[BaseException] | None, exc: BaseException | None) -> str:
    """How a block or a script ended: ``finished``, ``killed`` (Ctrl-C) or ``failed``."""
    if exc_type is None:
        return "finished"
    if issubclass(exc_type, KeyboardInterrupt):
        return "killed"
    if issubclass(exc_type, SystemExit) and isinstance(exc, SystemExit):
        return "finished" if exc.code in (None, 0) else "failed"
    return "failed"


def close_run(store: Store, run_id: str, status: str = "crashed", *, force: bool = False) -> Run:
    """Commit the finish entry of a run that cannot finish itself, keeping its flushed history."""
    if status not in STATUSES[1:]:
        raise InvalidValueError(f"status must be one of {', '.join(STATUSES[1:])}, not {status!r}")
    run = store.run(run_id)
    if run._status != "running":
        raise InvalidStateError(f"run {run_id} is already {run._status}")
    beat = read_heartbeat(store.root, run_id)
    if not force and run.status == "running":
        age = time.time() - (beat.t if beat else epoch_seconds(run.started_at))
        raise InvalidStateError(
            f"run {run_id} was alive {age:.0f} s ago: wait for the crash timeout "
            "($ARTIFACTS_CRASH_TIMEOUT) or force it (--force / force=True)"
        )
    chunks = read_chunks(store.root, run_id, hint=beat.chunks if beat else 0)
    rows = merge_rows(row for c in chunks for row in c.rows)
    history = series = None
    if rows:
        data = b"\n".join(canonical_json(r) for r in rows) + b"\n"
        history = store.blobs.put_bytes(data).digest
        if len(rows) >= SERIES_ROWS:
            from .series import store_series

            series = store_series(store.blobs, rows)
    store.catalog.commit(
        RunFinished(
            run_id=run_id,
            status=status,
            summary=chunks[-1].summary if chunks else dict(run._summary),
            history=history,
            chunks=len(chunks),
            config=next((c.config for c in reversed(chunks) if c.config is not None), None),
            series=series,
        )
    )
    return store.run(run_id)


def environment() -> dict[str, Any]:
    """Where a run executes: host, command line, git commit and library versions (no torch import)."""
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for pkg in _PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[pkg] = metadata.version(pkg)
    env: dict[str, Any] = {
        "versions": versions,
        "platform": platform.platform(),
        "cwd": os.getcwd(),
    }
    cuda = _cuda_devices()
    if cuda is not None:
        env["cuda"] = cuda
    return {
        "host": socket.gethostname(),
        "command": [sys.executable, *sys.argv],
        "git": _git_commit(),
        "env": env,
    }


def _cuda_devices() -> dict[str, Any] | None:
    """CUDA devices visible to the run (for GPU-hours), only when the script already imported torch:
    importing it here would cost seconds and initialise CUDA in processes that never use it."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        if not torch.cuda.is_available():
            return {"count": 0, "names": []}
        n = torch.cuda.device_count()
        return {"count": n, "names": [torch.cuda.get_device_name(i) for i in range(n)]}
    except Exception:  # a broken driver must not stop a run from starting
        return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and len(sha) == 40 else None
