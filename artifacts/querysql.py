"""Compile query trees to parameterised SQL over the index, with types checked against a schema.

Field names are looked up in a fixed schema (each maps to a constant SQL expression written here), key
paths of ``config.`` / ``summary.`` / ``metadata.`` are validated and bound as parameters, and every
literal is a parameter: no byte of user text is ever part of the SQL string.

Typing: a fixed field has one type (text, date, number, set of strings) and a literal of another type
is an error pointing at it. A JSON field takes its type from the literal: ``summary.acc > 0.9`` matches
runs whose ``acc`` is a JSON number (not a string, not a boolean) above 0.9. Every condition is two
valued (a missing key is simply false), so ``not (summary.acc > 0.9)`` includes runs without ``acc``.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .bounds import INT64_MAX
from .errors import QueryError
from .query import (
    And,
    Compare,
    Field,
    Has,
    In,
    Literal,
    Match,
    Node,
    Not,
    Or,
    parse,
    parse_field,
    query_error,
)

__all__ = [
    "RUNS",
    "VERSIONS",
    "Column",
    "Compiled",
    "JsonKey",
    "OrderKey",
    "Schema",
    "compile_where",
    "decode_cursor",
    "encode_cursor",
    "json_path",
    "keyset_condition",
    "order_keys",
    "parse_date",
]

_NUM = "('integer','real')"
_DURATION = re.compile(r"(\d+(?:\.\d*)?)\s*(s|m|min|h|d|w)")
_DURATION_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
KEY = re.compile(r"[^\"\\\x00-\x1f]{1,128}")


@dataclass(frozen=True)
class Column:
    """A fixed field: a constant SQL expression and its type (text, date, number or set)."""

    sql: str
    type: str
    exists: str = ""  # for a set: "EXISTS (SELECT 1 FROM ... WHERE {cond})", {v} is the element


@dataclass(frozen=True)
class Schema:
    """The fields of one entity: fixed columns, and JSON columns addressed as ``prefix.key.path``."""

    entity: str
    columns: dict[str, Column]
    json: dict[str, str]  # prefix -> SQL of the JSON text column
    tiebreak: str  # a unique, indexed column: the last order key of every query

    def names(self) -> str:
        return ", ".join([*self.columns, *(f"{p}.<key>" for p in self.json)])


RUNS = Schema(
    "runs",
    {
        "id": Column("runs.id", "text"),
        "name": Column("runs.name", "text"),
        "project": Column("runs.project", "text"),
        "group": Column("runs.group_", "text"),
        "job_type": Column("runs.job_type", "text"),
        "user": Column("runs.user", "text"),
        "host": Column("runs.host", "text"),
        "status": Column("runs.status", "text"),
        "tags": Column(
            "runs.tags", "set", "EXISTS (SELECT 1 FROM json_each(runs.tags) WHERE {cond})"
        ),
        "started_at": Column("runs.started_at", "date"),
        "finished_at": Column("runs.finished_at", "date"),
        "duration": Column(
            "((julianday(runs.finished_at) - julianday(runs.started_at)) * 86400.0)", "number"
        ),
    },
    {"config": "runs.config", "summary": "runs.summary"},
    "runs.seq",
)

VERSIONS = Schema(
    "versions",
    {
        "name": Column("versions.name", "text"),
        "version": Column("versions.version", "number"),
        "type": Column("versions.type", "text"),
        "digest": Column("versions.digest", "text"),
        "size": Column("versions.size", "number"),
        "user": Column("versions.user", "text"),
        "created_at": Column("versions.created_at", "date"),
        "run_id": Column("versions.run_id", "text"),
        "description": Column("versions.description", "text"),
        "aliases": Column(
            "versions.id",
            "set",
            "EXISTS (SELECT 1 FROM aliases a WHERE a.name = versions.name"
            " AND a.version = versions.version AND {cond})",
        ),
    },
    {"metadata": "versions.metadata"},
    "versions.id",
)


@dataclass(frozen=True)
class JsonKey:
    column: str
    path: str  # a JSON path such as $."optimizer"."lr", bound as a parameter
    source: str  # config, summary, metadata


KeyTypes = Callable[
    [str, str], set[str]
]  # (source, path) -> JSON types seen ("number", "text", ...)


@dataclass(frozen=True)
class Compiled:
    sql: str
    params: tuple[Any, ...]


def json_path(keys: Sequence[str]) -> str:
    """``("optimizer", "lr")`` -> ``$."optimizer"."lr"`` (each key quoted, so dots and digits are literal)."""
    return "$" + "".join(f'."{k}"' for k in keys)


def _resolve(schema: Schema, f: Field, text: str) -> Column | JsonKey:
    if f.name in schema.json:
        if not f.path:
            raise query_error(text, f.pos, f"{f.name} needs a key, as in {f.name}.<key>")
        if len(f.path) > 16:
            raise query_error(text, f.pos, f"{f} is nested more than 16 keys deep")
        for k in f.path:
            if not KEY.fullmatch(k):
                raise query_error(
                    text,
                    f.pos,
                    f"invalid key {k!r} in {f.name} (no quotes, backslashes or control characters; at most 128 characters)",
                )
        return JsonKey(schema.json[f.name], json_path(f.path), f.name)
    col = schema.columns.get(f.name)
    if col is None:
        if f.name in ("metrics", "summary_metrics", "params", "summary", "config", "metadata"):
            hint = " (use " + " or ".join(f"{p}.<key>" for p in schema.json) + ")"
        else:
            hint = ""
        raise query_error(
            text,
            f.pos,
            f"unknown field {f.name!r}{hint}; the {schema.entity} fields are {schema.names()}",
        )
    if f.path:
        raise query_error(text, f.pos, f"{f.name} has no keys; write {f.name} alone")
    return col


def parse_date(value: str) -> str:
    """An ISO date or date-time (UTC unless it says otherwise) in the index's form, for comparison."""
    s = value.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    d = _dt.datetime.fromisoformat(s)  # raises ValueError
    if d.tzinfo is None:
        d = d.replace(tzinfo=_dt.timezone.utc)
    return d.astimezone(_dt.timezone.utc).isoformat(timespec="microseconds")


