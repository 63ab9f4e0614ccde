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

import sys
import types
from typing import TYPE_CHECKING, Any

from storage._lazy import lazy_getattr

from .errors import (
    AmbiguousError,
    ArtifactsError,
    BackendError,
    ConflictError,
    DiskFullError,
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
    StoreNotFoundError,
    StoreWarning,
)

if TYPE_CHECKING:
    from .artifact import Artifact
    from .catalog.maintenance import GcReport, VerifyReport
    from .lineage import Lineage, LineageEdge, LineageNode
    from .manifest import FileEntry
    from .run import Run
    from .runkeys import RunField
    from .runquery import ComputeUsage, MetricStats, RunGroup, RunPage
    from .series import MetricSeries
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

#: imported on first use, so `artifacts --help` and `--version` start fast (see storage._lazy)
_LAZY = {
    "Artifact": ".artifact",
    "Lineage": ".lineage",
    "LineageEdge": ".lineage",
    "LineageNode": ".lineage",
    "GcReport": ".catalog.maintenance",
    "VerifyReport": ".catalog.maintenance",
    "FileEntry": ".manifest",
    "Run": ".run",
    "RunField": ".runkeys",
    "ComputeUsage": ".runquery",
    "MetricStats": ".runquery",
    "RunGroup": ".runquery",
    "RunPage": ".runquery",
    "MetricSeries": ".series",
    "ArtifactSummary": ".store",
    "Store": ".store",
    "open_store": ".store",
    "ArtifactVersion": ".version",
    # the W&B-style module API (artifacts/wandb_api.py)
    "config": ".wandb_api",
    "finish": ".wandb_api",
    "init": ".wandb_api",
    "log": ".wandb_api",
    "log_artifact": ".wandb_api",
    "summary": ".wandb_api",
    "unwatch": ".wandb_api",
    "use_artifact": ".wandb_api",
    "watch": ".wandb_api",
}
__getattr__ = lazy_getattr(__name__, _LAZY)



class _Package(types.ModuleType):
    """The package's class, so that ``artifacts.run`` is W&B's ``wandb.run``: the run `init` started,
    None before and after. Importing the ``artifacts.run`` submodule would otherwise rebind that
    attribute to the module (``from artifacts.run import Run`` still works: it reads sys.modules)."""

    @property
    def run(self) -> Any:
        api = sys.modules.get(f"{__name__}.wandb_api")
        return api.current() if api is not None else None  # type: ignore[attr-defined]

    @run.setter
    def run(self, value: Any) -> None:
        pass  # the import system setting the submodule, or wandb_api publishing: read above


sys.modules[__name__].__class__ = _Package

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
    "DiskFullError",
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
    "MetricSeries",
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
    "StoreNotFoundError",
    "StoreWarning",
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
