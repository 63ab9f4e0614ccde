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

from .artifact import Artifact
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
from .maintenance import GcReport, VerifyReport
from .manifest import FileEntry
from .run import Run
from .runkeys import RunField
from .runquery import ComputeUsage, MetricStats, RunGroup, RunPage
from .store import ArtifactSummary, Store, open_store
from .version import ArtifactVersion
from .wandb_api import (
    config,
    finish,
    init,
    log,
    log_artifact,
    summary,
    unwatch,
    use_artifact,
    watch,
)

# W&B's ``wandb.run``: the run `init` started (None before and after). It replaces the package
# attribute that importing the ``artifacts.run`` submodule set; ``from artifacts.run import Run``
# still works (it reads sys.modules).
globals()["run"] = None

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
    "config",
    "finish",
    "init",
    "log",
    "log_artifact",
    "open_store",
    "run",
    "summary",
    "unwatch",
    "use_artifact",
    "watch",
]
