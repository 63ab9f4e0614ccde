"""The query language and engine: parsing, typing, SQL results against a Python reference, paging,
groups, compute hours, run-id prefixes, and bad input (one-line errors, nothing changed)."""

from __future__ import annotations

import datetime as _dt
import fnmatch
import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import artifacts
from artifacts.catalog.index import Index
from artifacts.catalog.log import RawEntry
from artifacts.errors import AmbiguousError, NotFoundError, QueryError
from artifacts.manifest import canonical_json
from artifacts.query import And, Compare, Has, In, Match, Node, Not, Or, parse
from artifacts.querysql import parse_date
from artifacts.runquery import compute, resolve_run_id, run_groups, select_runs

T0 = _dt.datetime(2026, 11, 1, tzinfo=_dt.timezone.utc)


class Runs:
    """Runs committed through the real rules (Index.apply of log entries) with chosen timestamps."""

    def __init__(self, path: Path) -> None:
        self.index = Index(path, store_id="test", admins=["alice"])
        self.seq = 0

    @property
    def conn(self) -> Any:
        return self.index._conn

    def _apply(self, op: str, user: str, ts: _dt.datetime, **body: Any) -> None:
        self.seq += 1
        entry = {
            "format": 1,
            "seq": self.seq,
            "op": op,
            "user": user,
            "ts": ts.isoformat(timespec="microseconds"),
            **body,
        }
        assert self.index.apply([RawEntry(self.seq, canonical_json(entry))]) == []

    def add(
        self,
        run_id: str,
        *,
        user: str = "alice",
        start: float = 0,
        hours: float | None = 1.0,
        status: str = "finished",
        summary: dict[str, Any] | None = None,
        env: dict[str, Any] | None = None,
        **run: Any,
    ) -> None:
        started = T0 + _dt.timedelta(hours=start)
        body = {"id": run_id, "project": run.pop("project", "p"), "env": env or {}, **run}
        self._apply("run_started", user, started, run=body)
        if hours is not None:
            self._apply(
                "run_finished",
                user,
                started + _dt.timedelta(hours=hours),
                run_id=run_id,
                status=status,
                summary=summary or {},
                history=None,
            )

    def ids(self, where: str | None = None, **kw: Any) -> list[str]:
        rows, _ = select_runs(self.conn, where=where, **kw)
        return [r["id"] for r in rows]


@pytest.fixture
def runs(tmp_path: Path) -> Runs:
    return Runs(tmp_path / "index.sqlite")


# -- parsing and one-line errors -------------------------------------------------------------------------
def test_parse_precedence_and_shapes() -> None:
    t = parse('not a = "x" or b = 1 and has c.d')
    assert isinstance(t, Or) and isinstance(t.operands[0], Not) and isinstance(t.operands[1], And)
    t = parse('(a = 1 or b = 2) and c not in (1, "two", true) and d not like "x%"')
    assert isinstance(t, And) and isinstance(t.operands[0], Or)
    assert isinstance(t.operands[1], In) and t.operands[1].negated
    assert [v.value for v in t.operands[1].values] == [1, "two", True]
    assert isinstance(t.operands[2], Match) and t.operands[2].negated
    cmp = parse('config."optimizer.lr" >= -1.5e-3')
    assert (
        isinstance(cmp, Compare)
        and cmp.field.path == ("optimizer.lr",)
        and cmp.value.value == -1.5e-3
    )
    assert isinstance(parse("has summary.0"), Has)


@pytest.mark.parametrize(
    ("query", "column", "words"),
    [
        ('colour = "red"', 1, "unknown field 'colour'"),
        ("group = 3", 9, "group is text"),
        ('(group = "a"', 1, "unbalanced '('"),
        ('group = "a")', 12, "unbalanced ')'"),
        ("'; DROP TABLE runs; --", 1, "unterminated string"),
        ("group = 'x'; DROP TABLE runs; --", 12, "unexpected character"),
        ("config.lr <", 12, "expected a value"),
        ("config.lr < lr", 13, "quote strings"),
        ('started_at > "yesterday"', 14, "is not a date"),
        ("duration > true", 12, "is a number"),
        ("tags > 'a'", 8, "set of strings"),
        ("summary = 1", 1, "summary needs a key"),
        ("metrics.acc > 1", 1, "use config.<key> or summary.<key>"),
        ("summary.acc = null", 15, "has FIELD"),
        ("group == ", 10, "expected a value"),
        ("()", 2, "expected a field name"),
        ("summary.acc > 1 summary.b < 2", 17, "join conditions"),
    ],
)
def test_bad_queries_are_one_line_with_a_caret(
    runs: Runs, query: str, column: int, words: str
) -> None:
    runs.add("r1", summary={"acc": 0.5})
    with pytest.raises(QueryError) as e:
        runs.ids(query)
    msg = str(e.value)
    assert "\n" not in msg and words in msg, msg
    assert msg.startswith(f"invalid query at column {column}:"), msg
    assert e.value.pos == column - 1
    assert msg.endswith(query[: column - 1] + "^" + query[column - 1 :])
    assert isinstance(e.value, artifacts.ArtifactsError) and isinstance(e.value, ValueError)


