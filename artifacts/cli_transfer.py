"""`artifacts sync` and `artifacts cache`: moving versions between stores, and the download cache.

`artifacts.cli` adds `COMMANDS` to its group (this module does not import it, so it also works when
``python -m artifacts.cli`` runs that module as ``__main__``).
"""

from __future__ import annotations

import json
from typing import Any

import click

from .cache import DownloadCache
from .cliutil import (
    CliContext,
    CliError,
    Progress,
    count,
    format_size,
    out,
    parse_size,
    print_json,
    table,
    when,
)

__all__ = ["COMMANDS", "cache", "sync"]

pass_ctx = click.make_pass_decorator(CliContext)


def _options(text: str | None, default: dict[str, Any], flag: str) -> dict[str, Any]:
    if text is None:
        return default
    try:
        obj = json.loads(text)
    except ValueError as e:
        raise CliError(f"{flag} is not valid JSON: {e}") from None
    if not isinstance(obj, dict):
        raise CliError(f"{flag} must be a JSON object")
    return obj


@click.command()
@click.argument("src", metavar="SRC")
@click.argument("dst", metavar="DST")
@click.argument("refs", nargs=-1, metavar="[REF...]")
@click.option(
    "--no-lineage",
    is_flag=True,
    help="Copy only the versions named, without the runs and upstream versions behind them.",
)
@click.option(
    "--src-options", metavar="JSON", help="fsspec options for SRC (default: --storage-options)."
)
@click.option(
    "--dst-options", metavar="JSON", help="fsspec options for DST (default: --storage-options)."
)
@click.option("--json", "as_json", is_flag=True, help="Print what was copied as JSON.")
@pass_ctx
def sync(
    c: CliContext,
    src: str,
    dst: str,
    refs: tuple[str, ...],
    no_lineage: bool,
    src_options: str | None,
    dst_options: str | None,
    as_json: bool,
) -> None:
    """Copy versions with their runs, history, aliases and lineage from store SRC into store DST.

    Every live version by default, or the REFs given (with the versions and runs upstream of them, and
    the runs that used them). Only blobs DST lacks are sent. Running it again copies nothing twice, and
    a sync that was interrupted resumes. Copies are committed by --user, under DST's quota for that
    user; DST is created if it does not exist.

    \b
      artifacts sync ./.artifacts s3://team/store      after training on a node without a route
      artifacts sync s3://team/store ./.artifacts gru:best
    """
    from .names import parse_ref
    from .store import open_store  # here, not at import: `artifacts --help` stays light

    for ref in refs:  # a bad ref is refused before DST is created
        parse_ref(ref)
    source = open_store(
        src, user=c.user, storage_options=_options(src_options, c.options, "--src-options")
    )
    try:
        target = open_store(
            dst, user=c.user, storage_options=_options(dst_options, c.options, "--dst-options")
        )
        try:
            with Progress.bar(c.quiet, f"sync {src} -> {dst}") as cb:
                report = source.copy_to(
                    target, list(refs) or None, with_lineage=not no_lineage, callback=cb
                )
        finally:
            target.close()
    finally:
        source.close()
    if as_json:
        print_json(report.to_dict())
    elif report.entries == 0:
        out(
            f"{dst} is up to date with {src} ({count(report.skipped, 'entry', 'entries')} copied before)"
        )
    else:
        out(
            f"copied {count(report.versions, 'version')} and {count(report.runs, 'run')} "
            f"({count(report.entries, 'entry', 'entries')}; {count(report.blobs, 'blob')}, "
            f"{format_size(report.bytes)} sent) from {src} to {dst}"
        )


@click.command()
@click.option("--max-size", metavar="SIZE", help="Set the cache's size bound, e.g. 20GB or 512MiB.")
@click.option("--prune", is_flag=True, help="Remove every cached version no running process uses.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def cache(max_size: str | None, prune: bool, as_json: bool) -> None:
    """Show the per-user download cache (where `download()` puts versions of any store).

    Least recently used versions are evicted to stay under the size bound; a version an open process
    is reading is never evicted. Applies to this user's cache ($ARTIFACTS_CACHE_DIR).
    """
    c = DownloadCache()
    if max_size is not None:
        nbytes = parse_size(max_size)
        if nbytes is None:
            raise CliError("--max-size needs a size such as 20GB, not 'none'")
        c.set_max_size(nbytes)
    freed = c.prune() if prune else None
    info = c.info()
    if as_json:
        print_json({**info.to_dict(), **({"freed": freed} if freed is not None else {})})
        return
    if freed is not None:
        out(f"pruned {format_size(freed)}")
    out(
        f"{info.path}: {count(len(info.entries), 'version')}, {format_size(info.size)} of "
        f"{format_size(info.max_size)}"
    )
    rows = [
        (e.digest[:16], format_size(e.size), when_ts(e.last_used), "in use" if e.in_use else "")
        for e in reversed(info.entries)
    ]
    if rows:
        table(("DIGEST", "SIZE", "USED", ""), rows, right=("SIZE",))


def when_ts(ts: float) -> str:
    import datetime as dt

    return when(dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat())


COMMANDS = (sync, cache)
