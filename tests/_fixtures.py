"""A store and its local index as an earlier main left them (tests/fixtures/index_formatN), set up
for a test to open with the current code."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

from artifacts.catalog.identity import index_path
from storage import open_root

__all__ = ["KEPT", "old_index_store"]

#: a quota no replay of the log would make: it survives only if the index is migrated in place
KEPT = "kept-by-migration"


def old_index_store(fixture: Path, tmp_path: Path) -> tuple[Path, str]:
    """Copy ``fixture``'s store into ``tmp_path`` and build its index (kept as SQL text, from
    sqlite3's iterdump) where the cache looks for it, plus the `KEPT` quota; (store dir, store id)."""
    store_dir = tmp_path / "store"
    shutil.copytree(fixture / "store", store_dir)
    store_id = json.loads((store_dir / "store.json").read_text())["id"]
    index = index_path(Path(os.environ["ARTIFACTS_CACHE_DIR"]), store_id, open_root(str(store_dir)))
    index.parent.mkdir(parents=True)
    with sqlite3.connect(index) as built:
        built.executescript((fixture / "index.sql").read_text())
        built.execute("INSERT INTO quotas VALUES (?, 1)", (KEPT,))
    built.close()
    return store_dir, store_id