def test_type_mismatch_against_the_types_a_key_has(runs: Runs) -> None:
    runs.add("r1", summary={"acc": 0.5, "note": "ok", "best": True}, config={"lr": 1e-3})
    for q, words in [
        ('summary.acc > "x"', "summary.acc holds number values in every run"),
        ("summary.note < 3", "summary.note holds text values"),
        ("summary.best > 1", "summary.best holds boolean values"),
        ('summary.acc like "0.%"', "not text"),
        ('config.lr in (0.1, "fast")', "not text"),
    ]:
        with pytest.raises(QueryError, match=re.escape(words)):
            runs.ids(q)
    assert runs.ids('summary.unseen > "x"') == []  # a key no run has: nothing to check against


def test_huge_in_lists_and_deep_nesting_are_refused(runs: Runs) -> None:
    runs.add("r1", summary={"acc": 0.5})
    with pytest.raises(QueryError, match="more than 1000 values"):
        runs.ids("summary.acc in (" + ",".join(map(str, range(1500))) + ")")
    with pytest.raises(QueryError, match="nested more than"):
        runs.ids("(" * 100 + "summary.acc > 0" + ")" * 100)
    with pytest.raises(QueryError, match="longer than"):
        runs.ids("summary.acc > 0 or " * 1000 + "summary.acc > 0")
    assert runs.ids("summary.acc in (" + ",".join(map(str, range(999))) + ")") == []


def test_injection_attempts_are_values_not_sql(runs: Runs) -> None:
    evil = "'; DROP TABLE runs; --"
    runs.add("r1", name=evil, config={"x'); DROP TABLE runs; --": 1}, summary={"acc": 0.5})
    runs.add("r2", name="plain")
    assert runs.ids(f'name = "{evil}"') == ["r1"]
    assert runs.ids('config."x\'); DROP TABLE runs; --" = 1') == ["r1"]
    assert runs.ids(f'name like "{evil}%" or group in ("{evil}")') == ["r1"]
    with pytest.raises(QueryError):
        runs.ids(f"{evil} = 1")
    with pytest.raises(QueryError):
        select_runs(runs.conn, order_by=[f"summary.acc; {evil}"])
    with pytest.raises(QueryError, match="invalid key"):
        runs.ids('config."a\\"b" = 1')
    assert runs.ids() == ["r1", "r2"]
    assert {r[0] for r in runs.conn.execute("SELECT name FROM sqlite_master")} >= {
        "runs",
        "versions",
    }


