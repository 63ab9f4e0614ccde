"""`Run`: one execution of a script (train, evaluate, ...) and what it consumed and produced."""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import socket
import subprocess
import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, overload

from .artifact import Artifact, check_json
from .catalog.entries import RunFinished
from .errors import InvalidStateError, InvalidValueError
from .manifest import canonical_json
from .names import check_alias
from .pending import PendingUploads, PendingVersion

if TYPE_CHECKING:
    import sqlite3
    from types import TracebackType

    from .store import Store
    from .version import ArtifactVersion

__all__ = ["Run", "environment"]

_PACKAGES = ("artifacts-store", "torch", "numpy", "fsspec", "s3fs", "blake3", "sqlite-utils")


class Run:
    """A run record; the one returned by `Store.start_run` is active and can log.

    Metric history is buffered in memory and written once, as a JSONL blob, when the run finishes: one
    log entry per run instead of one per step.
    """

    def __init__(self, store: Store, row: sqlite3.Row, *, active: bool = False) -> None:
        self._store = store
        self.id: str = row["id"]
        self.project: str = row["project"]
        self.name: str | None = row["name"]
        self.group: str | None = row["group_"]
        self.job_type: str | None = row["job_type"]
        self.user: str = row["user"]
        self.host: str | None = row["host"]
        self.status: str = row["status"]
        self.config: dict[str, Any] = json.loads(row["config"] or "{}")
        self.summary: dict[str, Any] = json.loads(row["summary"] or "{}")
        self.command: list[str] | None = json.loads(row["command"] or "null")
        self.git: str | None = row["git"]
        self.env: dict[str, Any] = json.loads(row["env"] or "{}")
        self.tags: list[str] = json.loads(row["tags"] or "[]")
        self.started_at: str = row["started_at"]
        self.finished_at: str | None = row["finished_at"]
        self._history_digest: str | None = row["history"]
        self._active = active
        self._history: list[dict[str, Any]] = []
        self._step = 0
        self._pending: PendingUploads | None = None

    def __repr__(self) -> str:
        return f"Run({self.id!r}, project={self.project!r}, name={self.name!r}, status={self.status!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Run) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    # -- writing (active runs only) ---------------------------------------------------------------
    def _require_active(self) -> None:
        if self.status != "running":
            raise InvalidStateError(f"run {self.id} is {self.status}; start a new run to log more")
        if not self._active:
            raise InvalidStateError(
                f"run {self.id} was started by another process; it is read-only here"
            )

    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Record metrics for one step; the latest value of each key also goes into ``summary``."""
        self._require_active()
        if not isinstance(metrics, Mapping):
            raise InvalidValueError(
                f"run.log() takes a dict of metrics, got {type(metrics).__name__}"
            )
        if step is not None and (not isinstance(step, int) or step < 0):
            raise InvalidValueError(f"step must be a non-negative int, got {step!r}")
        row = check_json(dict(metrics), "metrics", limit=1024 * 1024)
        if any(not isinstance(k, str) or k.startswith("_") for k in row):
            raise InvalidValueError("metric names must be strings not starting with '_'")
        self._step = step if step is not None else self._step
        row["_step"] = self._step
        self._history.append(row)
        self.summary.update({k: v for k, v in row.items() if k != "_step"})
        self._step += 1

    def use_artifact(self, ref: str | ArtifactVersion) -> ArtifactVersion:
        """Declare an input: resolves ``ref`` and records the edge version -> this run."""
        self._require_active()
        return self._store._use_artifact(self, ref)

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
            artifact, lambda copy: self._store.log_artifact(copy, aliases=aliases, run=self)
        )

    def finish(self, status: str = "finished") -> None:
        """Write the history and summary and mark the run finished (idempotent)."""
        if not self._active or self.status != "running":
            return
        error: BaseException | None = None
        if self._pending is not None:  # every background upload commits (or fails) first
            self._pending.close()
            try:
                self._pending.raise_unsurfaced()
            except BaseException as e:  # noqa: BLE001 - raised below, after the run is closed
                error, status = e, "failed"
        summary = check_json(_clean(self.summary), "summary")
        history = None
        if self._history:
            data = b"\n".join(canonical_json(_clean(h)) for h in self._history) + b"\n"
            history = self._store.blobs.put_bytes(data).digest
        self._store._commit(
            RunFinished(run_id=self.id, status=status, summary=summary, history=history)
        )
        self.status = status
        self._history_digest = history
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
        self.finish("finished" if exc_type is None else "failed")

    # -- reading ---------------------------------------------------------------------------------
    def history(self) -> list[dict[str, Any]]:
        """Every dict passed to `log`, in order, each with its ``_step``."""
        if self._active:
            return [dict(h) for h in self._history]
        if self._history_digest is None:
            return []
        data = self._store.blobs.read_bytes(self._history_digest)
        return [json.loads(line) for line in data.splitlines() if line.strip()]

    def inputs(self) -> list[ArtifactVersion]:
        return self._store._versions_of_run(self.id, "consumed")

    def outputs(self) -> list[ArtifactVersion]:
        return self._store._versions_of_run(self.id, "produced")


def _clean(obj: Any) -> Any:
    """Replace NaN/inf (common in losses) by None so the stored JSON is standard."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


def environment() -> dict[str, Any]:
    """Where a run executes: host, command line, git commit and library versions (no torch import)."""
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for pkg in _PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[pkg] = metadata.version(pkg)
    env: dict[str, Any] = {"versions": versions, "platform": platform.platform(), "cwd": os.getcwd()}
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
