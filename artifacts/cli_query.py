"""The query commands of `artifacts`: runs, compute, history, compare and diff.

    artifacts runs --where 'group = "baseline" and config.lr < 1e-3' --order -summary.val_acc --limit 5
    artifacts runs --group-by group --group-by job_type --columns summary.val_acc
    artifacts compute --by project --since 2026-12-01
    artifacts history 3fa9 --keys loss,val_acc --csv
    artifacts compare 3fa9 77b0
    artifacts diff gru:v3 gru:v4

They call the same engine as `Store.runs / run_groups / compute / compare_runs / diff` (registered on
the main group by `artifacts.cli` through `register`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from .cliutil import CliContext, CliError, out, print_json, run_dict, table, when

if TYPE_CHECKING:  # a command imports what it uses, so `--help` and `--version` start fast
    from .run import Run

__all__ = ["cell", "register", "run_value"]

pass_ctx = click.make_pass_decorator(CliContext)

_DEFAULT_COLUMNS = ("id", "project", "group", "job_type", "name", "status", "user", "started_at")
_HEADERS = {"job_type": "JOB", "started_at": "STARTED", "finished_at": "FINISHED"}


def cell(value: Any) -> str:
    """A value for a table: short floats, '-' for nothing, JSON for the rest."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def run_value(r: Run, field: str) -> Any:
    """A run's value of one query field (``summary.val_acc``, ``group``, ``duration``, ...)."""
    head, _, rest = field.partition(".")
    if head in ("config", "summary") and rest:
        v: Any = getattr(r, head)
        for k in rest.split("."):
            if not isinstance(v, dict) or k.strip('"') not in v:
                return None
            v = v[k.strip('"')]
        return v
    if field == "duration":
        if not r.finished_at:
            return None
        import datetime as _dt

        a, b = (_dt.datetime.fromisoformat(t) for t in (r.started_at, r.finished_at))
        return (b - a).total_seconds()
    if field in ("started_at", "finished_at"):
        return when(getattr(r, field))
    return getattr(r, field, None)


def _columns(text: str | None) -> list[str]:
    if not text:
        return list(_DEFAULT_COLUMNS)
    cols = [c.strip() for c in text.split(",") if c.strip()]
    if not cols:
        raise CliError(
            "--columns takes field names separated by commas, e.g. id,group,summary.val_acc"
        )
    return cols


def _check_fields(store: Any, cols: Sequence[str]) -> None:
    from .querysql import RUNS, field_sql

    for c in cols:
        if c != "tags":
            field_sql(RUNS, c, purpose="a column")  # an unknown field is a one-line QueryError


def _header(field: str) -> str:
    return _HEADERS.get(field, field.upper() if "." not in field else field)


@click.command("runs")
@click.option("-p", "--project", help="Only runs of this project.")
@click.option(
    "-w",
    "--where",
    "where",
    metavar="EXPR",
    help="A query, e.g. 'group = \"baseline\" and config.lr < 1e-3'.",
)
@click.option(
    "-o",
    "--order",
    "order",
    multiple=True,
    metavar="KEY",
    help="Sort by KEY (-KEY: descending); repeatable.",
)
@click.option("-n", "--limit", type=click.IntRange(min=0), help="At most N runs.")
@click.option(
    "--after", metavar="CURSOR", help="Continue after a previous page (the cursor it printed)."
)
@click.option(
    "-c",
    "--columns",
    metavar="A,B,...",
    help="Fields to show: id,group,config.lr,summary.val_acc,...",
)
@click.option(
    "-g",
    "--group-by",
    "group_by",
    multiple=True,
    metavar="FIELD",
    help="Count runs per FIELD value; --columns become metrics.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with config and summary).")
