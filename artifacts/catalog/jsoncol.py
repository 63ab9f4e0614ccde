"""The index's JSON columns (config, summary, metadata, ...), in a form SQLite's JSON functions read.

Python writes NaN and the infinities as the bare words ``NaN`` / ``Infinity``, which the log keeps (its
JSON is Python's), but SQLite's JSON functions before 3.42 call such a document malformed, and one
run whose config held ``float("nan")`` made every query that looks into any run's config fail
("malformed JSON"), and every snapshot of that index refused by its check. In the index such a number
is written ``{"$numberDouble": "NaN"}`` (MongoDB's extended JSON) and read back as the float it was;
a query sees an object there, which no numeric comparison matches (as NaN matches none).

Rows written before this rule are rewritten once per index (`repair`), marked in ``meta``.
"""

from __future__ import annotations

import json
import math
import sqlite3
from typing import Any

__all__ = ["COLUMNS", "MARK", "dumps", "loads", "mark", "repair"]

_TAG = "$numberDouble"
_NAMES = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
MARK = "json_columns"  # meta key: every row of `COLUMNS` is SQLite-readable JSON
#: (table, key column, JSON columns) written through `dumps`
COLUMNS = (
    ("runs", "id", ("config", "summary", "command", "env", "tags")),
    ("versions", "id", ("metadata",)),
    ("files", "rowid", ("meta",)),
)


def _tagged(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return {_TAG: "NaN" if obj != obj else "Infinity" if obj > 0 else "-Infinity"}
    if isinstance(obj, dict):
        return {k: _tagged(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_tagged(v) for v in obj]
    return obj


def _untag(d: dict[str, Any]) -> Any:
    if len(d) == 1 and isinstance(d.get(_TAG), str) and d[_TAG] in _NAMES:
        return _NAMES[d[_TAG]]
    return d


def dumps(obj: Any) -> str:
    """Canonical JSON (sorted keys, no spaces); non-finite floats tagged, see the module."""
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except ValueError:
        return json.dumps(_tagged(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)


def loads(text: str) -> Any:
    """What `dumps` wrote (and any plain JSON), non-finite floats given back as floats."""
    if _TAG in text:
        return json.loads(text, object_hook=_untag)
    return json.loads(text)


def repair(conn: sqlite3.Connection) -> int:
    """Rewrite the rows an earlier writer left with bare NaN/Infinity, once per index; returns how many.
    Call inside a write transaction."""
    if conn.execute("SELECT 1 FROM meta WHERE key=?", (MARK,)).fetchone():
        return 0
    n = 0
    for table, key, columns in COLUMNS:
        for col in columns:
            bad = conn.execute(
                f'SELECT {key}, "{col}" FROM "{table}" '
                f'WHERE "{col}" IS NOT NULL AND "{col}" != \'\' AND NOT json_valid("{col}")'
            ).fetchall()
            for k, text in bad:
                try:
                    fixed = dumps(json.loads(text))
                except (ValueError, RecursionError):
                    continue  # not JSON at all: damage the index's own checks report
                conn.execute(f'UPDATE "{table}" SET "{col}"=? WHERE {key}=?', (fixed, k))
                n += 1
    mark(conn)
    return n


def mark(conn: sqlite3.Connection) -> None:
    """Record that every row is written by `dumps` (a new index, or one just repaired)."""
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, '1')", (MARK,))