class _Compiler:
    def __init__(self, schema: Schema, text: str, types: KeyTypes | None) -> None:
        self.schema, self.text, self.types = schema, text, types
        self.params: list[Any] = []

    def check_type(self, f: Field, target: JsonKey, lit: Literal) -> None:
        """Refuse a literal whose type the key never had in this store (a query that cannot match)."""
        if self.types is None:
            return
        v = lit.value
        want = (
            "boolean" if isinstance(v, bool) else "number" if isinstance(v, int | float) else "text"
        )
        seen = self.types(target.source, target.path)
        if seen and want not in seen:
            hint = {"text": "a quoted string", "number": "a number", "boolean": "true or false"}
            raise self.err(
                lit.pos,
                f"{f} holds {' or '.join(sorted(seen))} values in every run that has it, not {want}: "
                f"compare it with {' or '.join(hint[t] for t in sorted(seen))}, not {_show(v)}",
            )

    def err(self, pos: int, message: str) -> QueryError:
        return query_error(self.text, pos, message)

    def bind(self, *values: Any) -> None:
        self.params.extend(values)

    def node(self, n: Node) -> str:
        if isinstance(n, And):
            return "(" + " AND ".join(self.node(o) for o in n.operands) + ")"
        if isinstance(n, Or):
            return "(" + " OR ".join(self.node(o) for o in n.operands) + ")"
        if isinstance(n, Not):
            return f"(NOT {self.node(n.operand)})"
        if isinstance(n, Has):
            return self.has(n.field)
        if isinstance(n, Compare):
            return self.compare(n.field, n.op, n.value)
        if isinstance(n, In):
            sql = self.in_(n.field, n.values)
            return f"(NOT {sql})" if n.negated else sql
        if isinstance(n, Match):
            sql = self.match(n)
            return f"(NOT {sql})" if n.negated else sql
        raise TypeError(f"not a query node: {n!r}")

    # -- typed literals for fixed columns ------------------------------------------------------------
    def typed(self, f: Field, col: Column, lit: Literal) -> Any:
        v = lit.value
        if col.type in ("text", "set"):
            if not isinstance(v, str):
                raise self.err(
                    lit.pos, f"{f} is text: compare it with a quoted string, not {_show(v)}"
                )
            return v
        if col.type == "date":
            if not isinstance(v, str):
                raise self.err(
                    lit.pos,
                    f'{f} is a date: write it quoted, as "2026-11-01" or "2026-11-01T12:00", not {_show(v)}',
                )
            try:
                return parse_date(v)
            except ValueError:
                raise self.err(
                    lit.pos,
                    f'{v!r} is not a date (write "2026-11-01" or "2026-11-01T12:00:00+00:00")',
                ) from None
        # number
        if isinstance(v, bool) or not isinstance(v, int | float):
            m = (
                _DURATION.fullmatch(v.strip())
                if f.name == "duration" and isinstance(v, str)
                else None
            )
            if m is None:
                extra = ' or a duration such as "2h"' if f.name == "duration" else ""
                raise self.err(
                    lit.pos, f"{f} is a number: compare it with a number{extra}, not {_show(v)}"
                )
            return float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        return v

    # -- leaves --------------------------------------------------------------------------------------
    def has(self, f: Field) -> str:
        target = _resolve(self.schema, f, self.text)
        if isinstance(target, JsonKey):
            self.bind(target.path)
            return f"(IFNULL(json_type({target.column}, ?), 'null') != 'null')"
        if target.type == "set":
            return target.exists.format(cond="1")
        return f"({target.sql} IS NOT NULL)"

    def compare(self, f: Field, op: str, lit: Literal) -> str:
        target = _resolve(self.schema, f, self.text)
        if isinstance(target, Column):
            value = self.typed(f, target, lit)
            if target.type == "set":
                if op not in ("=", "!="):
                    raise self.err(
                        lit.pos, f"{f} is a set of strings: use = (contains), != or in, not {op}"
                    )
                self.bind(value)
                sql = target.exists.format(cond=f"{_elem(target)} = ?")
                return sql if op == "=" else f"(NOT {sql})"
            self.bind(value)
            return f"({target.sql} IS NOT NULL AND {target.sql} {op} ?)"
        self.check_type(f, target, lit)
        v, col = lit.value, target.column
        if isinstance(v, bool):
            if op not in ("=", "!="):
                raise self.err(lit.pos, f"{op} does not order booleans; use = or !=")
            self.bind(target.path)
            want = "true" if v == (op == "=") else "false"
            return f"(IFNULL(json_type({col}, ?), '') = '{want}')"
        kind = _NUM if isinstance(v, int | float) else "('text')"
        self.bind(target.path, target.path, v)
        return f"(IFNULL(json_type({col}, ?), '') IN {kind} AND json_extract({col}, ?) {op} ?)"

    def in_(self, f: Field, values: tuple[Literal, ...]) -> str:
        target = _resolve(self.schema, f, self.text)
        marks = lambda k: ", ".join("?" * k)  # noqa: E731
        if isinstance(target, Column):
            typed = [self.typed(f, target, lit) for lit in values]
            self.bind(*typed)
            if target.type == "set":
                return target.exists.format(cond=f"{_elem(target)} IN ({marks(len(typed))})")
            return f"({target.sql} IS NOT NULL AND {target.sql} IN ({marks(len(typed))}))"
        for lit in values:
            self.check_type(f, target, lit)
        col, parts = target.column, []
        nums = [
            lit.value
            for lit in values
            if isinstance(lit.value, int | float) and not isinstance(lit.value, bool)
        ]
        strs = [lit.value for lit in values if isinstance(lit.value, str)]
        bools = sorted(
            {("true" if lit.value else "false") for lit in values if isinstance(lit.value, bool)}
        )
        for kind, group in ((_NUM, nums), ("('text')", strs)):
            if group:
                self.bind(target.path, target.path, *group)
                parts.append(
                    f"(IFNULL(json_type({col}, ?), '') IN {kind} AND json_extract({col}, ?) IN ({marks(len(group))}))"
                )
        if bools:
            self.bind(target.path)
            parts.append(
                f"(IFNULL(json_type({col}, ?), '') IN ({', '.join(repr(b) for b in bools)}))"
            )
        return "(" + " OR ".join(parts) + ")"

    def match(self, n: Match) -> str:
        target = _resolve(self.schema, n.field, self.text)
        op = "LIKE" if n.kind == "like" else "GLOB"
        if isinstance(target, Column):
            if target.type not in ("text", "set"):
                raise self.err(n.field.pos, f"{n.kind} matches text; {n.field} is a {target.type}")
            self.bind(n.pattern.value)
            if target.type == "set":
                return target.exists.format(cond=f"{_elem(target)} {op} ?")
            return f"({target.sql} IS NOT NULL AND {target.sql} {op} ?)"
        self.check_type(n.field, target, n.pattern)
        self.bind(target.path, target.path, n.pattern.value)
        col = target.column
        return f"(IFNULL(json_type({col}, ?), '') = 'text' AND json_extract({col}, ?) {op} ?)"


