"""Metric series for charts, downsampled on the server: no chart needs more points than it has pixels.

A run with 100k steps per metric would otherwise ship megabytes of JSON to draw a 800-pixel line. Each
metric is cut into ``width / 2`` buckets of consecutive steps and keeps the min and max of each (in step
order) plus the first and last point, so spikes and the envelope survive, the line still ends where the
run ended, and no chart gets more points than it has pixels.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..series import MetricSeries, from_rows

__all__ = [
    "DEFAULT_WIDTH",
    "MAX_WIDTH",
    "Series",
    "downsample",
    "downsampled",
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
    x: tuple[float, ...]  # steps (ints)
    y: tuple[float, ...]
    points: int  # how many points the run logged for this metric before downsampling

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "x": list(self.x), "y": list(self.y), "points": self.points}


def downsample(x: np.ndarray, y: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """At most about ``width`` points: the min and max of each of ``width / 2`` buckets, and the ends.

    Vectorised (a bucket's first minimum and first maximum, found with ``reduceat``): 100k points take
    about a millisecond."""
    n = len(x)
    if n <= width:
        return x, y
    buckets = max(1, width // 2)
    starts = np.linspace(0, n, buckets + 1).astype(np.int64)[:-1]  # n > 2 * buckets: all distinct
    bucket = np.repeat(np.arange(buckets), np.diff(np.append(starts, n)))
    keep = [np.array([0, n - 1], dtype=np.int64)]
    for extreme in (np.minimum, np.maximum):
        hits = np.flatnonzero(y == extreme.reduceat(y, starts)[bucket])
        first = np.ones(len(hits), dtype=bool)
        first[1:] = bucket[hits[1:]] != bucket[hits[:-1]]
        keep.append(hits[first])
    sel = np.unique(np.concatenate(keep))
    return x[sel], y[sel]


def downsampled(series: Mapping[str, MetricSeries], width: int = DEFAULT_WIDTH) -> list[Series]:
    """One chart `Series` per metric of `Run.series` (in name order), at most about ``width`` points."""
    out = []
    for key in sorted(series):
        s = series[key]
        xs, ys = downsample(s.steps, s.values, width)
        out.append(Series(key, tuple(xs.tolist()), tuple(ys.tolist()), len(s)))
    return out


def metric_series(history: Iterable[Mapping[str, Any]], width: int = DEFAULT_WIDTH) -> list[Series]:
    """One `Series` per numeric metric of a run's history rows (keys starting with ``_`` are
    bookkeeping); a run's own are `downsampled(run.series())`, which may read them from a blob."""
    return downsampled(from_rows(history), width)


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