# -- typed semantics ---------------------------------------------------------------------------------------
def test_numbers_strings_dates_tags_and_durations(runs: Runs) -> None:
    runs.add(
        "r1",
        config={"lr": 1e-4, "opt": "adam"},
        summary={"acc": 0.9},
        group="baseline",
        tags=["paper", "gru"],
        hours=2,
    )
    runs.add(
        "r2",
        config={"lr": "0.0001", "opt": "sgd"},
        summary={"acc": 0.7},
        group="baseline",
        start=24,
        hours=0.5,
    )
    runs.add(
        "r3",
        config={"lr": 1e-2, "opt": "adam", "layers": {"n": 2}, "acc": True},
        job_type="eval",
        start=48,
        hours=None,
    )
    assert runs.ids("config.lr < 1e-3") == ["r1"]  # "0.0001" is a string: not a number below 1e-3
    assert runs.ids('config.lr = "0.0001"') == ["r2"]
    assert runs.ids("not config.lr < 1e-3") == ["r2", "r3"]
    assert runs.ids("summary.acc >= 0.7") == ["r1", "r2"]
    assert runs.ids("config.acc = true") == ["r3"]
    assert runs.ids("config.acc != false and not config.lr > 0.1") == ["r3"]
    assert runs.ids("config.layers.n = 2 and job_type = 'eval'") == ["r3"]
    assert runs.ids('started_at >= "2026-11-02"') == ["r2", "r3"]
    assert runs.ids('started_at < "2026-11-02T02:00:00+01:00"') == ["r1", "r2"]  # offsets honoured
    assert runs.ids('finished_at > "2026-11-01T01:00Z"') == ["r1", "r2"]
    assert runs.ids("duration > 3600") == ["r1"]
    assert runs.ids('duration < "1h"') == ["r2"]
    assert runs.ids('tags = "paper"') == ["r1"]
    assert runs.ids('tags != "paper"') == ["r2", "r3"]
    assert runs.ids('tags in ("x", "gru") and has tags') == ["r1"]
    assert runs.ids('tags glob "pap*"') == ["r1"]
    assert runs.ids("has group") == ["r1", "r2"]
    assert runs.ids("not has finished_at") == ["r3"]
    assert runs.ids('group like "BASE%" and config.opt glob "s?d"') == ["r2"]
    assert runs.ids('status in ("running", "failed")') == ["r3"]
    assert runs.ids('config.opt not in ("adam")') == ["r2"]


def test_versions_where(backend: Any) -> None:
    store = artifacts.open_store(backend.url, storage_options=backend.storage_options)
    for i in range(3):
        a = artifacts.Artifact(
            "data", type="dataset", metadata={"rows": 10 * i, "split": "train" if i else "test"}
        )
        a.add_bytes("x.txt", b"x" * (i + 1))
        store.log_artifact(a, aliases=["best"] if i == 1 else [])
    assert [v.version for v in store.versions("data", where="metadata.rows >= 10")] == [1, 2]
    assert [v.version for v in store.versions("data", where='aliases = "best" or size = 3')] == [
        1,
        2,
    ]
    assert [v.ref for v in store.versions("data", where='metadata.split = "test"')] == ["data:v0"]
    with pytest.raises(QueryError, match="unknown field 'summary'"):
        store.versions("data", where="summary.acc > 1")


# -- the reference evaluator (Hypothesis) ------------------------------------------------------------
MISSING = object()
_texts = st.sampled_from(["a", "b", "ab", "B", "ba", ""])
_values = st.one_of(st.integers(-3, 3), st.sampled_from([0.5, -1.25, 2.0]), _texts, st.booleans())


def _like(pattern: str, value: str) -> bool:
    rx = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, value, re.S | re.I) is not None


def _matches(kind: str, pattern: str, value: str) -> bool:
    return _like(pattern, value) if kind == "like" else fnmatch.fnmatchcase(value, pattern)


def _get(run: dict[str, Any], field: Any) -> Any:
    if field.name in ("config", "summary"):
        v: Any = run[field.name]
        for k in field.path:
            if not isinstance(v, dict) or k not in v:
                return MISSING
            v = v[k]
        return v
    return run[{"group": "group"}.get(field.name, field.name)]


def _kind(v: Any) -> str:
    return (
        "boolean"
        if isinstance(v, bool)
        else "number"
        if isinstance(v, int | float)
        else "text"
        if isinstance(v, str)
        else "other"
    )


