"""W&B's module-level logging surface on `artifacts`, so ``import artifacts as wandb`` runs W&B scripts.

    run = artifacts.init(project="gru", config={"lr": 1e-3}, tags=["baseline"])
    config = artifacts.config                  # config.lr, config["lr"], config.update({...})
    artifacts.log({"train_loss": 0.3}, step=epoch)
    artifacts.log({"val_acc": 0.8})            # the same step: W&B's step rules
    artifacts.run.summary["best"] = 0.8
    artifacts.log_artifact(artifacts.Artifact("gru", type="model").add_dir("out/"))
    artifacts.finish()

`init` opens the default store (``url=``, else ``$ARTIFACTS_STORE``, else ``<dir>/.artifacts`` with
``dir`` defaulting to the current directory) and starts a run; the run finishes at exit if the script
did not call `finish`. An uncaught exception ends it ``failed`` and Ctrl-C ``killed`` (an excepthook,
as W&B installs), without changing the script's exit code. `watch` logs the global gradient norm of
the watched models every ``log_freq`` logged steps; it never hooks into backward passes.
"""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from .artifact import Artifact
from .errors import InvalidStateError, InvalidValueError
from .run import Run
from .store import open_store
from .values import Config, Summary

__all__ = [
    "config",
    "finish",
    "init",
    "log",
    "log_artifact",
    "summary",
    "unwatch",
    "use_artifact",
    "watch",
]

_state: dict[str, Any] = {"run": None, "hooked": False}


def current() -> Run | None:
    """The run started by `init` and not finished yet."""
    run = _state["run"]
    return run if run is not None and run._status == "running" and run._live is not None else None


def _require(what: str) -> Run:
    run = current()
    if run is None:
        raise InvalidStateError(f"call artifacts.init() before artifacts.{what}")
    return run


def _publish(run: Run | None) -> None:
    """Set ``artifacts.run`` as W&B sets ``wandb.run``."""
    _state["run"] = run
    pkg = sys.modules.get(__name__.rsplit(".", 1)[0])
    if pkg is not None:
        pkg.run = run  # type: ignore[attr-defined]


def init(
    project: str | None = None,
    config: Any = None,
    *,
    name: str | None = None,
    group: str | None = None,
    job_type: str | None = None,
    tags: Iterable[str] | None = None,
    notes: str | None = None,
    dir: str | os.PathLike[str] | None = None,  # noqa: A002 - W&B's name
    reinit: bool | None = None,
    url: str | None = None,
    user: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    flush_interval: float | None = None,
    entity: str | None = None,
    save_code: bool | None = None,
) -> Run:
    """Start a run on the default store, W&B style; it finishes at exit if not finished before.

    With a run already active, returns it unless ``reinit=True``, which finishes it and starts a new
    one. ``entity`` and ``save_code`` are accepted for W&B scripts and ignored (a store has no
    entities; the command line and git commit are always recorded).
    """
    del entity, save_code
    active = current()
    if active is not None:
        if not reinit:
            return active
        active.finish()
    if url is None and not os.environ.get("ARTIFACTS_STORE") and dir is not None:
        url = str(Path(dir) / ".artifacts")
    store = open_store(url, user=user, storage_options=storage_options)
    run = store.start_run(
        project=project or "uncategorized",
        config=config,
        name=name,
        group=group,
        job_type=job_type,
        tags=tags,
        notes=notes,
        flush_interval=flush_interval,
    )
    _install_hooks()
    _publish(run)
    return run


def log(data: Mapping[str, Any], step: int | None = None, commit: bool | None = None) -> None:
    """Log metrics to the current run with W&B's step rules: without ``step`` on the current step,
    which then advances; with ``step`` on that step, left open for more keys until a higher step (or
    ``commit=True``); a lower step is refused."""
    _require("log()").log(data, step=step, commit=commit)


def finish(exit_code: int | None = None, quiet: bool | None = None) -> None:
    """Finish the current run: ``finished``, or ``failed`` for a non-zero ``exit_code``."""
    del quiet
    run = current()
    if run is not None:
        run.finish(exit_code=exit_code)
    _publish(None)


def log_artifact(
    artifact_or_path: Artifact | str | os.PathLike[str],
    name: str | None = None,
    type: str | None = None,  # noqa: A002 - W&B's name
    aliases: Iterable[str] | None = None,
    *,
    wait: bool = True,
) -> Any:
    """Log an `Artifact` (or a file or directory, as W&B allows) as an output of the current run.

    ``wait=False`` uploads and commits in the background (see `Run.log_artifact`)."""
    run = _require("log_artifact()")
    if isinstance(artifact_or_path, Artifact):
        art = artifact_or_path
    else:
        path = Path(artifact_or_path)
        art = Artifact(name or path.name, type or "unspecified")
        art.add_dir(path) if path.is_dir() else art.add_file(path)
    if wait:
        return run.log_artifact(art, aliases=list(aliases or []))
    return run.log_artifact(art, aliases=list(aliases or []), wait=False)


