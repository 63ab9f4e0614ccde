"""A content-addressed artifact and model-versioning store: version weights, trace lineage, restore.

    import artifacts
    store = artifacts.open_store()            # ./.artifacts, $ARTIFACTS_STORE, or s3://bucket/prefix
    with store.start_run(project="gru", config={"lr": 1e-3}) as run:
        data = run.use_artifact("reviews:latest")
        ...
        ckpt = artifacts.Artifact("gru", type="model")
        ckpt.add_state_dict(model.state_dict())
        run.log_artifact(ckpt, aliases=["best"])

Importing this package does not import torch; only `artifacts.torch` does.
"""

from __future__ import annotations

import atexit
from collections.abc import Mapping
from typing import Any

from .artifact import Artifact
from .catalog.maintenance import GcReport, VerifyReport
from .errors import (
    AmbiguousError,
    ArtifactsError,
    BackendError,
    ConflictError,
    IntegrityError,
    InvalidDigestError,
    InvalidNameError,
    InvalidPathError,
    InvalidStateError,
    InvalidValueError,
    NotFoundError,
    PermissionDeniedError,
    QueryError,
    QuotaExceededError,
)
from .lineage import Lineage, LineageEdge, LineageNode
from .manifest import FileEntry
from .run import Run
from .runkeys import RunField
from .runquery import ComputeUsage, MetricStats, RunGroup, RunPage
from .store import ArtifactSummary, Store, open_store
from .version import ArtifactVersion

__version__ = "0.1.0"

__all__ = [
    "AmbiguousError",
    "Artifact",
    "ArtifactSummary",
    "ArtifactVersion",
    "ArtifactsError",
    "BackendError",
    "ComputeUsage",
    "ConflictError",
    "FileEntry",
    "GcReport",
    "IntegrityError",
    "InvalidDigestError",
    "InvalidNameError",
    "InvalidPathError",
    "InvalidStateError",
    "InvalidValueError",
    "Lineage",
    "LineageEdge",
    "LineageNode",
    "MetricStats",
    "NotFoundError",
    "PermissionDeniedError",
    "QueryError",
    "QuotaExceededError",
    "Run",
    "RunField",
    "RunGroup",
    "RunPage",
    "Store",
    "VerifyReport",
    "init",
    "open_store",
]


def init(
    *,
    project: str,
    config: Mapping[str, Any] | None = None,
    url: str | None = None,
    user: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> Run:
    """Start a run on the default store, W&B style; it finishes at exit if not finished before."""
    run = open_store(url, user=user, storage_options=storage_options).start_run(
        project=project, config=config, **kwargs
    )
    atexit.register(run.finish)
    return run
