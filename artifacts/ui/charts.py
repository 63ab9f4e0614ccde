"""Metric series for charts, downsampled on the server: no chart needs more points than it has pixels.

A run with 100k steps per metric would otherwise ship megabytes of JSON to draw a 800-pixel line. Each
metric is cut into ``width`` buckets of consecutive steps and keeps the first, min, max and last point
of each bucket (in step order), so spikes and the envelope survive and the line still ends where the
run ended.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_WIDTH",
    "MAX_WIDTH",
    "Series",
    "downsample",
    "metric_series",
    "overlay",
    "run_charts",
]

DEFAULT_WIDTH = 800
MAX_WIDTH = 4000


@dataclass(frozen=True)
class Series:
    """One metric of one run over steps, ready for a chart (``x`` steps, ``y`` values)."""

    metric: str
    x: tuple[float, ...]
    y: tuple[float | None, ...]
    points: int  # how many points the run logged for this metric before downsampling

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "x": list(self.x), "y": list(self.y), "points": self.points}


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def downsample(x: np.ndarray, y: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``4 * width`` points: first, min, max and last of each of ``width`` buckets."""
    n = len(x)
    if n <= 4 * width:
        return x, y
    edges = np.linspace(0, n, width + 1).astype(np.int64)
    keep: list[np.ndarray] = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        if hi <= lo:
            continue
        seg = y[lo:hi]
        idx = {lo, hi - 1, lo + int(np.argmin(seg)), lo + int(np.argmax(seg))}
        keep.append(np.array(sorted(idx), dtype=np.int64))
    sel = np.concatenate(keep)
    return x[sel], y[sel]


def metric_series(history: Iterable[Mapping[str, Any]], width: int = DEFAULT_WIDTH) -> list[Series]:
    """One `Series` per numeric metric of a run's history (keys starting with ``_`` are bookkeeping)."""
    steps: dict[str, list[float]] = {}
    values: dict[str, list[float]] = {}
    for i, row in enumerate(history):
        step = _number(row.get("_step"))
        s = float(i) if step is None else step
        for key, v in row.items():
            if key.startswith("_"):
                continue
            f = _number(v)
            if f is None:
                continue
            if key not in steps:
                steps[key], values[key] = [], []
            steps[key].append(s)
            values[key].append(f)
    out = []
    for key in sorted(steps):
        x, y = np.asarray(steps[key]), np.asarray(values[key])
        order = np.argsort(x, kind="stable")
        x, y = x[order], y[order]
        xs, ys = downsample(x, y, width)
        out.append(Series(key, tuple(xs.tolist()), tuple(ys.tolist()), len(x)))
    return out


def _title(metric: str, shown: int, points: int) -> str:
    return metric if shown >= points else f"{metric} ({points:,} points, {shown:,} drawn)"


def run_charts(series: Sequence[Series]) -> dict[str, Any]:
    """The charts of one run, one per metric, as the page's ``chart-data`` JSON."""
    return {
        "charts": [
            {
                "id": f"m-{s.metric}",
                "metric": s.metric,
                "title": _title(s.metric, len(s.x), s.points),
                "series": [{"label": s.metric, "x": list(s.x), "y": list(s.y)}],
            }
            for s in series
        ]
    }


def overlay(per_run: Sequence[tuple[str, Sequence[Series]]]) -> dict[str, Any]:
    """Charts of several runs, one per metric, each run one line (labelled by ``per_run``'s names)."""
    charts: dict[str, list[dict[str, Any]]] = {}
    for label, series in per_run:
        for s in series:
            charts.setdefault(s.metric, []).append({"label": label, "x": list(s.x), "y": list(s.y)})
    return {
        "charts": [
            {"id": f"m-{m}", "metric": m, "title": m, "series": charts[m]} for m in sorted(charts)
        ]
    }