@pass_ctx
def runs(
    c: CliContext,
    project: str | None,
    where: str | None,
    order: tuple[str, ...],
    limit: int | None,
    after: str | None,
    columns: str | None,
    group_by: tuple[str, ...],
    as_json: bool,
) -> None:
    """List runs, oldest first, or as --order says; --where filters with the query language.

    Fields: id, name, project, group, job_type, user, host, status, tags, started_at, finished_at,
    duration, config.KEY, summary.KEY. Operators: = != < <= > >= in like glob has and or not.
    """
    store = c.store()
    if group_by:
        metrics = [m for m in (columns or "").split(",") if m.strip()]
        groups = store.run_groups(by=group_by, where=where, metrics=metrics, project=project)
        if as_json:
            print_json([g.to_dict() for g in groups])
            return
        rows = [
            [
                *(cell(g.key[f]) for f in group_by),
                g.count,
                *(
                    f"{cell(s.mean)} ({cell(s.min)}..{cell(s.max)}, n={s.count})"
                    if s.count
                    else "-"
                    for s in g.metrics.values()
                ),
            ]
            for g in groups
        ]
        table([*(_header(f) for f in group_by), "RUNS", *metrics], rows, right=("RUNS",))
        return
    cols = _columns(columns)
    _check_fields(store, cols)
    page = store.runs(project, where=where, order_by=list(order) or None, limit=limit, after=after)
    if as_json:
        print_json([{**run_dict(r), "config": r.config, "tags": r.tags} for r in page])
    else:
        table([_header(f) for f in cols], [[cell(run_value(r, f)) for f in cols] for r in page])
    if page.next_cursor is not None:
        click.echo(f"more runs follow: add --after {page.next_cursor}", err=True)


@click.command()
@click.option(
    "--by",
    default="user",
    show_default=True,
    metavar="FIELD",
    help="user, project, group, job_type (or any field).",
)
@click.option("--since", metavar="DATE", help="Count from DATE (2026-12-01, or a date-time).")
@click.option("--until", metavar="DATE", help="Count until DATE (exclusive).")
@click.option("-w", "--where", metavar="EXPR", help="Only runs matching this query.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def compute(
    c: CliContext, by: str, since: str | None, until: str | None, where: str | None, as_json: bool
) -> None:
    """Compute used: runs, wall-clock hours and GPU-hours per user (or --by).

    Each run counts within [--since, --until). Runs still open count to their last heartbeat (or now):
    their rows are estimates, marked ~. GPU-hours cover runs that recorded their CUDA devices.
    """
    rows = c.store().compute(by=by, where=where, since=since, until=until)
    if as_json:
        print_json([u.to_dict() for u in rows])
        return
    mark = lambda u: "~" if u.estimated else ""  # noqa: E731
    table(
        [_header(by), "RUNS", "HOURS", "GPU_HOURS", "OPEN"],
        [
            [
                cell(u.key),
                u.runs,
                f"{mark(u)}{u.hours:.2f}",
                f"{mark(u)}{u.gpu_hours:.2f}" if u.gpu_runs else "-",
                u.open_runs,
            ]
            for u in rows
        ],
        right=("RUNS", "HOURS", "GPU_HOURS", "OPEN"),
    )
    if any(u.estimated for u in rows):
        out("~ includes runs still open, counted to their last heartbeat (or now)")


@click.command()
@click.argument("run_id", metavar="RUN")
@click.option(
    "-k",
    "--keys",
    multiple=True,
    metavar="K[,K...]",
    help="Only these metrics (repeatable, or comma-separated).",
)
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (for a spreadsheet or pandas).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines, one per row.")
@pass_ctx
def history(c: CliContext, run_id: str, keys: tuple[str, ...], as_csv: bool, as_json: bool) -> None:
    """A run's metric history: one row per logged step (RUN may be a unique id prefix)."""
    r = c.store().run(run_id)
    rows = r.history()
    wanted = [k.strip() for ks in keys for k in ks.split(",") if k.strip()]
    if not wanted:
        seen: dict[str, None] = {}
        for row in rows:
            seen.update((k, None) for k in row if k != "_step")
        wanted = list(seen)
    cols = ["_step", *wanted]
    if as_json:
        for row in rows:
            click.echo(json.dumps({k: row.get(k) for k in cols}, sort_keys=True))
    elif as_csv:
        import csv

        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(cols)
        for row in rows:
            w.writerow(["" if row.get(k) is None else row.get(k) for k in cols])
    elif not rows:
        out(f"run {r.id} logged no history")
    else:
        table(
            ["STEP", *wanted], [[cell(row.get(k)) for k in cols] for row in rows], right=("STEP",)
        )


