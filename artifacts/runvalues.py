"""The index's typed tables of run config and summary keys: run_keys (the JSON types each key path
has had: type checks in queries, column pickers, `artifacts.runkeys`) and run_values, an access path.

Without it a filter or an order on ``config.*`` / ``summary.*`` parses the JSON of every run (about
1.5 us per run and key), because SQLite sees ``json_extract`` as an opaque expression. With it:

    run_value_keys(id, source, path)   one small integer per (config | summary, key path)
    run_values(key, value, seq)        PRIMARY KEY (key, value, seq), WITHOUT ROWID: one B-tree

one row per run (``seq`` is runs.seq, stable across rebuilds) and key path that the run's JSON has and
the query language can address (`querysql.KEY`, nested at most 16 keys), so that ``config.lr < 1e-3``
is a range of one key's rows and ``-summary.val_acc`` is that key's rows read backwards. ``value`` is
what ``json_extract`` returns, so comparisons and ORDER BY on it agree with the JSON: a number
(INTEGER or REAL) or a string (TEXT). Everything else is a BLOB, and BLOBs sort after every number and
string, so a range over numbers or strings never meets one:

    X''    an object or an array (only ``has`` asks about it)
    X'00'  false, X'01' true (json_extract says 0 and 1: a key with booleans is ordered by the JSON)
    X'02'  a value the JSON functions or sqlite3 would not give back as written (NaN, an infinity, an
           integer beyond 64 bits, a string with NUL or a lone surrogate): a key with one is never
           used as an access path, so such a value cannot make any query answer differently

JSON null is not stored: every query treats it as missing. The table is an access path only: the
planner (`artifacts.runplan`) takes candidate runs or an order from it, and every candidate is still
checked against the compiled JSON condition, which stays the one arbiter of what matches.
"""

from __future__ import annotations

import math
import sqlite3
from typing import Any

from .catalog import jsoncol
from .query import Compare, Has, In, Node
from .querysql import KEY

__all__ = [
    "DDL",
    "OBJECT",
    "OPAQUE",
    "Writer",
    "encode",
    "fill",
    "key_id",
    "leaves",
    "value_condition",
]

OBJECT, FALSE, TRUE, OPAQUE = b"", b"\x00", b"\x01", b"\x02"
MAX_KEYS = 16  # the query language addresses at most 16 nested keys
_INT64 = 1 << 63

#: The tables, as both a new index and a migrated one create them (a snapshot fits an index only if
#: the schema text is the same).
DDL = (
    "CREATE TABLE run_value_keys (id INTEGER PRIMARY KEY, source TEXT NOT NULL,"
    " path TEXT NOT NULL, UNIQUE (source, path))",
    "CREATE TABLE run_values (key INTEGER NOT NULL, value NOT NULL, seq INTEGER NOT NULL,"
    " PRIMARY KEY (key, value, seq)) WITHOUT ROWID",
)


def encode(v: Any) -> Any:
    """The stored form of one non-null JSON value (see the module docstring)."""
    if isinstance(v, bool):
        return TRUE if v else FALSE
    if isinstance(v, int):
        return v if -_INT64 <= v < _INT64 else OPAQUE
    if isinstance(v, float):
        return v if math.isfinite(v) else OPAQUE
    if isinstance(v, str):
        if "\0" in v:
            return OPAQUE
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            return OPAQUE
        return v
    return OBJECT  # dict or list


_TYPES = {bool: "boolean", int: "number", float: "number", str: "text"}
_PATHS: dict[tuple[str, str], str | None] = {}  # (parent path, key) -> child path, or None: not addressable


def _child(parent: str, k: str) -> str | None:
    """``$."a"`` + ``b`` -> ``$."a"."b"`` (`querysql.json_path`), None for a key queries cannot name;
    remembered, as the same keys come with every run (bounded: store content is untrusted)."""
    if (parent, k) in _PATHS:
        return _PATHS[(parent, k)]
    found = f'{parent}."{k}"' if isinstance(k, str) and KEY.fullmatch(k) else None
    if len(_PATHS) >= 1 << 16:
        _PATHS.clear()
    _PATHS[(parent, k)] = found
    return found


def leaves(obj: Any) -> list[tuple[str, Any, str | None]]:
    """(json path, stored value, JSON type for run_keys) of every non-null value of ``obj`` under an
    addressable key path; objects and arrays have no type there (run_keys lists scalars)."""
    out: list[tuple[str, Any, str | None]] = []
    if not isinstance(obj, dict):
        return out
    stack: list[tuple[str, int, dict[str, Any]]] = [("$", 0, obj)]
    while stack:
        parent, depth, d = stack.pop()
        for k, v in d.items():
            if v is None:
                continue
            path = _PATHS.get((parent, k)) or _child(parent, k)
            if path is None:
                continue
            t = type(v)
            if t is float:  # the common cases first: a cold rebuild walks millions of values
                out.append((path, v if math.isfinite(v) else OPAQUE, "number"))
            elif t is str and v.isascii() and "\0" not in v:
                out.append((path, v, "text"))
            elif t is dict:
                if depth + 1 < MAX_KEYS:
                    stack.append((path, depth + 1, v))
                out.append((path, OBJECT, None))
            else:
                out.append((path, encode(v), _TYPES.get(t)))  # type: ignore[arg-type]
    return out


