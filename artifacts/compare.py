"""Comparing runs side by side, and diffing two artifact versions file by file (tensor by tensor).

Both read the index only: the manifest entries (digest, size, dtype, shape) say what changed without
reading a byte of content. Values of changed tensors (max |a - b|) need the tensors themselves; that
part is `artifacts.torch.tensor_differences`, so this module never imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from .errors import InvalidValueError
from .runquery import Value

if TYPE_CHECKING:
    from .run import Run
    from .version import ArtifactVersion

__all__ = ["FileChange", "RunComparison", "VersionDiff", "compare_runs", "diff_versions", "flatten"]

MAX_RUNS = 64


def flatten(obj: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"opt": {"lr": 1}}`` -> ``{"opt.lr": 1}`` (the names the query language uses)."""
    out: dict[str, Any] = {}
    for k, v in obj.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


@dataclass(frozen=True)
class RunComparison(Value):
    """Runs side by side. ``config`` holds only the keys whose values differ (one value per run, None
    where a run lacks the key), ``same_config`` the rest; ``summary`` every metric; ``inputs`` the
    versions each run consumed, and ``different_inputs`` the artifact names where they disagree."""

    runs: tuple[str, ...]
    config: dict[str, list[Any]]
    same_config: dict[str, Any]
    summary: dict[str, list[Any]]
    inputs: dict[str, list[str]]
    different_inputs: dict[str, list[str | None]]


def compare_runs(runs: Sequence[Run]) -> RunComparison:
    if not 2 <= len(runs) <= MAX_RUNS:
        raise InvalidValueError(f"compare 2 to {MAX_RUNS} runs, not {len(runs)}")
    ids = tuple(r.id for r in runs)
    if len(set(ids)) != len(ids):
        raise InvalidValueError("the same run is named twice")
    configs = [flatten(r.config) for r in runs]
    summaries = [flatten(r.summary) for r in runs]
    config: dict[str, list[Any]] = {}
    same: dict[str, Any] = {}
    for key in sorted(set().union(*configs)):
        values = [c.get(key) for c in configs]
        present = all(key in c for c in configs)
        if present and all(_same(v, values[0]) for v in values):
            same[key] = values[0]
        else:
            config[key] = values
    summary = {k: [s.get(k) for s in summaries] for k in sorted(set().union(*summaries))}
    inputs = {r.id: [v.ref for v in r.inputs()] for r in runs}
    by_name: dict[str, list[str | None]] = {}
    for i, refs in enumerate(inputs.values()):
        for ref in refs:
            by_name.setdefault(ref.rsplit(":", 1)[0], [None] * len(runs))[i] = ref
    different = {n: refs for n, refs in sorted(by_name.items()) if len(set(refs)) > 1}
    return RunComparison(ids, config, same, summary, inputs, different)


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


@dataclass(frozen=True)
class FileChange(Value):
    """One path of a diff; the ``*_a`` fields are None for an added path, ``*_b`` for a removed one.
    ``max_abs_diff`` is filled by `artifacts.torch.tensor_differences` for changed tensors."""

    path: str
    size_a: int | None
    size_b: int | None
    digest_a: str | None
    digest_b: str | None
    dtype_a: str | None = None
    dtype_b: str | None = None
    shape_a: list[int] | None = None
    shape_b: list[int] | None = None
    max_abs_diff: float | None = None

    @property
    def is_tensor(self) -> bool:
        return self.dtype_a is not None or self.dtype_b is not None


@dataclass(frozen=True)
class VersionDiff(Value):
    """What changed from version ``a`` to ``b``. ``bytes_shared``: total size of the distinct blobs
    both use; ``bytes_new``: of the distinct blobs only ``b`` uses (what storing ``b`` cost)."""

    a: str
    b: str
    added: tuple[FileChange, ...]
    removed: tuple[FileChange, ...]
    changed: tuple[FileChange, ...]
    unchanged: int
    bytes_shared: int
    bytes_new: int

    def with_changes(self, changed: Sequence[FileChange]) -> VersionDiff:
        return replace(self, changed=tuple(changed))


def diff_versions(a: ArtifactVersion, b: ArtifactVersion) -> VersionDiff:
    fa = {f.path: f for f in a.files()}
    fb = {f.path: f for f in b.files()}

    def change(path: str) -> FileChange:
        x, y = fa.get(path), fb.get(path)
        mx, my = (dict(x.meta) if x else {}), (dict(y.meta) if y else {})
        return FileChange(
            path,
            x.size if x else None,
            y.size if y else None,
            x.digest if x else None,
            y.digest if y else None,
            _str(mx.get("dtype")),
            _str(my.get("dtype")),
            _shape(mx.get("shape")),
            _shape(my.get("shape")),
        )

    added = tuple(change(p) for p in sorted(fb.keys() - fa.keys()))
    removed = tuple(change(p) for p in sorted(fa.keys() - fb.keys()))
    both = sorted(fa.keys() & fb.keys())
    changed = tuple(
        change(p)
        for p in both
        if fa[p].digest != fb[p].digest or dict(fa[p].meta) != dict(fb[p].meta)
    )
    blobs_a = {f.digest: f.size for f in fa.values()}
    blobs_b = {f.digest: f.size for f in fb.values()}
    shared = sum(size for d, size in blobs_b.items() if d in blobs_a)
    new = sum(size for d, size in blobs_b.items() if d not in blobs_a)
    return VersionDiff(a.ref, b.ref, added, removed, changed, len(both) - len(changed), shared, new)


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _shape(v: Any) -> list[int] | None:
    return list(v) if isinstance(v, list) and all(isinstance(d, int) for d in v) else None