def _cmp(a: Any, op: str, b: Any) -> bool:
    return {"=": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def evaluate(n: Node, run: dict[str, Any]) -> bool:
    if isinstance(n, And):
        return all(evaluate(o, run) for o in n.operands)
    if isinstance(n, Or):
        return any(evaluate(o, run) for o in n.operands)
    if isinstance(n, Not):
        return not evaluate(n.operand, run)
    v = _get(run, n.field)
    dynamic = n.field.name in ("config", "summary")
    if isinstance(n, Has):
        return bool(v) if n.field.name == "tags" else v is not MISSING and v is not None
    if n.field.name == "tags":
        if isinstance(n, Compare):
            return (n.value.value in v) == (n.op == "=")
        if isinstance(n, In):
            return any(lit.value in v for lit in n.values) != n.negated
        return any(_matches(n.kind, n.pattern.value, t) for t in v) != n.negated
    if isinstance(n, Match):
        ok = isinstance(v, str) and _matches(n.kind, n.pattern.value, v)
        return ok != n.negated
    if isinstance(n, In):
        hit = any(
            v is not MISSING and _kind(v) == _kind(lit.value) and v == lit.value for lit in n.values
        )
        return hit != n.negated
    lit = n.value.value
    if not dynamic:
        if n.field.name in ("started_at", "finished_at"):
            lit = parse_date(lit)
        return v is not None and _cmp(v, n.op, lit)
    if v is MISSING or _kind(v) != _kind(lit):
        return False
    return _cmp(v, n.op, lit)


_FIELDS = ["config.x", "config.y", "summary.acc", "config.n.k", "group", "name", "status", "tags"]


@st.composite
def _leaf(draw: Any) -> str:
    f = draw(st.sampled_from(_FIELDS))
    fixed = f in ("group", "name", "status", "tags")
    lit = json.dumps
    value = draw(_texts if fixed else _values)
    shape = draw(st.sampled_from(["cmp", "in", "like", "glob", "has"]))
    if shape == "has":
        return f"has {f}"
    if shape == "in":
        vals = draw(st.lists(_texts if fixed else _values, min_size=1, max_size=3))
        return f"{f} {draw(st.sampled_from(['', 'not ']))}in ({', '.join(map(lit, vals))})"
    if shape in ("like", "glob"):
        pat = draw(
            st.sampled_from(
                ["a%", "%b", "_", "%", "A%"] if shape == "like" else ["a*", "*b", "?", "*", "[ab]"]
            )
        )
        return f"{f} {shape} {json.dumps(pat)}"
    ops = (
        ["=", "!="]
        if (f == "tags" or isinstance(value, bool))
        else ["=", "!=", "<", "<=", ">", ">="]
    )
    return f"{f} {draw(st.sampled_from(ops))} {lit(value)}"


_exprs = st.recursive(
    _leaf(),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        inner.map(lambda e: f"not {e}"),
    ),
    max_leaves=6,
)

_json_obj = st.dictionaries(st.sampled_from(["x", "y"]), _values, max_size=2)
_run_data = st.fixed_dictionaries(
    {
        "config": st.one_of(_json_obj, _json_obj.map(lambda d: {**d, "n": {"k": 1}})),
        "summary": st.dictionaries(st.just("acc"), _values, max_size=1),
        "group": st.one_of(st.none(), _texts.filter(bool)),
        "name": st.one_of(st.none(), _texts.filter(bool)),
        "tags": st.lists(_texts.filter(bool), max_size=2, unique=True),
        "status": st.sampled_from(["finished", "failed"]),
    }
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.lists(_run_data, min_size=1, max_size=8), exprs=st.lists(_exprs, min_size=1, max_size=5)
)
def test_sql_agrees_with_a_python_reference(
    tmp_path_factory: Any, data: list[dict[str, Any]], exprs: list[str]
) -> None:
    r = Runs(tmp_path_factory.mktemp("h") / "index.sqlite")
    for i, d in enumerate(data):
        run = {k: v for k, v in d.items() if k not in ("summary", "status") and v is not None}
        run["tags"] = d["tags"]
        r.add(f"run{i:03d}", summary=d["summary"], status=d["status"], start=i, **run)
    refs = []
    for i, d in enumerate(data):
        refs.append({**d, "id": f"run{i:03d}", "config": d["config"]})
    seen: dict[str, set[str]] = {}
    for d in refs:
        for src in ("config", "summary"):
            for k, v in d[src].items():
                if not isinstance(v, dict):
                    seen.setdefault(f"{src}.{k}", set()).add(_kind(v))
                else:
                    seen.setdefault(f"{src}.{k}.k", set()).add("number")
    for e in exprs:
        try:
            got = r.ids(e)
        except QueryError as err:  # only a literal whose type the key never had
            assert "values in every run that has it" in str(err), (e, str(err))
            continue
        want = [d["id"] for d in refs if evaluate(parse(e), d)]
        assert got == want, e
    r.index.close()


