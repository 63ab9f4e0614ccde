"""Test helper: replace a store's newest snapshot by an edited copy that passes the descriptor and digest
checks, as a buggy or hostile writer could make it (the checks on its content are what is tested)."""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from artifacts.catalog import snapshots as snaps

__all__ = ["checked_copy", "rewrite_newest_snapshot"]


def checked_copy(root: Any, desc: snaps.Snapshot, tmp: str) -> Path:
    """The snapshot's database, downloaded and checked as a cold open does."""
    _, path = snaps.check_snapshot(
        root,
        desc.path,
        index_format=desc.index_format,
        schema=desc.schema,
        store_id=desc.store_id,
        workdir=Path(tmp),
    )
    return path


def rewrite_newest_snapshot(
    root: Any, edit: Callable[[sqlite3.Connection], None]
) -> tuple[snaps.Snapshot, snaps.Snapshot]:
    """Apply ``edit`` to the newest snapshot's database (autocommit connection) and write the result
    as a snapshot of the same seq in its place; returns (old, new) descriptors."""
    desc = snaps.read_descriptor(root, snaps.list_snapshots(root)[0])
    with tempfile.TemporaryDirectory() as tmp:
        path = checked_copy(root, desc, tmp)
        conn = sqlite3.connect(path, isolation_level=None)
        edit(conn)
        conn.close()
        pinned, _ = snaps.pin(path)
        root.delete(desc.path)
        new = snaps.write_snapshot(
            root, pinned, index_format=desc.index_format, store_id=desc.store_id
        )
    assert new is not None
    return desc, new
