"""`artifacts runs / compute / history / show run/ID` on the query engine, and their bad input."""

from __future__ import annotations

import csv
import io
import os
from typing import Any

import pytest
from test_cli import Cli

import artifacts
from artifacts.catalog.entries import RunStarted


@pytest.fixture
def cli(local_backend: Any) -> Cli:
    c = Cli(local_backend.url)
    c.ok("init")
    store = c.store()
    for i, (group, lr) in enumerate([("baseline", 1e-2), ("baseline", 1e-4), ("wide", 1e-5)]):
        with store.start_run(
            project="sent", group=group, job_type="train", config={"lr": lr}
        ) as run:
            for step in range(3):
                run.log({"loss": 1 / (step + 1), "val_acc": 0.5 + i / 10 + step / 100})
    store.close()
    return c


def _ids(c: Cli) -> list[str]:
    return [r["id"] for r in c.json("runs")]


def test_runs_where_order_columns_and_pages(cli: Cli) -> None:
    out = cli.ok("runs").stdout.splitlines()
    assert out[0].split() == ["ID", "PROJECT", "GROUP", "JOB", "NAME", "STATUS", "USER", "STARTED"]
    assert len(out) == 4 and all("train" in line for line in out[1:])
    r = cli.ok(
        "runs", "--where", 'group = "baseline" and config.lr < 1e-3', "--order", "-summary.val_acc",
        "--columns", "id,config.lr,summary.val_acc",
    )  # fmt: skip
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["ID", "config.lr", "summary.val_acc"]
    assert len(lines) == 2 and lines[1].split()[1:] == ["0.0001", "0.62"]
    first = cli.ok(
        "runs", "--order", "-summary.val_acc", "--limit", "2", "--columns", "summary.val_acc"
    )
    assert first.stdout.split()[1:] == ["0.72", "0.62"]
    cursor = first.stderr.strip().rsplit(" ", 1)[1]
    rest = cli.ok(
        "runs",
        "--order",
        "-summary.val_acc",
        "--limit",
        "2",
        "--after",
        cursor,
        "--columns",
        "summary.val_acc",
    )
    assert rest.stdout.split()[1:] == ["0.52"] and rest.stderr == ""
    runs = cli.json("runs", "--where", "summary.val_acc >= 0.6")
    assert [r["config"]["lr"] for r in runs] == [1e-4, 1e-5] and runs[0]["summary"][
        "loss"
    ] == pytest.approx(1 / 3)
    assert runs[0]["group"] == "baseline" and runs[0]["job_type"] == "train"


def test_runs_group_by_compute_history_and_show_run(cli: Cli) -> None:
    g = cli.ok(
        "runs", "--group-by", "group", "--group-by", "job_type", "--columns", "summary.val_acc"
    ).stdout
    lines = g.splitlines()
    assert lines[0].split() == ["GROUP", "JOB", "RUNS", "summary.val_acc"]
    assert lines[1].split()[:4] == ["baseline", "train", "2", "0.57"]
    groups = cli.json("runs", "--group-by", "group", "--columns", "val_acc")
    assert [(x["key"]["group"], x["count"], x["metrics"]["val_acc"]["max"]) for x in groups] == [
        ("baseline", 2, 0.62),
        ("wide", 1, 0.72),
    ]
    usage = cli.json("compute", "--by", "project", "--since", "2000-01-01")
    assert [(u["key"], u["runs"], u["estimated"]) for u in usage] == [("sent", 3, False)]
    assert cli.json("compute", "--since", "2999-01-01") == []
    run_id = _ids(cli)[2]
    rows = list(
        csv.reader(io.StringIO(cli.ok("history", run_id[:5], "--keys", "val_acc", "--csv").stdout))
    )
    assert rows == [["_step", "val_acc"], ["0", "0.7"], ["1", "0.71"], ["2", "0.72"]]
    table = cli.ok("history", run_id).stdout.splitlines()
    assert table[0].split() == ["STEP", "loss", "val_acc"] and len(table) == 4
    shown = cli.ok("show", f"run/{run_id[:6]}").stdout
    assert shown.startswith(f"run {run_id} (train, project sent)") and "val_acc: 0.72" in shown
    assert cli.json("show", f"run/{run_id}")["id"] == run_id
    assert cli.ok("lineage", f"run/{run_id[:6]}").stdout.startswith("train ")


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["runs", "--where", "colour = 'red'"], r"unknown field 'colour'.*\^colour"),
        (["runs", "--where", 'summary.val_acc > "x"'], r"column 19: summary.val_acc holds number"),
        (["runs", "--where", "(group = 'a' or group = 'b'"], r"unbalanced '\('"),
        (["runs", "--where", "'; DROP TABLE runs; --"], "unterminated string"),
        (["runs", "--where", "group = ''; DROP TABLE runs; --'"], "unexpected character"),
        (
            ["runs", "--where", "config.lr in (" + ",".join(map(str, range(1500))) + ")"],
            "more than 1000 values",
        ),
        (["runs", "--order", "-tags"], "is a set"),
        (["runs", "--columns", "summary.val_acc,bogus"], "unknown field 'bogus'"),
        (["runs", "--after", "not-a-cursor"], "invalid cursor"),
        (["compute", "--since", "last week"], "since must be a date"),
        (["compute", "--by", "flavour"], "unknown field 'flavour'"),
        (["history", "abc"], "at least 4 characters"),
        (["history", "zzzzzz"], "run zzzzzz not found"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(
    cli: Cli, local_backend: Any, args: list[str], match: str
) -> None:
    log = os.path.join(local_backend.url, "log")
    before = sorted(os.listdir(log))
    cli.fails(*args, match=match)
    assert sorted(os.listdir(log)) == before and len(_ids(cli)) == 3


def test_ambiguous_prefix_lists_candidates(cli: Cli) -> None:
    store = cli.store()
    for rid in ("beef0001", "beef0002"):
        store.catalog.commit(RunStarted(id=rid, project="sent", job_type="eval"))
    store.close()
    line = cli.fails("history", "beef", match="ambiguous")
    assert "beef0001 (eval, sent)" in line and "beef0002 (eval, sent)" in line
    cli.fails("show", "run/beef", match="ambiguous")
    assert cli.json("run", "beef0002")["id"] == "beef0002"
    with pytest.raises(artifacts.AmbiguousError):
        cli.store().run("beef")
