"""Metric series blobs (`artifacts.series`): written by runs with many rows, read by `Run.series` and
the run page instead of the history, and never trusted: a missing, corrupt or hostile one is a
`StoreWarning` and the history is read. gc keeps them, verify checks them, copies carry them, and an
index of the format before them (main at a9d52d5) is migrated in place and its runs still chart."""

from __future__ import annotations

import importlib
import json
import os
import re
import sqlite3
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _fixtures import KEPT, old_index_store
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

import artifacts
import artifacts.series as series_mod
from artifacts.catalog.identity import index_path
from artifacts.catalog.index import INDEX_FORMAT, Index
from artifacts.catalog.snapshots import schema_digest
from artifacts.chunks import json_lines
from artifacts.series import FORMAT, MetricSeries, decode, encode, from_rows
from artifacts.ui import create_app, views, write_report
from artifacts.ui.charts import downsampled, run_charts
from storage import open_root

FIXTURE7 = Path(__file__).parent / "fixtures" / "index_format7"
run_mod = importlib.import_module("artifacts.run")  # `artifacts.run` is the wandb-style current run

metric_values = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.floats()
    | st.text(max_size=3)
)
rows_st = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "_step": st.integers(-3, 2**64) | st.booleans() | st.none(),
            "loss": metric_values,
            "acc": metric_values,
            "x y": metric_values,
        },
    ),
    max_size=40,
)


def _same(a: dict[str, MetricSeries], b: dict[str, MetricSeries]) -> bool:
    return a.keys() == b.keys() and all(a[k].equals(b[k]) for k in a)


@settings(max_examples=200, deadline=None)
@given(rows_st)
def test_series_blob_round_trips_exactly(rows: list[dict[str, Any]]) -> None:
    series = from_rows(rows)
    for s in series.values():
        assert s.steps.dtype == np.int64 and s.values.dtype == np.float64
        assert np.isfinite(s.values).all() and (np.diff(s.steps) >= 0).all()
    if series:
        assert _same(decode(encode(series, len(rows))), series)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_damaged_blob_is_refused_or_read_as_sound_series(data: st.DataObject) -> None:
    rows = [{"_step": i, "loss": 1 / (i + 1), "acc": i % 3} for i in range(20)]
    blob = bytearray(encode(from_rows(rows), len(rows)))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(blob)))
    try:
        got = decode(bytes(blob[:cut] if data.draw(st.booleans()) else blob))
    except ValueError:
        return
    for s in got.values():  # whatever passes the checks is what from_rows could have made
        assert np.isfinite(s.values).all() and (np.diff(s.steps) >= 0).all()


def _blob(header: Any, payload: bytes = b"", pad: bool = True) -> bytes:
    line = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        line += b" " * (-(len(line) + 1) % 8)
    return line + b"\n" + payload


def _arrays(steps: list[int], values: list[float]) -> bytes:
    return np.array(steps, "<i8").tobytes() + np.array(values, "<f8").tobytes()


def _h(metrics: Any, rows: Any = 2, fmt: Any = FORMAT) -> dict[str, Any]:
    return {"format": fmt, "metrics": metrics, "rows": rows}


