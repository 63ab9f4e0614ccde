"""An index written by an earlier main (format 4) is rebuilt from the log on open, and the query
engine's columns, indexes and key table are there afterwards."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import artifacts
from artifacts.catalog.index import INDEX_FORMAT

FIXTURE = Path(__file__).parent / "fixtures" / "index_format4"


def test_format4_index_from_main_is_rebuilt_and_queryable(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    shutil.copytree(FIXTURE / "store", store_dir)
    store_id = json.loads((store_dir / "store.json").read_text())["id"]
    index = Path(os.environ["ARTIFACTS_CACHE_DIR"]) / "index" / f"{store_id}.sqlite"
    index.parent.mkdir(parents=True)
    # kept as SQL text (what that index held, from sqlite3's iterdump), rebuilt into a real file here
    with sqlite3.connect(index) as built:
        built.executescript((FIXTURE / "index.sql").read_text())
    built.close()
    old = sqlite3.connect(index)
    assert old.execute("SELECT value FROM meta WHERE key='format'").fetchone() == ("4",)
    assert "tags" not in {r[1] for r in old.execute("PRAGMA table_info(runs)")}
    old.close()

    store = artifacts.open_store(store_dir)
    assert store.index._format() == INDEX_FORMAT == 6
    best = store.runs(where='group = "baseline" and config.lr < 1e-2', order_by="-summary.val_acc")
    assert [r.config["lr"] for r in best] == [1e-3]
    assert [(g.key["group"], g.count) for g in store.run_groups(by="group")] == [
        ("baseline", 2),
        ("wide", 1),
    ]
    c = store.index._conn
    indexes = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"idx_runs_group__job_type", "idx_runs_seq", "idx_runs_started_at"} <= indexes
    assert {r[0] for r in c.execute("SELECT path FROM run_keys WHERE source='summary'")} == {
        '$."val_acc"'
    }
    store.close()
