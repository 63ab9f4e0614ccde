"""The usage page: bytes against quota per user, and compute hours by user and by project.

Compute accounting belongs to the query layer (`Store.compute`); where the store predates it, hours
are the wall-clock time of finished runs read from the index, and open runs are counted up to now and
marked as estimates.
"""

from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["usage_view"]


def _hours(rows: list[Any], key: str) -> list[dict[str, Any]]:
    now = _dt.datetime.now(_dt.timezone.utc)
    acc: dict[str, dict[str, Any]] = {}
    for r in rows:
        try:
            start = _dt.datetime.fromisoformat(r["started_at"])
            end = _dt.datetime.fromisoformat(r["finished_at"]) if r["finished_at"] else now
        except (TypeError, ValueError):
            continue
        a = acc.setdefault(
            r[key] or "-", {"key": r[key] or "-", "runs": 0, "hours": 0.0, "open": 0}
        )
        a["runs"] += 1
        a["hours"] += max(0.0, (end - start).total_seconds()) / 3600
        a["open"] += r["finished_at"] is None
    return sorted(acc.values(), key=lambda a: (-a["hours"], a["key"]))


def _compute(store: Store, by: str) -> list[dict[str, Any]]:
    column = {"user": "user", "project": "project"}[by]
    rows = store.index.select(
        f"SELECT {column}, started_at, finished_at FROM runs"
    )
    return _hours(rows, column)


def usage_view(store: Store) -> dict[str, Any]:
    select = store.index.select
    users = sorted(
        {r[0] for r in select("SELECT DISTINCT user FROM versions")}
        | {r[0] for r in select("SELECT user FROM quotas")}
        | {r[0] for r in select("SELECT DISTINCT user FROM runs")}
    )
    storage = []
    for u in users:
        used, quota = store.index.usage(u), store.index.quota(u)
        storage.append(
            {
                "user": u,
                "used": used,
                "quota": quota,
                "percent": None if not quota else min(100.0, 100.0 * used / quota),
                "admin": store.index.is_admin(u),
            }
        )
    return {
        "storage": storage,
        "by_user": _compute(store, "user"),
        "by_project": _compute(store, "project"),
    }