def _elem(col: Column) -> str:
    return "a.alias" if "aliases a" in col.exists else "value"


def _show(v: Any) -> str:
    return json.dumps(v) if isinstance(v, str | bool) else repr(v)


def compile_where(schema: Schema, where: str | Node, types: KeyTypes | None = None) -> Compiled:
    """``where`` (text or an already parsed tree) as one SQL condition and its parameters; ``types``
    tells which JSON types a key has had, so that a comparison that can never match is an error."""
    text = where if isinstance(where, str) else ""
    tree = parse(where) if isinstance(where, str) else where
    c = _Compiler(schema, text, types)
    sql = c.node(tree)
    return Compiled(sql, tuple(c.params))


# -- ordering and keyset pagination ----------------------------------------------------------------------
@dataclass(frozen=True)
class OrderKey:
    """One ``order_by`` entry: ``-summary.val_acc`` is descending; missing values sort last either way."""

    spec: str
    sql: str
    params: tuple[Any, ...]
    descending: bool


def field_sql(schema: Schema, text: str, *, purpose: str) -> tuple[str, tuple[Any, ...]]:
    """The value of one field (for ordering or grouping): SQL and its parameters."""
    target = _resolve(schema, parse_field(text), text)
    if isinstance(target, JsonKey):
        return f"json_extract({target.column}, ?)", (target.path,)
    if target.type == "set":
        raise query_error(text, 0, f"{text} is a set; it cannot be used for {purpose}")
    return target.sql, ()


