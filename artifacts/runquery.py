"""The query engine over an index connection: runs (filtered, ordered, paged), groups, compute hours.

`Store.runs / run_groups / compute / versions` are thin wrappers over these functions, and the CLI and
the UI call the same ones, so every front end answers a query identically. Everything here only reads.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .bounds import INT64_MAX, check_int
from .errors import AmbiguousError, NotFoundError, QueryError
from .query import Field, Node, parse, parse_field
from .querysql import (
    _NUM,
    RUNS,
    VERSIONS,
    Compiled,
    JsonKey,
    Schema,
    _resolve,
    compile_where,
    decode_cursor,
    encode_cursor,
    field_sql,
    order_keys,
    parse_date,
)
from .runkeys import key_types
from .runplan import PLANS, choose, run_rows

__all__ = [
    "ComputeUsage",
    "MetricStats",
    "RunGroup",
    "RunPage",
    "Value",
    "compute",
    "resolve_run_id",
    "run_groups",
    "select_runs",
    "select_versions",
]

MIN_PREFIX = 4


class Value:
    """Mixin of the frozen result objects: ``to_dict()`` (plain, JSON-ready) and ``to_json()``."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload, no-any-return]

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, default=str)


class RunPage(list):  # type: ignore[type-arg]
    """A list of `Run` (one page when a limit was given); ``next_cursor`` continues after its last run
    (pass it as ``after=``), None when nothing follows."""

    def __init__(self, runs: Iterable[Any] = (), *, next_cursor: str | None = None) -> None:
        super().__init__(runs)
        self.next_cursor = next_cursor


@dataclass(frozen=True)
class MetricStats(Value):
    """min / mean / max of one metric over the runs of a group that have it as a number."""

    count: int
    min: float | None
    mean: float | None
    max: float | None


@dataclass(frozen=True)
class RunGroup(Value):
    key: dict[str, Any]  # field -> value (None where the runs have none)
    count: int
    metrics: dict[str, MetricStats]


@dataclass(frozen=True)
class ComputeUsage(Value):
    """Compute of one group in a time window. Open runs count to their last heartbeat (or now), so a
    row with ``open_runs > 0`` is an estimate; GPU-hours cover the runs that recorded their devices."""

    key: Any
    runs: int
    hours: float
    gpu_hours: float
    gpu_runs: int
    open_runs: int
    estimated: bool


def _where(
    schema: Schema, where: Any, conn: sqlite3.Connection | None = None
) -> tuple[list[str], list[Any]]:
    if where is None or (isinstance(where, str) and not where.strip()):
        return [], []
    types = (lambda source, path: key_types(conn, source, path)) if conn is not None else None
    c = compile_where(schema, where, types)
    return [c.sql], list(c.params)


def select_runs(
    conn: sqlite3.Connection,
    *,
    project: str | None = None,
    where: Any = None,
    order_by: Sequence[str] | str | None = None,
    limit: int | None = None,
    after: str | None = None,
    plan: str = "auto",
) -> tuple[list[sqlite3.Row], str | None]:
    """Matching run rows, and the cursor to pass as ``after`` for the next page (None at the end).

    Keyset pagination: the cursor holds the last row's order values, so a page costs the same at any
    depth and runs committed meanwhile never shift a page. ``plan``: the access path
    (`artifacts.runplan`), chosen from the data unless a test forces one; every plan gives the same rows.
    """
    if limit is not None:
        check_int(limit, "limit (a number of runs)", high=INT64_MAX - 1, error=QueryError)
    if plan not in PLANS:
        raise QueryError(f"plan must be one of {', '.join(PLANS)}, not {plan!r}")
    keys = order_keys(RUNS, order_by)
    tree: Node | None = None
    compiled: Compiled | None = None
    if where is not None and not (isinstance(where, str) and not where.strip()):
        tree = parse(where) if isinstance(where, str) else where
        types = lambda source, path: key_types(conn, source, path)  # noqa: E731
        compiled = compile_where(RUNS, where, types)
    values = decode_cursor(keys, after) if after is not None else None
    chosen = choose(conn, tree, project, keys, limit, plan)
    rows = run_rows(conn, chosen, compiled, project, keys, values, None if limit is None else limit + 1)
    cursor = None
    if limit is not None and len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1] if rows else None
        if last is not None:
            cursor = encode_cursor(keys, [*(last[f"_k{i}"] for i in range(len(keys))), last["seq"]])
    return rows, cursor


