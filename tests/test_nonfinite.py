"""NaN and infinities in configs, summaries and metadata: kept exactly, and never break a query.

SQLite's JSON functions (before 3.42) refuse a document holding a bare ``NaN``: one such run used to
make every query over configs fail with "malformed JSON", and every snapshot of its index be refused.
"""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import artifacts
from artifacts.catalog import jsoncol
from tests.conftest import Backend
from tests.test_scale import cold, small


def _store(b: Backend) -> artifacts.Store:
    return artifacts.open_store(b.url, storage_options=b.storage_options)


def _nan_run(store: artifacts.Store, lr: float = math.nan) -> str:
    with store.start_run(project="p", config={"lr": lr, "b": 1, "deep": {"x": [math.inf]}}) as run:
        run.log({"loss": 0.5})
    store.log_artifact(
        artifacts.Artifact("d", "dataset", metadata={"x": -math.inf}).add_bytes("a", b"1")
    )
    return run.id


def _answers(store: artifacts.Store) -> dict[str, object]:
    return {
        q: sorted(r.id for r in store.runs(where=q))
        for q in ("config.b = 1", "config.lr > 0", "config.lr < 0", "summary.loss < 1")
    } | {"versions": [v.ref for v in store.versions("d", where="metadata.x < 0")]}


def test_non_finite_values_round_trip_and_queries_still_answer(backend: Backend) -> None:
    store = _store(backend)
    nan_id = _nan_run(store)
    with store.start_run(project="p", config={"lr": 0.1, "b": 2}) as ok:
        ok.log({"loss": 2.0})
    run = store.run(nan_id)
    assert math.isnan(run.config["lr"]) and run.config["deep"] == {"x": [math.inf]}
    assert store.artifact("d:v0").metadata["x"] == -math.inf
    got = _answers(store)
    # NaN compares as nothing, as in Python; the other keys of that run are still found
    assert got["config.b = 1"] == [nan_id]
    assert got["config.lr > 0"] == [ok.id] and got["config.lr < 0"] == []
    assert got["summary.loss < 1"] == [nan_id]
    assert got["versions"] == []  # -inf is no number to a query either
    groups = store.run_groups(by="project", metrics=["summary.loss"])
    assert groups[0].count == 2


def test_an_index_written_before_the_rule_is_repaired_once_on_open(
    local_backend: Backend, tmp_path: Path
) -> None:
    """Rows as the earlier writer left them (Python's bare NaN), and no mark: the next open rewrites
    them, and the answers are those of an index built by replay."""
    store = _store(local_backend)
    nan_id = _nan_run(store)
    path = store.catalog.index.path
    expected = _answers(store)
    store.close()
    conn = sqlite3.connect(path, isolation_level=None)
    for table, key, columns in jsoncol.COLUMNS:
        for col in columns:
            for k, text in conn.execute(f'SELECT {key}, "{col}" FROM "{table}"').fetchall():
                if text:
                    old = json.dumps(jsoncol.loads(text), sort_keys=True, separators=(",", ":"))
                    conn.execute(f'UPDATE "{table}" SET "{col}"=? WHERE {key}=?', (old, k))
    conn.execute("DELETE FROM meta WHERE key=?", (jsoncol.MARK,))
    assert conn.execute("SELECT count(*) FROM runs WHERE NOT json_valid(config)").fetchone()[0] == 1
    conn.close()

    again = _store(local_backend)
    assert _answers(again) == expected
    assert math.isnan(again.run(nan_id).config["lr"])
    c = sqlite3.connect(path)
    assert c.execute("SELECT count(*) FROM runs WHERE NOT json_valid(config)").fetchone()[0] == 0
    assert c.execute("SELECT value FROM meta WHERE key=?", (jsoncol.MARK,)).fetchone() == ("1",)
    c.close()


def test_snapshots_of_an_index_with_nan_serve_a_cold_open(
    shared_backend: Backend, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    small(monkeypatch, pack=3, every=7)
    store = _store(shared_backend)
    for i in range(4):
        _nan_run(store, lr=[math.nan, math.inf, -math.inf, 0.5][i])
    store.reader.background.wait(30)
    expected = _answers(store)
    store.close()
    with cold(shared_backend, monkeypatch, tmp_path) as (fresh, warnings):
        assert warnings == []  # the snapshot was taken, not refused as malformed
        assert _answers(fresh) == expected


_floats = st.one_of(st.floats(), st.integers(), st.text(max_size=5), st.none(), st.booleans())
_json = st.recursive(
    _floats,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(_json)
def test_the_column_codec_gives_back_what_it_was_given(obj: object) -> None:
    text = jsoncol.dumps(obj)
    conn = sqlite3.connect(":memory:")
    assert conn.execute("SELECT json_valid(?)", (text,)).fetchone() == (1,)
    back = jsoncol.loads(text)
    # NaN != NaN: compare through Python's own JSON text, which writes NaN as NaN
    assert json.dumps(back, sort_keys=True) == json.dumps(obj, sort_keys=True)


def test_plain_json_is_written_as_before() -> None:
    obj = {"b": [1, 2.5, "x"], "a": {"$numberDouble": 3}}
    assert jsoncol.dumps(obj) == json.dumps(obj, sort_keys=True, separators=(",", ":"))
    assert jsoncol.loads(jsoncol.dumps(obj)) == obj  # a look-alike that is no tag stays a dict