def order_keys(schema: Schema, order_by: Sequence[str] | str | None) -> list[OrderKey]:
    if order_by is None:
        return []
    if isinstance(order_by, str):
        order_by = [order_by]
    keys = []
    for spec in order_by:
        if not isinstance(spec, str) or not spec.strip():
            raise QueryError(f"order_by takes field names such as '-summary.val_acc', not {spec!r}")
        s = spec.strip()
        desc = s.startswith("-")
        name = s[1:] if s[:1] in "+-" else s
        sql, params = field_sql(schema, name, purpose="ordering")
        keys.append(OrderKey(s, sql, params, desc))
    return keys


def order_clause(schema: Schema, keys: Sequence[OrderKey]) -> Compiled:
    parts: list[str] = []
    params: list[Any] = []
    for k in keys:
        parts.append(f"({k.sql} IS NULL), {k.sql} {'DESC' if k.descending else 'ASC'}")
        params.extend(k.params * 2)
    parts.append(f"{schema.tiebreak} ASC")
    return Compiled(", ".join(parts), tuple(params))


def encode_cursor(keys: Sequence[OrderKey], values: Sequence[Any]) -> str:
    """An opaque, URL-safe token naming the position after a row: its order values and tiebreak."""
    data = json.dumps({"o": [k.spec for k in keys], "v": list(values)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(data.encode()).decode().rstrip("=")


def decode_cursor(keys: Sequence[OrderKey], cursor: str) -> list[Any]:
    bad = QueryError(
        "invalid cursor: pass the next_cursor of a previous page of the same query, unchanged"
    )
    if not isinstance(cursor, str) or len(cursor) > 100_000:
        raise bad
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        order, values = data["o"], data["v"]
    except (ValueError, TypeError, KeyError):
        raise bad from None
    if order != [k.spec for k in keys]:
        raise QueryError(
            f"the cursor was made for order_by={order!r}, not {[k.spec for k in keys]!r}; start again without after="
        )
    if (
        not isinstance(values, list)
        or len(values) != len(keys) + 1
        or not all(v is None or isinstance(v, str | int | float) for v in values)
        or not all(-INT64_MAX - 1 <= v <= INT64_MAX for v in values if isinstance(v, int))
        or not isinstance(values[-1], int)
        or isinstance(values[-1], bool)
    ):
        raise bad
    return values


def keyset_condition(schema: Schema, keys: Sequence[OrderKey], values: Sequence[Any]) -> Compiled:
    """Rows strictly after ``values`` in the order of ``keys`` (nulls last), then the tiebreak."""
    ors, params = [], []
    for i in range(len(keys) + 1):
        ands: list[str] = []
        p: list[Any] = []
        for k, v in zip(keys[:i], values[:i], strict=False):
            if v is None:
                ands.append(f"{k.sql} IS NULL")
                p.extend(k.params)
            else:
                ands.append(f"{k.sql} = ?")
                p.extend((*k.params, v))
        if i == len(keys):
            ands.append(f"{schema.tiebreak} > ?")
            p.append(values[-1])
        else:
            k, v = keys[i], values[i]
            if v is None:
                continue  # nothing sorts after a missing value except other missing values
            ands.append(f"({k.sql} IS NULL OR {k.sql} {'<' if k.descending else '>'} ?)")
            p.extend((*k.params, *k.params, v))
        ors.append("(" + " AND ".join(ands) + ")")
        params.extend(p)
    return Compiled("(" + " OR ".join(ors) + ")", tuple(params))