class Writer:
    """Writes run_keys (the JSON types each key path has had) and run_values for the runs an index
    applies. New rows wait in a buffer until `flush` (before the transaction commits), which inserts
    them in key order: one pass over the B-tree's pages instead of a random page per row (a cold
    rebuild inserts millions). Its caches and buffer hold for one transaction: the index calls
    `forget` when one begins, and `mark` / `rollback_to` around each entry's savepoint."""

    def __init__(self) -> None:
        self._ids: dict[tuple[str, str], int] = {}
        self._typed: set[tuple[str, str, str]] = set()
        self._rows: list[tuple[int, Any, int]] = []

    def forget(self) -> None:
        self._ids.clear()
        self._typed.clear()
        self._rows.clear()

    def mark(self) -> int:
        return len(self._rows)

    def rollback_to(self, mark: int) -> None:
        """The savepoint at ``mark`` was rolled back: drop its rows, and ids or types it recorded."""
        del self._rows[mark:]
        self._ids.clear()
        self._typed.clear()

    def key(self, c: sqlite3.Connection, source: str, path: str) -> int:
        k = (source, path)
        found = self._ids.get(k)
        if found is None:
            row = c.execute(
                "SELECT id FROM run_value_keys WHERE source=? AND path=?", k
            ).fetchone()
            if row is not None:
                found = int(row[0])
            else:
                cur = c.execute("INSERT INTO run_value_keys (source, path) VALUES (?, ?)", k)
                found = int(cur.lastrowid or 0)
            self._ids[k] = found
        return found

    def write(self, c: sqlite3.Connection, source: str, seq: int, old: Any, new: Any) -> None:
        """Replace run ``seq``'s rows of ``source`` (from the JSON ``old``) by those of ``new``."""
        if old:
            self.flush(c)  # the rows to delete may still be waiting
            c.executemany(
                "DELETE FROM run_values WHERE key=? AND value=? AND seq=?",
                [(self.key(c, source, p), v, seq) for p, v, _ in leaves(old)],
            )
        rows = leaves(new)
        if not rows:
            return
        types = {(source, p, t) for p, _, t in rows if t is not None} - self._typed
        if types:
            c.executemany("INSERT OR IGNORE INTO run_keys VALUES (?, ?, ?)", sorted(types))
            self._typed |= types
        self._rows.extend((self.key(c, source, p), v, seq) for p, v, _ in rows)

    def flush(self, c: sqlite3.Connection) -> None:
        if self._rows:
            self._rows.sort(key=_order)
            c.executemany("INSERT OR REPLACE INTO run_values VALUES (?, ?, ?)", self._rows)
            self._rows.clear()


def _order(row: tuple[int, Any, int]) -> tuple[int, int, Any, int]:
    """SQLite's order of the primary key: numbers, then strings, then blobs."""
    v = row[1]
    return row[0], 2 if isinstance(v, bytes) else 1 if isinstance(v, str) else 0, v, row[2]


def fill(c: sqlite3.Connection) -> int:
    """Make the rows of every run in the index from its config and summary (the migration from an
    index written before the table existed); returns the runs read."""
    w, n = Writer(), 0
    for seq, config, summary in c.execute("SELECT seq, config, summary FROM runs").fetchall():
        for source, text in (("config", config), ("summary", summary)):
            try:
                obj = jsoncol.loads(text) if text else None
            except (ValueError, RecursionError):  # a damaged cache: no rows, the JSON still answers
                obj = None
            w.write(c, source, seq, None, obj)
        n += 1
    w.flush(c)
    return n


def key_id(c: sqlite3.Connection, source: str, path: str) -> int | None:
    """The id of a key path no run may have had (None), for a query: never creates one."""
    row = c.execute("SELECT id FROM run_value_keys WHERE source=? AND path=?", (source, path))
    found = row.fetchone()
    return None if found is None else int(found[0])


def _stored(v: Any) -> Any:
    return (TRUE if v else FALSE) if isinstance(v, bool) else v


def value_condition(n: Node, column: str) -> tuple[str, tuple[Any, ...]] | None:
    """The rows of one key that a JSON leaf condition holds for, as a condition on ``column`` (the
    value of a run_values row of that key); None for a condition no index range answers (like,
    glob, a negated in). Mirrors `querysql`: numbers compare with numbers, strings with strings."""
    if isinstance(n, Has):
        return "1", ()
    if isinstance(n, In):
        if n.negated:
            return None
        vals = tuple(_stored(lit.value) for lit in n.values)
        return f"{column} IN ({', '.join('?' * len(vals))})", vals
    if not isinstance(n, Compare):
        return None
    v, op = n.value.value, n.op
    if isinstance(v, bool):
        want = TRUE if v == (op == "=") else FALSE
        return f"{column} = ?", (want,)
    if op == "=":
        return f"{column} = ?", (v,)
    # the bounds keep a range within its type: numbers < '' (the least string) <= strings < X''
    if isinstance(v, str):
        low, high = f"{column} >= ''", f"{column} < X''"
    else:
        low, high = "", f"{column} < ''"
    parts = {
        "<": [low, f"{column} < ?"],
        "<=": [low, f"{column} <= ?"],
        ">": [f"{column} > ?", high],
        ">=": [f"{column} >= ?", high],
        "!=": [low, high, f"{column} != ?"],
    }[op]
    return " AND ".join(p for p in parts if p), (v,)
