"""The typed side table of config/summary values and the planner that uses it: every access path
gives exactly the rows (and pages) of the JSON scan, the table stays what the runs' JSON says, and a
value SQLite's JSON would read otherwise keeps its key off the access paths."""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_query import Runs

from artifacts import runplan
from artifacts.errors import QueryError
from artifacts.query import And, Compare, Has, In, parse
from artifacts.querysql import RUNS, JsonKey, _resolve, compile_where, order_keys
from artifacts.runquery import select_runs
from artifacts.runvalues import OPAQUE, encode, fill, key_id, value_condition

_texts = st.sampled_from(["a", "b", "ab", "B", ""])
_scalars = st.one_of(
    st.integers(-3, 3), st.sampled_from([0.5, -1.25, 2.0, 1e300]), _texts, st.booleans()
)
_values = st.one_of(
    _scalars,
    st.none(),
    st.lists(st.integers(0, 2), max_size=2),
    st.dictionaries(st.sampled_from(["k", "j"]), _scalars, max_size=2),
)
_config = st.dictionaries(st.sampled_from(["x", "y", "n"]), _values, max_size=3)
_plain = st.one_of(st.integers(-3, 3), st.sampled_from([0.5, -1.25, 2.0]), _texts, st.none())
_summary = st.fixed_dictionaries({}, optional={"acc": _plain, "loss": _values})  # acc: orderable
_FIELDS = ["config.x", "config.y", "config.n", "config.n.k", "summary.acc", "summary.loss"]


@st.composite
def _leaf(draw: Any) -> str:
    f = draw(st.sampled_from([*_FIELDS, "group", "status", "job_type"]))
    fixed = "." not in f
    value = draw(_texts if fixed else _scalars)
    shape = draw(st.sampled_from(["cmp", "cmp", "in", "has", "like"]))
    if shape == "has":
        return f"has {f}"
    if shape == "like":
        return f'{f} like "{draw(st.sampled_from(["a%", "%b", "_"]))}"'
    if shape == "in":
        vals = draw(st.lists(_texts if fixed else _scalars, min_size=1, max_size=3))
        neg = draw(st.sampled_from(["", "", "not "]))
        return f"{f} {neg}in ({', '.join(map(json.dumps, vals))})"
    ops = ["=", "!="] if isinstance(value, bool) else ["=", "!=", "<", "<=", ">", ">="]
    return f"{f} {draw(st.sampled_from(ops))} {json.dumps(value)}"


_exprs = st.recursive(
    _leaf(),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["and", "and", "or"]), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        inner.map(lambda e: f"not {e}"),
    ),
    max_leaves=4,
)
_orders = st.lists(
    st.sampled_from(
        ["summary.acc", "-summary.acc", "-summary.acc", "config.x", "started_at", "-group"]
    ),
    max_size=2,
)
_runs = st.lists(
    st.fixed_dictionaries(
        {
            "config": _config,
            "summary": _summary,
            "group": st.sampled_from(["a", "b", None]),
            "status": st.sampled_from(["finished", "failed"]),
            "job_type": st.sampled_from(["train", "eval"]),
            "changed": st.one_of(st.none(), _config),  # a config replaced when the run finishes
        }
    ),
    min_size=1,
    max_size=10,
)


def _add(r: Runs, data: list[dict[str, Any]]) -> None:
    for i, d in enumerate(data):
        run_id = f"run{i:03d}"
        body = {"id": run_id, "project": "p", "env": {}, "config": d["config"]}
        body |= {k: d[k] for k in ("group", "job_type") if d[k] is not None}
        start = _dt.datetime(2026, 11, 1, tzinfo=_dt.timezone.utc) + _dt.timedelta(hours=i % 4)
        r._apply("run_started", "alice", start, run=body)
        fin: dict[str, Any] = {"run_id": run_id, "status": d["status"], "summary": d["summary"]}
        if d["changed"] is not None:
            fin["config"] = d["changed"]
        r._apply("run_finished", "alice", start + _dt.timedelta(hours=1), history=None, **fin)


def _pages(r: Runs, where: str, order: list[str], limit: int, plan: str) -> list[str]:
    out: list[str] = []
    after = None
    for _ in range(20):
        rows, after = select_runs(
            r.conn, where=where, order_by=order, limit=limit, after=after, plan=plan
        )
        out += [row["id"] for row in rows]
        if after is None:
            return out
    raise AssertionError("pages did not end")


