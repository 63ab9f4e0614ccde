"""The runs table: one page of runs (sorted, filtered, paginated on the server) and its groups.

Filtering, ordering and grouping belong to the query layer (`Store.runs(where=, order_by=, limit=,
after=)`, `Store.run_groups`); this module only turns the page's URL parameters into those calls and
the answers into table rows. Where the store predates the query layer, ordering and paging fall back to
the index's own columns and a filter is refused with a clear message, rather than parsed a second way.
"""

from __future__ import annotations

import inspect
import json
import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import InvalidValueError, NotFoundError
from ..names import check_name

if TYPE_CHECKING:
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
_COLUMN_SQL = {f: f for f in FIELDS} | {"group": "group_"}
_KEY_RE = re.compile(r"^(config|summary)\.([A-Za-z0-9_][A-Za-z0-9_.\-]{0,200})$")


def check_column(col: str) -> str:
    """A column is a run field or ``config.<key.path>`` / ``summary.<key.path>``."""
    if col in FIELDS or _KEY_RE.match(col):
        return col
    raise InvalidValueError(
        f"unknown column {col[:80]!r}: use one of {', '.join(FIELDS)}, config.KEY or summary.KEY"
    )


def _sql_column(col: str) -> tuple[str, list[Any]]:
    m = _KEY_RE.match(col)
    if m is None:
        return f'"{_COLUMN_SQL[col]}"', []
    path = "$" + "".join(f'."{part}"' for part in m.group(2).split("."))
    return f"json_extract({m.group(1)}, ?)", [path]


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "total": self.total,
            "page": self.page,
            "pages": self.pages,
            "columns": self.columns,
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


def _has_query_layer(store: Store) -> bool:
    return "where" in inspect.signature(store.runs).parameters


def _where_sql(project: str | None, where: str | None, store: Store) -> tuple[str, list[Any]]:
    if where and not _has_query_layer(store):
        raise InvalidValueError(
            "this store version has no query language yet: clear the filter box"
        )
    clauses, params = [], []
    if project is not None:
        check_name(project, "project name")
        clauses.append("project = ?")
        params.append(project)
    if where:
        ids = [r.id for r in store.runs(project, where=where)]  # type: ignore[call-arg]
        clauses.append("id IN (SELECT value FROM json_each(?))")
        params.append(json.dumps(ids))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def available_columns(store: Store, project: str | None, sample: int = 200) -> list[str]:
    """Config and summary keys of the newest runs (a sample: listing every key of 100k runs is slow)."""
    q = "SELECT config, summary FROM runs" + (" WHERE project = ?" if project else "")
    rows = store.index.select(
        q + " ORDER BY rowid DESC LIMIT ?", (*([project] if project else []), sample)
    )
    keys: set[str] = set()
    for r in rows:
        for kind in ("config", "summary"):
            keys.update(f"{kind}.{k}" for k, _ in _flat(json.loads(r[kind] or "{}")))
    return sorted(keys, key=lambda k: (not k.startswith("summary."), k))


def _flat(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(obj, dict) and obj:
        out: list[tuple[str, Any]] = []
        for k, v in obj.items():
            out += _flat(v, f"{prefix}{k}.")
        return out
    return [(prefix[:-1], obj)] if prefix else []


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
) -> RunsPage:
    """One page of the runs table; a page past the end is a `NotFoundError` naming the last page."""
    check_column(sort)
    if not 1 <= page <= MAX_PAGE:
        raise InvalidValueError(f"page must be between 1 and {MAX_PAGE}, not {page}")
    if not 1 <= per_page <= 500:
        raise InvalidValueError(f"per_page must be between 1 and 500, not {per_page}")
    cond, params = _where_sql(project, where, store)
    select = store.index.select
    total = select(f"SELECT COUNT(*) FROM runs{cond}", params)[0][0]
    pages = max(1, math.ceil(total / per_page))
    if page > pages:
        raise NotFoundError(f"page {page} does not exist: there are {pages} pages of {total} runs")
    order, oparams = _sql_column(sort)
    direction = "DESC" if desc else "ASC"
    nulls = f"({order}) IS NULL, " if sort not in FIELDS else ""
    rows = select(
        f"SELECT * FROM runs{cond} ORDER BY {nulls}{order} {direction}, seq {direction} LIMIT ? OFFSET ?",
        [*params, *oparams, *oparams, per_page, (page - 1) * per_page],
    )
    available = available_columns(store, project)
    if columns is None:
        cols = [c for c in available if c.startswith("summary.")][:4]
        cols += [c for c in available if c.startswith("config.")][:4]
    else:
        cols = [check_column(c) for c in columns]
    out = []
    for r in rows:
        config, summary = json.loads(r["config"] or "{}"), json.loads(r["summary"] or "{}")
        cells = []
        for c in cols:
            kind, _, key = c.partition(".")
            cells.append(
                _lookup(config if kind == "config" else summary, key)
                if key
                else r[_COLUMN_SQL.get(c, c)]
            )
        out.append(
            {
                "id": r["id"],
                "name": r["name"],
                "project": r["project"],
                "group": r["group_"],
                "job_type": r["job_type"],
                "user": r["user"],
                "status": r["status"],
                "started_at": r["started_at"],
                "finished_at": r["finished_at"],
                "cells": cells,
            }
        )
    return RunsPage(out, total, page, pages, cols, available)


def run_groups(
    store: Store,
    *,
    project: str | None = None,
    where: str | None = None,
    by: str = "job_type",
    metric: str | None = None,
) -> list[GroupRow]:
    """Runs counted per value of ``by`` (a field or config key), with min/mean/max of ``metric``."""
    check_column(by)
    if metric is not None and not metric.startswith("summary."):
        metric = "summary." + metric
    if metric is not None:
        check_column(metric)
    cond, params = _where_sql(project, where, store)
    key, kparams = _sql_column(by)
    if metric is None:
        agg, mparams = "NULL, NULL, NULL", []
    else:
        m, mp = _sql_column(metric)
        agg = (
            f"MIN(CASE WHEN typeof({m}) IN ('integer','real') THEN {m} END), "
            f"AVG(CASE WHEN typeof({m}) IN ('integer','real') THEN {m} END), "
            f"MAX(CASE WHEN typeof({m}) IN ('integer','real') THEN {m} END)"
        )
        mparams = mp * 6
    rows = store.index.select(
        f"SELECT {key} AS k, COUNT(*), {agg} FROM runs{cond} GROUP BY k ORDER BY COUNT(*) DESC, k",
        [*kparams, *mparams, *params],
    )
    return [GroupRow((r[0],), r[1], r[2], r[3], r[4]) for r in rows]
