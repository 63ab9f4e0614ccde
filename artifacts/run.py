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
from typing import TYPE_CHECKING, Any

from .artifact import Artifact, check_json
from .catalog.entries import ArtifactUsed, RunFinished
from .catalog.records import RunRecord
from .errors import InvalidStateError, InvalidValueError
from .manifest import canonical_json
from .version import ArtifactVersion

if TYPE_CHECKING:
    from types import TracebackType

    from .store import Store

__all__ = ["Run", "environment"]

_PACKAGES = ("artifacts-store", "torch", "numpy", "fsspec", "s3fs", "blake3", "sqlite-utils")


class Run:
    """A run record; the one returned by `Store.start_run` is active and can log.

    Metric history is buffered in memory and written once, as a JSONL blob, when the run finishes: one
    log entry per run instead of one per step.
    """

    def __init__(self, store: Store, record: RunRecord, *, active: bool = False) -> None:
        self._store = store
        self.id: str = record.id
        self.project: str = record.project
        self.name: str | None = record.name
        self.group: str | None = record.group
        self.job_type: str | None = record.job_type
        self.user: str = record.user
        self.host: str | None = record.host
        self.status: str = record.status
        self.config: dict[str, Any] = dict(record.config)
        self.summary: dict[str, Any] = dict(record.summary)
        self.command: list[str] | None = list(record.command) if record.command is not None else None
        self.git: str | None = record.git
        self.env: dict[str, Any] = dict(record.env)
        self.tags: list[str] = list(record.tags)
        self.started_at: str = record.started_at
        self.finished_at: str | None = record.finished_at
        self._history_digest: str | None = record.history
        self._active = active
        self._history: list[dict[str, Any]] = []
        self._step = 0

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
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

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
        version = self._store.artifact(ref.ref if isinstance(ref, ArtifactVersion) else ref)
        self._store.catalog.commit(
            ArtifactUsed(run_id=self.id, name=version.name, version=version.version)
        )
        return self._store.artifact(version.ref)

    def log_artifact(self, artifact: Artifact, aliases: Iterable[str] = ()) -> ArtifactVersion:
        """Upload and commit ``artifact`` as an output of this run."""
        self._require_active()
        if not isinstance(artifact, Artifact):
            raise InvalidValueError(
                f"log_artifact() takes an Artifact, got {type(artifact).__name__}"
            )
        return self._store.log_artifact(artifact, aliases=aliases, run=self)

    def finish(self, status: str = "finished") -> None:
        """Write the history and summary and mark the run finished (idempotent)."""
        if not self._active or self.status != "running":
            return
        summary = check_json(_clean(self.summary), "summary")
        history = None
        if self._history:
            data = b"\n".join(canonical_json(_clean(h)) for h in self._history) + b"\n"
            history = self._store.blobs.put_bytes(data).digest
        self._store.catalog.commit(
            RunFinished(run_id=self.id, status=status, summary=summary, history=history)
        )
        self.status = status
        self._history_digest = history
        self._active = False

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
        """The versions this run used, in log order."""
        return self._versions("consumed")

    def outputs(self) -> list[ArtifactVersion]:
        """The versions this run logged, in log order."""
        return self._versions("produced")

    def _versions(self, kind: str) -> list[ArtifactVersion]:
        self._store.sync()
        index = self._store.index
        return [
            ArtifactVersion.from_record(self._store, index.version_record(r))
            for r in index.run_versions(self.id, kind)
        ]


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