def select_versions(
    conn: sqlite3.Connection, name: str | None, where: Any = None, *, include_deleted: bool = False
) -> list[sqlite3.Row]:
    conds, params = _where(VERSIONS, where)
    if name is not None:
        conds.insert(0, "versions.name = ?")
        params.insert(0, name)
    if not include_deleted:
        conds.append("versions.deleted = 0")
    sql = "SELECT versions.* FROM versions" + (f" WHERE {' AND '.join(conds)}" if conds else "")
    return conn.execute(sql + " ORDER BY versions.name, versions.version", params).fetchall()


def _metric_sql(schema: Schema, text: str) -> tuple[str, tuple[Any, ...]]:
    """A numeric metric: JSON numbers only (strings and booleans are left out of min/mean/max)."""
    if not isinstance(text, str) or not text:
        raise QueryError(f"a metric is a field name such as 'summary.val_acc', not {text!r}")
    f = parse_field(text)
    if not f.path and f.name not in schema.columns and f.name not in schema.json:
        prefix = "summary" if "summary" in schema.json else next(iter(schema.json))
        f = Field(prefix, (f.name,), f.pos)  # a bare name is a summary metric
    target = _resolve(schema, f, text)
    if isinstance(target, JsonKey):
        return (
            f"CASE WHEN IFNULL(json_type({target.column}, ?), '') IN {_NUM}"
            f" THEN json_extract({target.column}, ?) END",
            (target.path, target.path),
        )
    if target.type != "number":
        raise QueryError(f"metric {text!r} is not a number field")
    return target.sql, ()


def run_groups(
    conn: sqlite3.Connection,
    *,
    by: Sequence[str] | str = ("group", "job_type"),
    where: Any = None,
    metrics: Iterable[str] = (),
    project: str | None = None,
) -> list[RunGroup]:
    """Runs counted per distinct value of the ``by`` fields, with min/mean/max of each metric."""
    by = (by,) if isinstance(by, str) else tuple(by)
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    if not 1 <= len(by) <= 8:
        raise QueryError("group by 1 to 8 fields")
    if len(metrics) > 64:
        raise QueryError("at most 64 metrics per grouping")
    inner: list[str] = []
    params: list[Any] = []
    for i, f in enumerate(by):
        sql, p = field_sql(RUNS, f, purpose="grouping")
        inner.append(f"{sql} AS g{i}")
        params.extend(p)
    for i, m in enumerate(metrics):
        sql, p = _metric_sql(RUNS, m)
        inner.append(f"{sql} AS m{i}")
        params.extend(p)
    conds, wparams = _where(RUNS, where, conn)
    if project is not None:
        conds.insert(0, "runs.project = ?")
        wparams.insert(0, project)
    gs = ", ".join(f"g{i}" for i in range(len(by)))
    aggs = "".join(f", COUNT(m{i}), MIN(m{i}), AVG(m{i}), MAX(m{i})" for i in range(len(metrics)))
    sql = (
        f"SELECT {gs}, COUNT(*) AS n{aggs} FROM (SELECT {', '.join(inner)} FROM runs"
        + (f" WHERE {' AND '.join(conds)}" if conds else "")
        # LIMIT -1 keeps the subquery from being flattened into the aggregate, which would evaluate
        # each metric's JSON extraction once per aggregate (4x) instead of once per run
        + (" LIMIT -1" if metrics else "")
        + f") GROUP BY {gs} ORDER BY {gs}"
    )
    out = []
    for row in conn.execute(sql, [*params, *wparams]):
        base = len(by) + 1
        stats = {
            m: MetricStats(
                row[base + 4 * i],
                row[base + 4 * i + 1],
                row[base + 4 * i + 2],
                row[base + 4 * i + 3],
            )
            for i, m in enumerate(metrics)
        }
        out.append(RunGroup(dict(zip(by, row[: len(by)], strict=True)), row[len(by)], stats))
    return out


