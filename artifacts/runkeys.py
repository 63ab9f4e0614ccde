"""Which config and summary keys the runs of a store have, and with which JSON types.

The index keeps one row per (source, key path, type) seen, written as entries are applied
(`artifacts.runvalues.Writer`); queries use it to refuse comparisons that can never match
(``summary.acc > "x"`` where ``acc`` is always a number) and front ends use it to offer columns. Rows are never removed: a key once seen stays known.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from typing import Any

__all__ = ["RunField", "key_types", "run_fields"]

_PLAIN = re.compile(r"[A-Za-z0-9_\-]+")


@dataclass(frozen=True)
class RunField:
    """A queryable run field (``summary.val_acc``) and the JSON types its values have had."""

    name: str
    types: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "types": list(self.types)}


def key_types(c: sqlite3.Connection, source: str, path: str) -> set[str]:
    """The types recorded for one key (empty when no run has it: then nothing is refused)."""
    return {
        r[0]
        for r in c.execute("SELECT type FROM run_keys WHERE source=? AND path=?", (source, path))
    }


def _dotted(source: str, path: str) -> str:
    keys = re.findall(r'\."([^"]*)"', path)
    return ".".join([source, *(k if _PLAIN.fullmatch(k) else f'"{k}"' for k in keys)])


def run_fields(c: sqlite3.Connection) -> list[RunField]:
    """Every config/summary key seen, config first, each with its types."""
    found: dict[str, set[str]] = {}
    for source, path, typ in c.execute(
        "SELECT source, path, type FROM run_keys ORDER BY source, path"
    ):
        found.setdefault(_dotted(source, path), set()).add(typ)
    return [RunField(name, tuple(sorted(types))) for name, types in found.items()]
