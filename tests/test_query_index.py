"""An index written by an earlier main (format 4) is rebuilt from the log on open, and the query
engine's columns, indexes and key table are there afterwards."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

from _fixtures import KEPT, old_index_store

import artifacts
from artifacts import runplan
from artifacts.catalog.identity import index_path
from artifacts.catalog.index import INDEX_FORMAT, Index
from artifacts.catalog.snapshots import schema_digest
from artifacts.query import parse
from artifacts.querysql import RUNS, order_keys
from artifacts.runquery import select_runs
from storage import open_root

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
    assert store.index._format() == INDEX_FORMAT
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


FIXTURE6 = Path(__file__).parent / "fixtures" / "index_format6"


def test_format6_index_from_main_is_migrated_in_place_and_answers_through_run_values(
    tmp_path: Path,
) -> None:
    store_dir, store_id = old_index_store(FIXTURE6, tmp_path)
    index = index_path(Path(os.environ["ARTIFACTS_CACHE_DIR"]), store_id, open_root(str(store_dir)))
    old = sqlite3.connect(index)
    assert old.execute("SELECT value FROM meta WHERE key='format'").fetchone() == ("6",)
    assert "run_values" not in {r[0] for r in old.execute("SELECT name FROM sqlite_master")}
    old.close()

    store = artifacts.open_store(store_dir)
    c = store.index.connection
    assert store.index._format() == INDEX_FORMAT == 8
    assert store.index.quota(KEPT) == 1
    # the same schema text as a new index: snapshots of either fit the other
    fresh = Index(tmp_path / "fresh.sqlite", store_id=store_id, admins=["alice"])
    assert schema_digest(fresh.connection) == schema_digest(c)
    fresh.close()
    seqs = {r.config.get("lr"): r for r in store.runs()}
    # config rows: lr, optim (an object), optim.name, optim.beta, amp, note, layers; val_acc
    assert c.execute("SELECT COUNT(*) FROM run_values").fetchone()[0] == 5 + 4 + 5 + 2 + 4
    assert len(seqs) == 4

    def plan(where: str, order: list[str]) -> str:
        p = runplan.choose(c, parse(where), None, order_keys(RUNS, order), 50)
        return f"{p.kind}:{p.access.kind if p.access else ''}"

    assert plan("config.lr < 1e-2", ["-summary.val_acc"]) == "drive:values"
    best = store.runs(where="config.lr < 1e-2", order_by="-summary.val_acc")
    assert [r.config["lr"] for r in best] == [1e-4, 1e-3]  # "1e-3" is a string, not a number
    assert [r.config["lr"] for r in store.runs(where='config.optim.name = "adam"')] == [0.01, 1e-4]
    assert [r.config["lr"] for r in store.runs(where="config.amp = false")] == [1e-3]
    assert [r.config["lr"] for r in store.runs(where="has config.layers")] == ["1e-3"]
    assert [r.config["lr"] for r in store.runs(where="has config.optim and not has config.amp")] == [
        1e-4
    ]
    assert plan("has config.lr", ["-summary.val_acc"]) == "drive:values"
    order = ["-summary.val_acc"]
    page, after = select_runs(c, order_by=order, limit=2, plan="walk")
    assert [json.loads(r["summary"])["val_acc"] for r in page] == ["n/a", 0.7]  # text after numbers
    page, after = select_runs(c, order_by=order, limit=2, after=after, plan="walk")
    assert [json.loads(r["summary"])["val_acc"] for r in page] == [0.6, 0.5] and after is None
    # a run committed after the migration is in run_values like the migrated ones
    with store.start_run(project="p", group="wide", config={"lr": 5e-4}) as r:
        r.log({"val_acc": 0.9})
    rows, _ = select_runs(store.index.connection, where="config.lr < 1e-3", plan="drive")
    assert [json.loads(r["config"])["lr"] for r in rows] == [1e-4, 5e-4]
    store.close()