# -- ordering and keyset pagination --------------------------------------------------------------------
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.lists(_run_data, min_size=0, max_size=12),
    order=st.lists(
        st.sampled_from(
            [
                "summary.acc",
                "-summary.acc",
                "group",
                "-group",
                "config.x",
                "-name",
                "started_at",
                "-duration",
            ]
        ),
        max_size=3,
    ),
    limit=st.integers(1, 5),
)
def test_pages_cover_the_result_exactly_once(
    tmp_path_factory: Any, data: list[dict[str, Any]], order: list[str], limit: int
) -> None:
    r = Runs(tmp_path_factory.mktemp("p") / "index.sqlite")
    for i, d in enumerate(data):
        run = {k: v for k, v in d.items() if k in ("config", "group", "name") and v is not None}
        r.add(f"run{i:03d}", summary=d["summary"], start=i % 3, hours=(i * 7) % 4 + 1, **run)
    where = 'status != "zz"'
    full = r.ids(where, order_by=order)
    pages: list[str] = []
    after = None
    for _ in range(len(full) + 2):
        rows, after = select_runs(r.conn, where=where, order_by=order, limit=limit, after=after)
        pages += [row["id"] for row in rows]
        if after is None:
            break
    assert pages == full
    assert sorted(full) == r.ids(where)
    if order[:1] == ["-summary.acc"]:  # numbers descending, then text, then missing (nulls last)
        accs = [d["summary"].get("acc") for d in data]
        got = [accs[int(i[3:])] for i in full]
        nums = [a for a in got if isinstance(a, int | float)]
        assert got[len(got) - got.count(None) :] == [None] * got.count(None)
        assert nums == sorted(nums, reverse=True)
    r.index.close()


def test_bad_cursor_and_order(runs: Runs) -> None:
    runs.add("r1", summary={"acc": 1})
    runs.add("r2", summary={"acc": 2})
    rows, cur = select_runs(runs.conn, order_by=["-summary.acc"], limit=1)
    assert [r["id"] for r in rows] == ["r2"] and cur
    with pytest.raises(QueryError, match="made for order_by"):
        select_runs(runs.conn, order_by=["summary.acc"], after=cur)
    for bad in ("garbage", cur[:-3] + "zzz", "e30"):
        with pytest.raises(QueryError, match="invalid cursor"):
            select_runs(runs.conn, order_by=["-summary.acc"], after=bad)
    with pytest.raises(QueryError, match="is a set"):
        select_runs(runs.conn, order_by=["tags"])
    with pytest.raises(QueryError, match="limit"):
        select_runs(runs.conn, limit=-1)


# -- groups, compute, prefixes ---------------------------------------------------------------------------
def test_run_groups_count_and_aggregate(runs: Runs) -> None:
    runs.add("r1", group="base", job_type="train", summary={"acc": 0.5, "loss": 2})
    runs.add("r2", group="base", job_type="train", summary={"acc": 0.7, "loss": "nan?"})
    runs.add("r3", group="base", job_type="eval", summary={"acc": True})
    runs.add("r4", job_type="train", summary={"acc": 0.1}, config={"lr": 0.1})
    groups = run_groups(
        runs.conn, by=("group", "job_type"), metrics=["summary.acc", "loss", "duration"]
    )
    got = {(g.key["group"], g.key["job_type"]): g for g in groups}
    assert list(got) == [(None, "train"), ("base", "eval"), ("base", "train")]
    bt = got[("base", "train")]
    assert bt.count == 2 and bt.metrics["summary.acc"].count == 2
    assert bt.metrics["summary.acc"].min == 0.5 and bt.metrics["summary.acc"].max == 0.7
    assert bt.metrics["summary.acc"].mean == pytest.approx(0.6)
    assert bt.metrics["loss"].count == 1 and bt.metrics["loss"].mean == 2  # a string is no number
    assert got[("base", "eval")].metrics["summary.acc"].count == 0  # nor is a boolean
    assert bt.metrics["duration"].mean == pytest.approx(3600)
    one = run_groups(runs.conn, by="config.lr", where="job_type = 'train'")
    assert [(g.key["config.lr"], g.count) for g in one] == [(None, 2), (0.1, 1)]
    assert json.loads(bt.to_json())["metrics"]["summary.acc"]["max"] == 0.7
    with pytest.raises(QueryError, match="is a set"):
        run_groups(runs.conn, by="tags")