def _when(value: Any, label: str) -> _dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, _dt.datetime):
        d = value if value.tzinfo else value.replace(tzinfo=_dt.timezone.utc)
        return d.astimezone(_dt.timezone.utc)
    if isinstance(value, _dt.date):
        return _dt.datetime(value.year, value.month, value.day, tzinfo=_dt.timezone.utc)
    if isinstance(value, str):
        try:
            return _dt.datetime.fromisoformat(parse_date(value))
        except ValueError:
            pass
    raise QueryError(f"{label} must be a date such as '2026-11-01' (or a datetime), not {value!r}")


_HEARTBEAT_COLUMNS = ("heartbeat_at", "last_heartbeat", "heartbeat")


def compute(
    conn: sqlite3.Connection,
    *,
    by: str = "user",
    where: Any = None,
    since: Any = None,
    until: Any = None,
    now: _dt.datetime | None = None,
) -> list[ComputeUsage]:
    """Wall-clock and GPU hours per ``by`` value, each run clipped to [since, until)."""
    lo, hi = _when(since, "since"), _when(until, "until")
    now = now or _dt.datetime.now(_dt.timezone.utc)
    key_sql, key_params = field_sql(RUNS, by, purpose="grouping")
    cols = {r[1] for r in conn.execute("PRAGMA table_info(runs)")}
    beat = next((c for c in _HEARTBEAT_COLUMNS if c in cols), None)
    conds, params = _where(RUNS, where, conn)
    if hi is not None:
        conds.append("runs.started_at < ?")
        params.append(hi.isoformat(timespec="microseconds"))
    sql = (
        f"SELECT {key_sql} AS k, runs.started_at, runs.finished_at,"
        f" {'runs.' + beat if beat else 'NULL'} AS beat,"
        " json_extract(runs.env, '$.cuda.count') AS gpus FROM runs"
        + (f" WHERE {' AND '.join(conds)}" if conds else "")
    )
    acc: dict[Any, list[Any]] = {}
    for row in conn.execute(sql, [*key_params, *params]):
        start = _parse_ts(row["started_at"])
        open_ = row["finished_at"] is None
        end = _parse_ts(row["finished_at"] or row["beat"]) if not open_ or row["beat"] else now
        if start is None or end is None:
            continue
        a, b = max(start, lo) if lo else start, min(end, hi) if hi else end
        if lo is not None and end < lo:
            continue
        hours = max((b - a).total_seconds(), 0.0) / 3600
        gpus = row["gpus"]
        s = acc.setdefault(row["k"], [0, 0.0, 0.0, 0, 0])
        s[0] += 1
        s[1] += hours
        if isinstance(gpus, int) and not isinstance(gpus, bool) and gpus >= 0:
            s[2] += hours * gpus
            s[3] += 1
        s[4] += open_
    return [
        ComputeUsage(k, s[0], s[1], s[2], s[3], s[4], s[4] > 0)
        for k, s in sorted(acc.items(), key=lambda kv: (kv[0] is None, str(kv[0])))
    ]


def _parse_ts(value: str | None) -> _dt.datetime | None:
    if not value:
        return None
    try:
        d = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return d if d.tzinfo else d.replace(tzinfo=_dt.timezone.utc)


def resolve_run_id(conn: sqlite3.Connection, text: str) -> str:
    """A full run id, or a unique prefix of at least 4 characters (as git does for commits)."""
    if not isinstance(text, str) or not text:
        raise NotFoundError(f"run {text!r} not found")
    if conn.execute("SELECT 1 FROM runs WHERE id=?", (text,)).fetchone():
        return text
    if len(text) < MIN_PREFIX:
        raise NotFoundError(
            f"run {text} not found (a short id needs at least {MIN_PREFIX} characters)"
        )
    rows = conn.execute(
        "SELECT id, project, job_type, name FROM runs WHERE id > ? ORDER BY id LIMIT 11", (text,)
    ).fetchall()
    hits = [r for r in rows if r["id"].startswith(text)]
    if not hits:
        raise NotFoundError(f"run {text} not found")
    if len(hits) > 1:
        shown = ", ".join(
            f"{r['id']} ({r['job_type'] or 'run'}{' ' + r['name'] if r['name'] else ''}, {r['project']})"
            for r in hits[:10]
        )
        more = " and more" if len(hits) > 10 else ""
        raise AmbiguousError(f"run id {text!r} is ambiguous: {shown}{more}; give more characters")
    return str(hits[0]["id"])
