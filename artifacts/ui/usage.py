"""The usage page: bytes against quota per user, and compute hours by user and by project.

Compute hours come from the query layer (`Store.compute`): wall-clock and GPU hours, with runs still
open counted to their last heartbeat and marked as estimates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["usage_view"]


def _compute(store: Store, by: str) -> list[dict[str, Any]]:
    return [
        {
            "key": u.key if u.key is not None else "-",
            "runs": u.runs,
            "hours": u.hours,
            "gpu_hours": u.gpu_hours,
            "open": u.open_runs,
            "estimated": u.estimated,
        }
        for u in sorted(store.compute(by=by), key=lambda u: (-u.hours, str(u.key)))
    ]


def usage_view(store: Store) -> dict[str, Any]:
    storage = []
    for u in store.index.users():
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