HOSTILE = {
    "empty": b"",
    "no header line": b"x" * 100,
    "header not JSON": _blob("x")[:-1].replace(b'"x"', b"{no") + b"\n",
    "header not an object": _blob([1, 2]),
    "unknown format": _blob(_h([["a", 1]], 1, "artifacts.series/9"), _arrays([0], [1.0])),
    "unpadded header": _blob(_h([["a", 1]], 1), _arrays([0], [1.0]), pad=False) + b"",
    "rows not an int": _blob(_h([["a", 1]], "1"), _arrays([0], [1.0])),
    "metrics not a list": _blob(_h({"a": 1}, 1), _arrays([0], [1.0])),
    "metric not a pair": _blob(_h([["a", 1, 2]], 1), _arrays([0], [1.0])),
    "bookkeeping name": _blob(_h([["_step", 1]], 1), _arrays([0], [1.0])),
    "count past rows": _blob(_h([["a", 2]], 1), _arrays([0, 1], [1.0, 2.0])),
    "huge count": _blob(_h([["a", 2**60]], 2**62), _arrays([0], [1.0])),
    "zero count": _blob(_h([["a", 0]], 1)),
    "named twice": _blob(_h([["a", 1], ["a", 1]], 1), _arrays([0], [1.0]) * 2),
    "truncated": _blob(_h([["a", 2]], 2), _arrays([0, 1], [1.0, 2.0]))[:-3],
    "trailing bytes": _blob(_h([["a", 1]], 1), _arrays([0], [1.0]) + b"\0" * 8),
    "steps out of order": _blob(_h([["a", 2]]), _arrays([5, 1], [1.0, 2.0])),
    "negative step": _blob(_h([["a", 1]], 1), _arrays([-1], [1.0])),
    "NaN value": _blob(_h([["a", 1]], 1), _arrays([0], [float("nan")])),
    "deep header": b"[" * 100_000 + b"\n",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_series_blobs_are_refused_with_a_reason(name: str) -> None:
    with pytest.raises(ValueError):
        decode(HOSTILE[name])


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> artifacts.Store:
    monkeypatch.setattr(run_mod, "SERIES_ROWS", 50)  # a series blob from 50 rows on (1000 in use)
    views._series_cache.clear()
    return artifacts.open_store(str(tmp_path / "store"), user="alice")


def _log(store: artifacts.Store, steps: int = 120, **kw: Any) -> artifacts.Run:
    with store.start_run(project="p", job_type="train", **kw) as r:
        for i in range(steps):
            r.log({"loss": 1 / (i + 1), "acc": i % 7, "note": "x"})
            if i % 10 == 0:
                r.log({"val": i / 3}, commit=False)
    return store.run(r.id)


def _page_charts(store: artifacts.Store, run_id: str) -> dict[str, Any]:
    views._series_cache.clear()
    client = TestClient(create_app(store, sync_every=0), raise_server_exceptions=False)
    resp = client.get(f"/runs/{run_id}")
    assert resp.status_code == 200, resp.text[:300]
    m = re.search(r'id="chart-data">(.*?)</script>', resp.text, re.S)
    assert m is not None
    return json.loads(m.group(1))  # type: ignore[no-any-return]


def _history_charts(run: artifacts.Run) -> dict[str, Any]:
    return json.loads(json.dumps(run_charts(downsampled(from_rows(run.history())))))  # type: ignore[no-any-return]


def _finish_entry(store: artifacts.Store) -> dict[str, Any]:
    last = store.index.last_seq
    return json.loads(store.root.read(f"log/{last:020d}.json"))  # type: ignore[no-any-return]


def test_a_long_run_stores_its_series_and_the_page_charts_the_same_from_it(
    store: artifacts.Store,
) -> None:
    run = _log(store, steps=3000)
    entry = _finish_entry(store)
    assert entry["op"] == "run_finished" and entry["series"] == run._series_digest
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = run.series()
        assert _same(got, from_rows(run.history()))
        assert sorted(got) == ["acc", "loss", "val"] and len(got["val"]) == 300
        assert sorted(run.series(["val", "nope"])) == ["val"]
        charts = _page_charts(store, run.id)
    assert charts == _history_charts(run)
    assert [len(c["series"][0]["x"]) <= 802 for c in charts["charts"]] == [True] * 3
    report = Path(store.root.url.removeprefix("file://")).parent / "report.html"
    write_report(store, f"run/{run.id}", str(report))
    assert run._series_digest in report.read_text()  # with every other digest
    # a short run stores none, and its finish entry is the bytes earlier writers made
    short = _log(store, steps=10)
    assert short._series_digest is None and "series" not in _finish_entry(store)
    assert _page_charts(store, short.id) == _history_charts(short)


def _corrupt(store: artifacts.Store, digest: str, data: bytes | None) -> None:
    path = Path(store.root.url.removeprefix("file://")) / "blobs" / digest[:2] / digest[2:]
    os.chmod(path, 0o644)
    if data is None:
        path.unlink()
    else:
        path.write_bytes(data)


@pytest.mark.parametrize("damage", ["missing", "truncated", "flipped"])
def test_a_damaged_series_blob_falls_back_to_the_history_with_a_warning(
    store: artifacts.Store, damage: str
) -> None:
    run = _log(store)
    digest = run._series_digest
    assert digest is not None
    good = store.root.read(f"blobs/{digest[:2]}/{digest[2:]}")
    data = {"missing": None, "truncated": good[:-8], "flipped": good[:-1] + b"\x01"}[damage]
    _corrupt(store, digest, data)
    with pytest.warns(artifacts.StoreWarning, match=f"series blob {digest[:16]}"):
        assert _same(run.series(), from_rows(run.history()))
    with pytest.warns(artifacts.StoreWarning):
        assert _page_charts(store, run.id) == _history_charts(run)
    report = store.verify()
    assert [p for p in report.problems if f"series of run {run.id}" in p], report.problems


@pytest.mark.parametrize(
    "name", ["huge count", "steps out of order", "NaN value", "trailing bytes"]
)
def test_a_hostile_series_blob_with_a_right_digest_never_breaks_the_page(
    store: artifacts.Store, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # a writer that names a blob it made itself: the digest matches, the content is hostile
    monkeypatch.setattr(
        series_mod, "store_series", lambda blobs, rows: blobs.put_bytes(HOSTILE[name]).digest
    )
    run = _log(store)
    with pytest.warns(artifacts.StoreWarning, match="is unusable"):
        assert _same(run.series(), from_rows(run.history()))
    with pytest.warns(artifacts.StoreWarning):
        assert _page_charts(store, run.id) == _history_charts(run)


def test_a_series_blob_past_the_size_bound_is_not_read(
    store: artifacts.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _log(store)
    monkeypatch.setattr(series_mod, "MAX_SERIES_BYTES", 64)
    with pytest.warns(artifacts.StoreWarning, match="over the 64 a reader takes"):
        assert _same(run.series(), from_rows(run.history()))


def test_gc_keeps_verify_checks_and_copy_carries_the_series_blob(
    store: artifacts.Store, tmp_path: Path
) -> None:
    run = _log(store)
    digest = run._series_digest
    assert digest is not None
    assert store.index.all_referenced()[digest] == f"series of run {run.id}"
    report = store.gc(grace_period=0)
    assert digest not in report.deleted and store.blobs.exists(digest)
    assert store.verify().ok
    dst = artifacts.open_store(str(tmp_path / "dst"), user="alice")
    copied = store.copy_to(dst)
    assert copied.runs == 1
    there = dst.run(run.id)
    assert there._series_digest == digest and dst.blobs.exists(digest)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _same(there.series(), run.series())
    assert dst.verify().ok


def test_a_run_closed_by_someone_else_stores_series_too(store: artifacts.Store) -> None:
    run = store.start_run(project="p", flush_interval=3600)
    for i in range(80):
        run.log({"loss": float(i)})
    run.flush()
    closed = store.close_run(run.id, force=True)
    assert closed._series_digest is not None
    assert _same(closed.series(), from_rows(closed.history()))
    run._live.close()  # type: ignore[union-attr]


def test_format7_index_from_main_is_migrated_in_place_and_its_runs_chart_from_history(
    tmp_path: Path,
) -> None:
    store_dir, store_id = old_index_store(FIXTURE7, tmp_path)
    index = index_path(Path(os.environ["ARTIFACTS_CACHE_DIR"]), store_id, open_root(str(store_dir)))
    old = sqlite3.connect(index)
    assert old.execute("SELECT value FROM meta WHERE key='format'").fetchone() == ("7",)
    assert "series" not in {r[1] for r in old.execute("PRAGMA table_info(runs)")}
    old.close()

    store = artifacts.open_store(str(store_dir))
    assert store.index._format() == INDEX_FORMAT == 8
    assert store.index.quota(KEPT) == 1
    fresh = Index(tmp_path / "fresh.sqlite", store_id=store_id, admins=["alice"])
    assert schema_digest(fresh.connection) == schema_digest(store.index.connection)
    fresh.close()
    train, evaluate = store.runs()
    assert (train.job_type, train._series_digest, len(train.history())) == ("train", None, 1200)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sorted(train.series()) == ["acc", "loss"] and len(train.series()["loss"]) == 1200
        assert _page_charts(store, train.id) == _history_charts(train)
        assert _page_charts(store, evaluate.id) == _history_charts(evaluate)
    assert store.verify().ok
    # a run finished after the migration gets a series blob, and gc keeps it
    new = _log(store, steps=1000)
    assert (
        new._series_digest is not None and store.index.run(new.id)["series"] == new._series_digest
    )
    store.gc(grace_period=0)
    assert store.verify().ok
    store.close()


def test_json_lines_fast_path_answers_as_one_parse_per_line() -> None:
    rows = [{"_step": i, "loss": 0.5, "s": "a,b}{"} for i in range(5)]
    text = "\n".join(json.dumps(r) for r in rows) + "\n"
    assert json_lines(text) == rows and json_lines(text.encode()) == rows
    assert json_lines("\n\n") == [] and json_lines("") == []
    # lines that parse only when joined (a boundary in a string or an object), beside a line of two
    for bad in (
        '{"a":1},{"b":2}\n{"c":1,\n"d":2}',
        '{"a":1},{"b":2}\n{"c":{"d":1}\n,"e":2}',
        '{"x":"}\n"}\n{"a":1},{"b":2}',
        '{"a":1},{"b":2}\n{"c":[1\n,2]}',
    ):
        with pytest.raises(ValueError):
            json_lines(bad)

    flat = st.dictionaries(
        st.text(max_size=4),
        st.none() | st.integers() | st.floats() | st.text(max_size=4),
        max_size=4,
    )

    @settings(max_examples=200, deadline=None)
    @given(st.lists(flat | st.dictionaries(st.text(max_size=2), flat, max_size=2), max_size=6))
    def same_as_per_line(rows: list[dict[str, Any]]) -> None:
        text = "\n".join(json.dumps(r) for r in rows)
        want = [json.loads(line) for line in text.splitlines()]
        got = json_lines(text)
        assert json.dumps(got) == json.dumps(want)  # NaN != NaN: compare as text

    same_as_per_line()