def use_artifact(ref: Any, type: str | None = None) -> Any:  # noqa: A002 - W&B's name
    """Declare an input of the current run (``"name:latest"``, ``"name:v3"``, ``"name:alias"``)."""
    version = _require("use_artifact()").use_artifact(ref)
    if type is not None and version.type != type:
        raise InvalidValueError(f"{version.ref} has type {version.type!r}, not {type!r}")
    return version


class _Watch:
    """Adds the global L2 norm of the watched models' gradients to every ``log_freq``-th log call."""

    def __init__(self, models: list[Any], log_freq: int) -> None:
        self.models, self.log_freq, self.calls = models, log_freq, 0

    def add_to(self, metrics: Mapping[str, Any]) -> Mapping[str, Any]:
        self.calls += 1
        if (self.calls - 1) % self.log_freq:
            return metrics
        total, seen = 0.0, False
        for model in self.models:
            for p in model.parameters():
                if p.grad is not None:
                    total += float(p.grad.detach().float().pow(2).sum())
                    seen = True
        return {**metrics, "gradients/global_norm": total**0.5} if seen else metrics


def watch(
    models: Any,
    criterion: Any = None,
    log: str | None = "gradients",
    log_freq: int = 1000,
    idx: int | None = None,
    log_graph: bool = False,
) -> None:
    """Log ``gradients/global_norm`` of ``models`` (one or a list of torch modules) every
    ``log_freq`` logged steps. W&B's histograms and graphs are not produced; ``log=None`` turns
    watching off."""
    del criterion, idx, log_graph
    run = _require("watch()")
    if isinstance(log_freq, bool) or not isinstance(log_freq, int) or log_freq < 1:
        raise InvalidValueError(f"log_freq must be a positive int, not {log_freq!r}")
    mods = list(models) if isinstance(models, list | tuple) else [models]
    run._watch = _Watch(mods, log_freq) if log in ("gradients", "all") else None


def unwatch(models: Any = None) -> None:
    run = current()
    if run is not None:
        run._watch = None


class _Proxy:
    """`artifacts.config` / `artifacts.summary`: stand-ins that act on the current run's object, so
    ``config = wandb.config`` taken before or after `init` keeps working."""

    def __init__(self, what: str) -> None:
        object.__setattr__(self, "_what", what)

    def _target(self) -> Config | Summary:
        run = _require(self._what)
        return run.config if self._what == "config" else run.summary

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        target = self._target()
        if isinstance(target, Config):
            return getattr(target, key)
        return getattr(target, key) if hasattr(dict, key) else target[key]

    def __setattr__(self, key: str, value: Any) -> None:
        self._target()[key] = value

    def __getitem__(self, key: str) -> Any:
        return self._target()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._target()[key] = value

    def __delitem__(self, key: str) -> None:
        del self._target()[key]

    def __contains__(self, key: object) -> bool:
        return key in self._target()

    def __iter__(self) -> Iterator[str]:
        return iter(self._target())

    def __len__(self) -> int:
        return len(self._target())

    def __eq__(self, other: object) -> bool:
        return dict(self._target()) == other

    def __repr__(self) -> str:
        run = current()
        if run is None:
            return f"<artifacts.{self._what}: no run; call artifacts.init()>"
        return repr(dict(self._target()))

    __hash__ = None  # type: ignore[assignment]


config: Any = _Proxy("config")
summary: Any = _Proxy("summary")


# -- ending with the script ---------------------------------------------------------------------
def _install_hooks() -> None:
    if _state["hooked"]:
        return
    _state["hooked"] = True
    previous = sys.excepthook

    def excepthook(
        exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
    ) -> None:
        run = current()
        if run is not None:
            try:
                run.finish("killed" if issubclass(exc_type, KeyboardInterrupt) else "failed")
            except Exception as e:  # noqa: BLE001 - the script's own error matters more
                print(f"artifacts: could not finish run {run.id}: {e}", file=sys.stderr)
        previous(exc_type, exc, tb)

    sys.excepthook = excepthook
    atexit.register(_finish_at_exit)


def _finish_at_exit() -> None:
    run = current()
    if run is not None:
        try:
            run.finish()
        except Exception as e:  # noqa: BLE001 - exiting anyway; say why the run is left running
            print(f"artifacts: could not finish run {run.id}: {e}", file=sys.stderr)