@click.command()
@click.argument("run_ids", nargs=-1, required=True, metavar="RUN RUN...")
@click.option("--all", "show_all", is_flag=True, help="Also list the config keys all runs share.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def compare(c: CliContext, run_ids: tuple[str, ...], show_all: bool, as_json: bool) -> None:
    """Runs side by side: the config keys that differ, every summary metric, and differing inputs."""
    if len(run_ids) < 2:
        raise CliError("compare needs at least two runs")
    cmp = c.store().compare_runs(list(run_ids))
    if as_json:
        print_json(cmp.to_dict())
        return
    rows: list[list[str]] = []

    def section(title: str, items: dict[str, list[Any]]) -> None:
        rows.append([title] + [""] * len(cmp.runs))
        rows.extend([f"  {k}", *(cell(v) for v in vals)] for k, vals in items.items())

    section(
        f"config ({len(cmp.config)} differ)" if cmp.config else "config: no differences", cmp.config
    )
    if show_all:
        section("config (shared)", {k: [v] * len(cmp.runs) for k, v in cmp.same_config.items()})
    section("summary", cmp.summary)
    section("inputs (differ)" if cmp.different_inputs else "inputs: the same", cmp.different_inputs)
    table(["", *cmp.runs], rows)
    if cmp.same_config and not show_all:
        out(f"({len(cmp.same_config)} config keys are the same in every run; --all lists them)")


@click.command()
@click.argument("ref_a", metavar="REF")
@click.argument("ref_b", metavar="REF")
@click.option(
    "--no-values", is_flag=True, help="Do not load changed tensors to measure max |diff|."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def diff(c: CliContext, ref_a: str, ref_b: str, no_values: bool, as_json: bool) -> None:
    """What changed between two versions: files and tensors added (+), removed (-), changed (~).

    For checkpoints each changed tensor shows dtype and shape, and max |b - a| when both load (with
    torch installed); bytes shared and new say what storing the second version cost.
    """
    from .cliutil import format_size

    store = c.store()
    d = store.diff(ref_a, ref_b)
    if not no_values and any(ch.is_tensor for ch in d.changed):
        try:
            from .torch import tensor_differences
        except ImportError:  # torch not installed: the manifest part is still right
            pass
        else:
            d = tensor_differences(store.artifact(d.a), store.artifact(d.b), d)
    if as_json:
        print_json(d.to_dict())
        return
    out(
        f"{d.a} -> {d.b}: {len(d.changed)} changed, {len(d.added)} added, {len(d.removed)} removed, "
        f"{d.unchanged} unchanged; {format_size(d.bytes_shared)} shared, {format_size(d.bytes_new)} new"
    )

    def what(ch: Any, side: str) -> str:
        dtype, shape, size = (getattr(ch, f"{k}_{side}") for k in ("dtype", "shape", "size"))
        return f"{dtype} {shape}" if dtype else format_size(size)

    rows = [["-", ch.path, what(ch, "a"), ""] for ch in d.removed]
    rows += [["+", ch.path, "", what(ch, "b")] for ch in d.added]
    for ch in d.changed:
        note = what(ch, "b") if what(ch, "a") != what(ch, "b") else "same shape"
        if ch.max_abs_diff is not None:
            note += f", max |diff| {ch.max_abs_diff:.6g}"
        rows.append(["~", ch.path, what(ch, "a"), note])
    if rows:
        table(["", "PATH", "A", "B"], sorted(rows, key=lambda r: r[1]), indent="  ")


def register(group: click.Group) -> None:
    """Add these commands to the `artifacts` group (called once by `artifacts.cli`)."""
    for command in (runs, compute, history, compare, diff):
        group.add_command(command)
