"""The runs table: one page of runs (sorted, filtered, paginated on the server) and its groups.

Filtering, ordering, grouping and counting are the query layer's (`Store.runs(where=, order_by=,
limit=, after=)`, `Store.run_groups`, `Store.run_fields`): the filter box takes exactly the query
language of the CLI and the Python API. Pages follow keyset cursors (the "next" link carries one, so
page 2000 costs what page 1 does); a page number typed into the URL without a cursor is reached by
walking the cursor from the start, which costs in proportion to its depth.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import InvalidValueError, NotFoundError
from ..names import check_name

if TYPE_CHECKING:
    from ..run import Run
    from ..store import Store

__all__ = [
    "FIELDS",
    "MAX_PAGE",
    "PER_PAGE",
    "GroupRow",
    "RunsPage",
    "check_column",
    "run_groups",
    "runs_page",
]

PER_PAGE = 50
MAX_PAGE = 10**9
FIELDS = (
    "id",
    "name",
    "project",
    "group",
    "job_type",
    "user",
    "host",
    "status",
    "started_at",
    "finished_at",
)
_KEY_RE = re.compile(r"(config|summary)\.([A-Za-z0-9_][A-Za-z0-9_.\-]{0,200})")


def check_column(col: str) -> str:
    """A column is a run field or ``config.<key.path>`` / ``summary.<key.path>``."""
    if col in FIELDS or _KEY_RE.fullmatch(col):
        return col
    raise InvalidValueError(
        f"unknown column {col[:80]!r}: use one of {', '.join(FIELDS)}, config.KEY or summary.KEY"
    )


def _lookup(data: dict[str, Any], dotted: str) -> Any:
    cur: Any = data
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


@dataclass(frozen=True)
class RunsPage:
    rows: list[dict[str, Any]]
    total: int
    page: int
    pages: int
    columns: list[str]
    available: list[str] = field(default_factory=list)
    next_cursor: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "total": self.total,
            "page": self.page,
            "pages": self.pages,
            "columns": self.columns,
            "next_cursor": self.next_cursor,
        }


@dataclass(frozen=True)
class GroupRow:
    key: tuple[Any, ...]
    count: int
    min: float | None
    mean: float | None
    max: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": list(self.key),
            "count": self.count,
            "min": self.min,
            "mean": self.mean,
            "max": self.max,
        }


def count_runs(store: Store, project: str | None, where: str | None) -> int:
    return sum(g.count for g in store.run_groups(by="project", where=where, project=project))


def available_columns(store: Store) -> list[str]:
    names = [f.name for f in store.run_fields()]
    return sorted(names, key=lambda k: (not k.startswith("summary."), k))


def _row(run: Run, cols: list[str]) -> dict[str, Any]:
    cells = []
    for c in cols:
        kind, _, key = c.partition(".")
        if kind in ("config", "summary") and key:
            cells.append(_lookup(run.config if kind == "config" else run.summary, key))
        else:
            cells.append(getattr(run, c, None))
    return {
        "id": run.id,
        "name": run.name,
        "project": run.project,
        "group": run.group,
        "job_type": run.job_type,
        "user": run.user,
        "status": run.status,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "cells": cells,
    }


def runs_page(
    store: Store,
    *,
    project: str | None = None,
    where: str | None = None,
    sort: str = "started_at",
    desc: bool = True,
    page: int = 1,
    per_page: int = PER_PAGE,
    columns: list[str] | None = None,
    after: str | None = None,
) -> RunsPage:
    """One page of the runs table; a page past the end is a `NotFoundError` naming the last page."""
    if not 1 <= page <= MAX_PAGE:
        raise InvalidValueError(f"page must be between 1 and {MAX_PAGE}, not {page}")
    if not 1 <= per_page <= 500:
        raise InvalidValueError(f"per_page must be between 1 and 500, not {per_page}")
    if project is not None:
        check_name(project, "project name")
    order = [("-" if desc else "") + sort]
    total = count_runs(store, project, where)
    pages = max(1, math.ceil(total / per_page))
    if page > pages:
        raise NotFoundError(f"page {page} does not exist: there are {pages} pages of {total} runs")
    if after is None and page > 1:  # no cursor: walk from the start (the next links carry one)
        skipped = store.runs(project, where=where, order_by=order, limit=(page - 1) * per_page)
        after = skipped.next_cursor
    result = store.runs(project, where=where, order_by=order, limit=per_page, after=after)
    available = available_columns(store)
    if columns is None:
        cols = [c for c in available if c.startswith("summary.")][:4]
        cols += [c for c in available if c.startswith("config.")][:4]
    else:
        cols = [check_column(c) for c in columns]
    return RunsPage(
        [_row(r, cols) for r in result], total, page, pages, cols, available, result.next_cursor
    )


def run_groups(
    store: Store,
    *,
    project: str | None = None,
    where: str | None = None,
    by: str = "job_type",
    metric: str | None = None,
) -> list[GroupRow]:
    """Runs counted per value of ``by`` (a field or config key), with min/mean/max of ``metric``."""
    if metric is not None and not metric.startswith("summary."):
        metric = "summary." + metric
    groups = store.run_groups(
        by=by, where=where, metrics=[metric] if metric else [], project=project
    )
    out = []
    for g in groups:
        stats = g.metrics.get(metric) if metric else None
        out.append(
            GroupRow(
                (g.key.get(by),),
                g.count,
                stats.min if stats else None,
                stats.mean if stats else None,
                stats.max if stats else None,
            )
        )
    return sorted(out, key=lambda r: (-r.count, str(r.key[0])))