def _table(r: Runs) -> set[tuple[Any, ...]]:
    return {
        (k["source"], k["path"], repr(v), seq)
        for k, v, seq in [
            (dict(zip(("source", "path"), row[:2], strict=True)), row[2], row[3])
            for row in r.conn.execute(
                "SELECT k.source, k.path, v.value, v.seq FROM run_values v"
                " JOIN run_value_keys k ON k.id = v.key"
            )
        ]
    }


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=_runs, exprs=st.lists(_exprs, min_size=1, max_size=4), order=_orders, limit=st.integers(1, 4))
def test_every_plan_gives_the_rows_and_pages_of_the_json_scan(
    tmp_path_factory: Any, data: list[dict[str, Any]], exprs: list[str], order: list[str], limit: int
) -> None:
    r = Runs(tmp_path_factory.mktemp("v") / "index.sqlite")
    _add(r, data)
    # the table holds what the runs' JSON says now (configs replaced at finish included)
    kept = _table(r)
    r.conn.execute("BEGIN")
    r.conn.execute("DELETE FROM run_values")
    fill(r.conn)
    assert _table(r) == kept
    r.conn.execute("ROLLBACK")
    for e in exprs:
        try:
            want = [row["id"] for row in select_runs(r.conn, where=e, plan="scan")[0]]
        except QueryError as err:  # a literal whose type the key never had
            assert "values in every run that has it" in str(err), (e, str(err))
            continue
        for plan in runplan.PLANS:
            got = [row["id"] for row in select_runs(r.conn, where=e, plan=plan)[0]]
            assert got == want, (e, plan)
        paged = _pages(r, e, order, limit, "scan")
        assert sorted(paged) == sorted(want)
        for plan in runplan.PLANS:
            assert _pages(r, e, order, limit, plan) == paged, (e, order, plan)
        # each top-level condition the side table answers keeps exactly the runs its JSON keeps
        tree = parse(e)
        for n in tree.operands if isinstance(tree, And) else (tree,):
            if not isinstance(n, Compare | In | Has) or n.field.name not in RUNS.json:
                continue
            cond = value_condition(n, "value")
            if cond is None:
                continue
            target = _resolve(RUNS, n.field, e)
            assert isinstance(target, JsonKey)
            kid = key_id(r.conn, target.source, target.path)
            by_values = {
                s
                for (s,) in r.conn.execute(
                    f"SELECT seq FROM run_values WHERE key = ? AND {cond[0]}", (kid, *cond[1])
                )
            }
            c = compile_where(RUNS, n)
            by_json = {s for (s,) in r.conn.execute(f"SELECT seq FROM runs WHERE {c.sql}", c.params)}
            assert by_values == by_json, (e, n)
    r.index.close()


@pytest.fixture
def runs(tmp_path: Path) -> Runs:
    return Runs(tmp_path / "index.sqlite")


def _bulk(r: Runs, n: int) -> None:
    for i in range(n):
        r.add(
            f"run{i:04d}",
            start=i / 60,
            group="rare" if i % 50 == 0 else "common",
            job_type=("train", "eval")[i % 2],
            config={"lr": 10.0 ** -(i % 5), "seed": i, "opt": ("adam", "sgd")[i % 3 == 0]},
            summary={"acc": (i * 37 % 101) / 100, "flag": i % 2 == 0},
        )


def test_the_planner_picks_the_index_that_fits(runs: Runs, monkeypatch: pytest.MonkeyPatch) -> None:
    _bulk(runs, 200)
    monkeypatch.setattr(runplan, "CAP", 20)

    def plan(where: str | None, order: list[str], limit: int | None = 5) -> str:
        tree = parse(where) if where else None
        keys = order_keys(RUNS, order)
        p = runplan.choose(runs.conn, tree, None, keys, limit)
        return p.kind + ("" if p.access is None else f":{p.access.kind}")

    assert plan("config.seed = 7 and config.lr < 1", ["-summary.acc"]) == "drive:values"
    assert plan('group = "rare" and config.lr < 1', ["-summary.acc"]) == "drive:index"
    assert plan("config.lr < 1 and summary.acc > 0.1", ["-summary.acc"]) == "walk:values"
    assert plan('job_type = "eval" and config.opt = "adam"', ["-started_at"]) == "walk:index"
    assert plan("config.lr < 1", ["-summary.flag"]) == "scan"  # booleans order as the JSON says
    assert plan("config.lr < 1", ["-summary.acc"], limit=None) == "scan"
    assert plan("config.nothere = 1", []) == "drive:values"  # no run has it: nothing to read
    for where, order in [
        ("config.seed = 7 and config.lr < 1", ["-summary.acc"]),
        ("config.lr < 1 and summary.acc > 0.1", ["-summary.acc", "config.seed"]),
        ('job_type = "eval" and config.opt = "adam"', ["-started_at"]),
        ("config.lr <= 0.01", ["summary.acc"]),
    ]:
        want = _pages(runs, where, order, 7, "scan")
        assert _pages(runs, where, order, 7, "auto") == want
        assert len(want) > 0


def test_a_value_json_reads_otherwise_keeps_its_key_off_the_access_paths(runs: Runs) -> None:
    for odd in (float("nan"), float("inf"), -(10**30), "a\x00b", "\ud800"):
        assert encode(odd) == OPAQUE, odd
    assert [encode(v) for v in (True, False, {}, [], 2**63 - 1, "x")] == [
        b"\x01", b"\x00", b"", b"", 2**63 - 1, "x"
    ]
    runs.add("r1", config={"x": 1, "y": 2, "z": "a"}, summary={"acc": 0.5})
    runs.add("r2", config={"x": 2, "y": 3, "z": "b"}, summary={"acc": 0.7})
    c = runs.conn
    for key in ("x", "z"):
        assert runplan._usable_key(c, JsonKey("runs.config", f'$."{key}"', "config"))
    runs.add("r3", config={"x": 10**30, "y": 4, "z": "a\x00b"})  # JSON reads 1e30 and "a"
    order = order_keys(RUNS, ["-config.x"])
    for key in ("x", "z"):
        assert runplan._usable_key(c, JsonKey("runs.config", f'$."{key}"', "config")) is None
        assert runplan.choose(c, parse(f"config.{key} > 0"), None, order, 5).kind == "scan"
    assert runs.ids("config.x > 1") == ["r2", "r3"]
    assert runs.ids('config.z = "a"') == ["r1", "r3"]
    assert runs.ids("config.y > 2", order_by=["-config.x"], limit=5) == ["r3", "r2"]