def test_compute_hours_window_gpus_and_open_runs(runs: Runs) -> None:
    two_gpus = {"cuda": {"count": 2, "names": ["NVIDIA H200", "NVIDIA H200"]}}
    runs.add("r1", user="alice", start=0, hours=2, env=two_gpus)
    runs.add("r2", user="alice", start=10, hours=1)
    runs.add("r3", user="bob", start=5, hours=None, env=two_gpus)  # still open
    now = T0 + _dt.timedelta(hours=8)
    rows = {u.key: u for u in compute(runs.conn, by="user", now=now)}
    assert rows["alice"].runs == 2 and rows["alice"].hours == pytest.approx(3)
    assert rows["alice"].gpu_hours == pytest.approx(4) and rows["alice"].gpu_runs == 1
    assert not rows["alice"].estimated
    assert rows["bob"].hours == pytest.approx(3) and rows["bob"].gpu_hours == pytest.approx(6)
    assert rows["bob"].estimated and rows["bob"].open_runs == 1
    win = {
        u.key: u
        for u in compute(
            runs.conn,
            by="user",
            since=T0 + _dt.timedelta(hours=1),
            until="2026-11-01T10:30",
            now=now,
        )
    }
    assert win["alice"].hours == pytest.approx(1.5)  # 1h of r1 and 0.5h of r2
    assert win["bob"].hours == pytest.approx(3)
    assert compute(runs.conn, by="project", since="2026-11-02", now=now) == []
    with pytest.raises(QueryError, match="since must be a date"):
        compute(runs.conn, since="last tuesday")


def test_run_id_prefixes(runs: Runs) -> None:
    runs.add("abcd1234", job_type="train")
    runs.add("abcd5678", name="second")
    runs.add("ffff0000")
    assert resolve_run_id(runs.conn, "ffff") == "ffff0000"
    assert resolve_run_id(runs.conn, "abcd1") == "abcd1234"
    assert runs.index.run("abcd5")["id"] == "abcd5678"
    with pytest.raises(AmbiguousError) as e:
        resolve_run_id(runs.conn, "abcd")
    assert "abcd1234 (train, p)" in str(e.value) and "abcd5678 (run second, p)" in str(e.value)
    with pytest.raises(NotFoundError, match="at least 4"):
        resolve_run_id(runs.conn, "ff")
    with pytest.raises(NotFoundError):
        resolve_run_id(runs.conn, "abce")


def test_store_wrappers_end_to_end(backend: Any) -> None:
    store = artifacts.open_store(backend.url, storage_options=backend.storage_options)
    for i, (group, lr) in enumerate(itertools.product(["baseline", "wide"], [1e-2, 1e-4, 1e-5])):
        with store.start_run(
            project="sent",
            group=group,
            job_type="train",
            config={"lr": lr},
            tags=["t"] if i % 2 else [],
        ) as run:
            run.log({"val_acc": 0.5 + i / 20})
    best = store.runs(
        where='group = "baseline" and config.lr < 1e-3', order_by=["-summary.val_acc"], limit=5
    )
    assert [r.config["lr"] for r in best] == [1e-5, 1e-4] and best.next_cursor is None
    page = store.runs("sent", order_by="-summary.val_acc", limit=4)
    rest = store.runs("sent", order_by="-summary.val_acc", limit=4, after=page.next_cursor)
    assert len(page) == 4 and len(rest) == 2 and rest.next_cursor is None
    assert [r.summary["val_acc"] for r in [*page, *rest]] == sorted(
        (0.5 + i / 20 for i in range(6)), reverse=True
    )
    assert [r.tags for r in store.runs(where="has tags")] == [["t"]] * 3
    groups = store.run_groups(by="group", metrics=["val_acc"])
    assert [(g.key["group"], g.count, g.metrics["val_acc"].max) for g in groups] == [
        ("baseline", 3, 0.6),
        ("wide", 3, 0.75),
    ]
    usage = store.compute(by="user")
    assert [(u.key, u.runs, u.estimated) for u in usage] == [("alice", 6, False)]
    assert store.run(best[0].id[:6]) == best[0]
    assert len(store.runs()) == 6  # the old call still lists everything, oldest first


def test_devices_are_recorded_only_when_torch_is_already_imported() -> None:
    import sys

    from artifacts.run import environment

    torch = sys.modules.pop("torch", None)
    try:
        assert "cuda" not in environment()["env"]
    finally:
        if torch is not None:
            sys.modules["torch"] = torch
    import torch as _torch  # noqa: F401

    cuda = environment()["env"]["cuda"]
    assert cuda["count"] == len(cuda["names"]) == _torch.cuda.device_count()
