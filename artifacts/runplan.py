"""The access path of one runs query: which index finds its rows, chosen per query from the data.

SQLite plans a runs query without knowing how many runs a condition keeps (the index has no
statistics, and a JSON condition is an opaque expression to it), so it would scan every run for
``config.lr < 1e-3`` and sort all of job_type "eval" to return the 50 latest. This module picks:

* **drive**: the top-level condition (one operand of the outer ``and``, or the ``project``) that an
  index answers and that keeps fewest runs, when that is under `CAP`, counted by reading at most
  `CAP` index entries: a fixed column's index, or `artifacts.runvalues` for a ``config.*`` /
  ``summary.*`` comparison. Its runs are the candidates; they are sorted.
* **walk**: with a limit and no such condition, the runs in the order of the first order key, read
  from its index (a fixed column's, or run_values for a JSON key whose values are all numbers or
  strings, which order exactly as ``json_extract`` does), stopping at limit + 1 matches; then the
  runs without that key (missing values sort last), found through the same index.
* **scan**: otherwise, what SQLite chooses.

Every plan checks each candidate against the whole compiled condition (the JSON stays the arbiter)
and orders by the same keys, so plans differ in speed only: a property test holds them to that.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .query import And, Compare, Field, Has, In, Node, parse_field
from .querysql import (
    RUNS,
    Compiled,
    JsonKey,
    OrderKey,
    _resolve,
    compile_where,
    keyset_condition,
    order_clause,
)
from .runvalues import key_id, value_condition

__all__ = ["CAP", "PLANS", "Plan", "choose", "run_rows"]

#: A condition that keeps fewer runs than this drives the query (its candidates are all read and
#: sorted: some ms); counting a condition's runs reads at most this many index entries.
CAP = 4000
PLANS = ("auto", "drive", "walk", "scan")

#: fixed fields whose index leads with their column: field -> (column, index)
_INDEXED = {
    "project": ("runs.project", "idx_runs_project_seq"),
    "group": ("runs.group_", "idx_runs_group__job_type"),
    "job_type": ("runs.job_type", "idx_runs_job_type"),
    "user": ("runs.user", "idx_runs_user"),
    "status": ("runs.status", "idx_runs_status"),
    "started_at": ("runs.started_at", "idx_runs_started_at"),
    "id": ("runs.id", "sqlite_autoindex_runs_1"),
}
_BY_COLUMN = {col: idx for col, idx in _INDEXED.values()}


@dataclass(frozen=True)
class Access:
    """One index that can produce candidate runs: the FROM clause and the conditions it adds."""

    kind: str  # "index" (a fixed column's) or "values" (run_values of one key)
    source: str  # FROM text
    conds: tuple[str, ...] = ()
    params: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Plan:
    kind: str  # drive, walk, scan
    access: Access | None = None
    #: walk only: the first order key's value as the access reads it, and how to find the runs
    #: that lack it
    walk_value: str = ""
    missing: Compiled | None = None
    estimate: int | None = None


def _json_key(field: Field) -> JsonKey | None:
    target = _resolve(RUNS, field, str(field))
    return target if isinstance(target, JsonKey) else None


def _usable_key(conn: sqlite3.Connection, key: JsonKey) -> int | None:
    """The run_values id of ``key`` when its rows may serve as an access path (none of them opaque);
    -1 when no run ever had the key."""
    kid = key_id(conn, key.source, key.path)
    if kid is None:
        return -1
    hit = conn.execute(
        "SELECT 1 FROM run_values WHERE key=? AND value >= X'02' LIMIT 1", (kid,)
    ).fetchone()
    return None if hit else kid


def _candidates(
    conn: sqlite3.Connection, tree: Node | None, project: str | None
) -> list[tuple[int, Access]]:
    """Each top-level condition an index answers, with the runs it keeps (counted up to `CAP`)."""
    out: list[tuple[int, Access] | None] = []
    if project is not None:
        col, idx = _INDEXED["project"]
        out.append(_count(conn, Access("index", f"runs INDEXED BY {idx}", (f"{col} = ?",), (project,))))
    operands = tree.operands if isinstance(tree, And) else (tree,) if tree is not None else ()
    for n in operands[:16]:
        if isinstance(n, Has | Compare) or (isinstance(n, In) and not n.negated):
            field = n.field
        else:
            continue
        if field.name in _INDEXED and not isinstance(n, Has):
            col, idx = _INDEXED[field.name]
            c = compile_where(RUNS, n)
            out.append(_count(conn, Access("index", f"runs INDEXED BY {idx}", (c.sql,), c.params)))
            continue
        if field.name not in RUNS.json:
            continue
        key = _json_key(field)
        cond = value_condition(n, "d.value") if key is not None else None
        if key is None or cond is None:
            continue
        kid = _usable_key(conn, key)
        if kid is None:
            continue
        sql, params = cond
        access = Access(
            "values",
            "run_values d CROSS JOIN runs ON runs.seq = d.seq",
            ("d.key = ?", sql),
            (kid, *params),
        )
        out.append((0, access) if kid == -1 else _count(conn, access))  # -1: no run has it
    return [e for e in out if e is not None]


def _count(conn: sqlite3.Connection, a: Access) -> tuple[int, Access] | None:
    frm = "run_values d" if a.kind == "values" else a.source
    sql = f"SELECT COUNT(*) FROM (SELECT 1 FROM {frm} WHERE {' AND '.join(a.conds)} LIMIT ?)"
    try:
        return int(conn.execute(sql, (*a.params, CAP)).fetchone()[0]), a
    except sqlite3.OperationalError:  # "no query solution": the index cannot answer it
        return None


def _walk(conn: sqlite3.Connection, key: OrderKey) -> Plan | None:
    name = key.spec[1:] if key.spec[:1] in "+-" else key.spec
    field = parse_field(name)
    if field.name in RUNS.json:
        jk = _json_key(field)
        kid = key_id(conn, jk.source, jk.path) if jk is not None else None
        if kid is None:
            return None
        blob = conn.execute(
            "SELECT 1 FROM run_values WHERE key=? AND value >= X'' LIMIT 1", (kid,)
        ).fetchone()
        if blob:  # booleans, objects, arrays or opaque values: json_extract orders them otherwise
            return None
        access = Access(
            "values", "run_values o CROSS JOIN runs ON runs.seq = o.seq", ("o.key = ?",), (kid,)
        )
        missing = Compiled("runs.seq NOT IN (SELECT seq FROM run_values WHERE key = ?)", (kid,))
        return Plan("walk", access, "o.value", missing)
    idx = _BY_COLUMN.get(key.sql)
    if idx is None:
        return None
    access = Access("index", f"runs INDEXED BY {idx}", (f"{key.sql} IS NOT NULL",))
    return Plan("walk", access, key.sql, Compiled(f"{key.sql} IS NULL", ()))


def choose(
    conn: sqlite3.Connection,
    tree: Node | None,
    project: str | None,
    keys: Sequence[OrderKey],
    limit: int | None,
    force: str = "auto",
) -> Plan:
    """The plan for one query (``force``: a given kind where it applies, for tests)."""
    if force == "scan":
        return Plan("scan")
    if force != "walk":
        found = sorted(_candidates(conn, tree, project), key=lambda e: e[0])
        if found and (found[0][0] < CAP or force == "drive"):
            return Plan("drive", found[0][1], estimate=found[0][0])
    if keys and (limit is not None or force == "walk"):
        walk = _walk(conn, keys[0])
        if walk is not None:
            return walk
    return Plan("scan")


def _select(keys: Sequence[OrderKey], first: str | None) -> tuple[str, list[Any]]:
    cols: list[str] = ["runs.*"]
    params: list[Any] = []
    for i, k in enumerate(keys):
        if i == 0 and first is not None:
            cols.append(f"{first} AS _k0")
        else:
            cols.append(f"{k.sql} AS _k{i}")
            params.extend(k.params)
    return ", ".join(cols), params


def _query(
    conn: sqlite3.Connection,
    select: tuple[str, list[Any]],
    source: str,
    conds: Sequence[tuple[str, Sequence[Any]]],
    order: tuple[str, Sequence[Any]],
    limit: int | None,
) -> list[sqlite3.Row]:
    where = [c for c, _ in conds if c]
    sql = f"SELECT {select[0]} FROM {source}" + (f" WHERE {' AND '.join(where)}" if where else "")
    sql += f" ORDER BY {order[0]}"
    params = [*select[1], *(p for c, ps in conds if c for p in ps), *order[1]]
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return conn.execute(sql, params).fetchall()


def run_rows(
    conn: sqlite3.Connection,
    plan: Plan,
    where: Compiled | None,
    project: str | None,
    keys: Sequence[OrderKey],
    after: Sequence[Any] | None,
    limit: int | None,
) -> list[sqlite3.Row]:
    """The rows of a query in its order (at most ``limit``), after the cursor values ``after``."""
    base: list[tuple[str, Sequence[Any]]] = []
    if project is not None:
        base.append(("runs.project = ?", (project,)))
    if where is not None:
        base.append((where.sql, where.params))
    if plan.kind != "walk" or plan.access is None:
        conds = list(base)
        if after is not None:
            k = keyset_condition(RUNS, keys, after)
            conds.append((k.sql, k.params))
        source = "runs"
        if plan.kind == "drive" and plan.access is not None:
            a = plan.access
            source = a.source
            conds.insert(0, (" AND ".join(a.conds), a.params))
        return _query(conn, _select(keys, None), source, conds, _order(keys), limit)
    # walk: the runs that have the first key, in its index's order; then those that lack it
    a, first = plan.access, keys[0]
    rest = list(keys[1:])
    rows: list[sqlite3.Row] = []
    if after is None or after[0] is not None:
        conds = [(" AND ".join(a.conds), a.params), *base]
        if after is not None:
            moved = [dataclasses.replace(first, sql=plan.walk_value, params=()), *rest]
            k = keyset_condition(RUNS, moved, after)
            conds.append((k.sql, k.params))
        rest_order = order_clause(RUNS, rest)
        order = (
            f"{plan.walk_value} {'DESC' if first.descending else 'ASC'}, {rest_order.sql}",
            rest_order.params,
        )
        rows = _query(conn, _select(keys, plan.walk_value), a.source, conds, order, limit)
    if limit is not None and len(rows) >= limit:
        return rows
    assert plan.missing is not None
    conds = [(plan.missing.sql, plan.missing.params), *base]
    if after is not None and after[0] is None:
        k = keyset_condition(RUNS, rest, after[1:])
        conds.append((k.sql, k.params))
    left = None if limit is None else limit - len(rows)
    more = _query(conn, _select(keys, "NULL"), "runs", conds, _order(rest), left)
    return rows + more


def _order(keys: Sequence[OrderKey]) -> tuple[str, tuple[Any, ...]]:
    c = order_clause(RUNS, keys)
    return c.sql, c.params
