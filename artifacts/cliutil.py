"""Helpers of the `artifacts` command line: sizes, durations, times, tables, JSON, progress bars, errors."""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import re
import sqlite3
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from .bounds import INT64_MAX
from .errors import ArtifactsError

if TYPE_CHECKING:  # imported when a command runs: `artifacts --help` needs none of them
    from fsspec.callbacks import Callback

    from .run import Run
    from .store import Store
    from .version import ArtifactVersion

__all__ = [
    "CliContext",
    "CliError",
    "Group",
    "Progress",
    "count",
    "file_dicts",
    "format_size",
    "one_line",
    "out",
    "parse_duration",
    "parse_metadata",
    "parse_size",
    "print_json",
    "quiet_orphan_tasks",
    "run_dict",
    "run_line",
    "table",
    "usage_dict",
    "usage_line",
    "version_dict",
    "when",
]


# -- values ----------------------------------------------------------------------------------------
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    **{f"{p}b": 1000**i for i, p in enumerate("kmgtpe", 1)},
    **{f"{p}ib": 1024**i for i, p in enumerate("kmgtpe", 1)},
}


def parse_size(text: str) -> int | None:
    """``10GB`` -> 10**10, ``512MiB`` -> 512 * 2**20, ``1.5 TB``, ``123``; ``none`` -> None (no quota).

    Decimal units (kB, MB, GB, TB, PB, EB) are powers of 1000 and binary ones (KiB, MiB, GiB, ...) powers
    of 1024. A bare ``G`` or ``M`` is refused: it is ambiguous.
    """
    s = text.strip()
    if s.lower() in ("none", "unlimited"):
        return None
    m = re.fullmatch(r"((?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,6})?)\s*([A-Za-z]*)", s)
    if m is None:
        raise CliError(f"invalid size {_short(text)}: expected a number and a unit, like 10GB or 512MiB")
    unit = m.group(2).lower()
    if unit in ("k", "m", "g", "t", "p", "e"):
        raise CliError(
            f"ambiguous size {_short(text)}: write {m.group(1)}{unit.upper()}B (powers of 1000) or "
            f"{m.group(1)}{unit.upper()}iB (powers of 1024)"
        )
    if unit not in _SIZE_UNITS:
        raise CliError(
            f"invalid size {_short(text)}: unknown unit {m.group(2)!r} (use B, kB, MB, GB, TB, KiB, MiB, GiB, TiB)"
        )
    mantissa, _, exp = m.group(1).lower().partition("e")
    whole = mantissa.partition(".")[0].lstrip("0")
    from fractions import Fraction  # here: decimal and fractions cost `--version` 4 ms

    power = int(exp or 0)
    value = Fraction(mantissa[:60]) if len(whole) <= 30 else None  # None: past 2^63 already
    if value == 0 or power < -400:
        n = 0
    elif value is None or power > 400:  # 1e400GB: far past 2^63, known without computing it
        n = INT64_MAX + 1
    else:
        n = round(value * Fraction(10) ** power * _SIZE_UNITS[unit])
    if n > INT64_MAX:
        raise CliError(
            f"size {_short(text)} is too large: at most {INT64_MAX} bytes (about 9.2 EB); "
            "write none for no limit"
        )
    return n


def _short(text: str) -> str:
    return repr(text) if len(text) <= 40 else repr(text[:37] + "...")


def format_size(n: int | None) -> str:
    """Bytes for humans, in decimal units as quotas are written: ``512 B``, ``1.2 MB``, ``10.0 GB``."""
    if n is None:
        return "-"
    if n < 1000:
        return f"{n} B"
    value = float(n)
    for unit in ("kB", "MB", "GB", "TB", "PB", "EB"):
        value /= 1000
        if round(value, 1) < 1000 or unit == "EB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """``24h``, ``30m``, ``90s``, ``2d``, ``1w`` or a bare number of seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([a-z]*)\s*", text.lower())
    if m is None or m.group(2) not in _DURATION_UNITS:
        raise CliError(
            f"invalid duration {_short(text)}: expected a number and a unit, like 24h, 30m, 2d"
        )
    seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    if not seconds < 1e15:  # inf included; about 30 million years
        raise CliError(f"duration {_short(text)} is too long: at most 1e15 seconds")
    return seconds


def when(iso: str | None) -> str:
    """A log timestamp (UTC, ISO 8601) in local time, to the minute."""
    if not iso:
        return "-"
    try:
        return _dt.datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso


def parse_metadata(pairs: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="'--metadata'")
        try:
            out[key] = json.loads(value)  # numbers, booleans, lists... stay typed
        except ValueError:
            out[key] = value
    return out


# -- errors and output -----------------------------------------------------------------------------
class CliError(click.ClickException):
    """A user error: printed as one line, ``error: ...``, exit status 1."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def one_line(e: BaseException) -> str:
    text = " ".join(line.strip() for line in str(e).strip().splitlines() if line.strip())
    return text or type(e).__name__


def out(text: str = "") -> None:
    click.echo(text)


def print_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=True, default=str))


_MAX_PAD = 200


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    right: Sequence[str] = (),
    indent: str = "",
) -> None:
    """Aligned columns; the columns named in ``right`` (sizes, counts) are right-aligned.

    A column is padded to at most `_MAX_PAD` characters (a longer cell sticks out of its line):
    one 4096-character path must not pad each of a million lines to 4096.
    """
    cells = [[str(c) for c in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [min(_MAX_PAD, max(len(row[i]) for row in cells)) for i in range(len(headers))]
    for row in cells:
        parts = [
            c.rjust(w) if h in right else c.ljust(w)
            for c, w, h in zip(row, widths, headers, strict=True)
        ]
        out(indent + "  ".join(parts).rstrip())


class Progress:
    """A byte progress bar on stderr for a transfer (tqdm through fsspec's callback)."""

    @staticmethod
    def wanted(quiet: bool) -> bool:
        return not quiet and sys.stderr.isatty()

    @staticmethod
    @contextmanager
    def bar(quiet: bool, desc: str) -> Iterator[Callback | None]:
        """A progress bar on stderr, or None when none is shown (every API takes None as "no
        progress", and fsspec, which the bar needs, is then not imported at all)."""
        if not Progress.wanted(quiet):
            yield None
            return
        cb = (globals().get("TqdmCallback") or __getattr__("TqdmCallback"))(
            tqdm_kwargs={
                "desc": desc,
                "unit": "B",
                "unit_scale": True,
                "unit_divisor": 1000,
                "delay": 1.0,  # transfers that finish within a second show nothing
                "leave": False,
                "file": sys.stderr,
                "dynamic_ncols": True,
            }
        )
        try:
            yield cb
        finally:
            cb.close()


def count(n: int, what: str, plural: str | None = None) -> str:
    return f"{n} {what if n == 1 else plural or what + 's'}"


def version_dict(v: ArtifactVersion, latest: bool) -> dict[str, Any]:
    return {**v.to_dict(), "latest": latest}


def file_dicts(v: ArtifactVersion) -> list[dict[str, Any]]:
    return [{"path": f.path, "size": f.size, "digest": f.digest, **dict(f.meta)} for f in v.files()]


_BRIEF = ("config", "command", "git", "env")  # left out of a listing of many runs


def run_dict(r: Run, full: bool = False) -> dict[str, Any]:
    d = r.to_dict()
    if not full:
        return {k: v for k, v in d.items() if k not in _BRIEF}
    return {
        **d,
        "inputs": [v.ref for v in r.inputs()],
        "outputs": [v.ref for v in r.outputs()],
    }


def run_line(r: Run) -> str:
    what = r.job_type or "run"
    named = f" {r.name}" if r.name else ""
    return f"run {r.id} ({what}{named}, project {r.project}, {r.status}, {r.user})"


def usage_dict(store: Store, user: str) -> dict[str, Any]:
    used, quota = store.usage(user), store.quota(user)
    return {
        "user": user,
        "usage": used,
        "quota": quota,
        "available": None if quota is None else max(quota - used, 0),
    }


def usage_line(d: dict[str, Any]) -> str:
    if d["quota"] is None:
        return f"{d['user']}: {format_size(d['usage'])} used, no quota"
    pct = 100 * d["usage"] / d["quota"] if d["quota"] else 100.0
    return (
        f"{d['user']}: {format_size(d['usage'])} used of {format_size(d['quota'])} ({pct:.0f}%), "
        f"{format_size(d['available'])} available"
    )


class Group(click.Group):
    """Turns the errors a user can cause into one line on stderr instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        args = (list(ctx._protected_args), list(ctx.args))  # consumed by the first try
        try:
            try:
                return super().invoke(ctx)
            except sqlite3.DatabaseError as e:  # the local index (a cache), never the store
                if not _heal_index(ctx, e):
                    raise
                ctx._protected_args, ctx.args = args
                return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except BrokenPipeError:  # `artifacts cat ... | head`: the reader has all it wanted
            with contextlib.suppress(OSError, ValueError, AttributeError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(141)
        except (ArtifactsError, OSError, sqlite3.Error) as e:  # OSError: a local file the user named
            raise CliError(one_line(e)) from None
        except KeyboardInterrupt:
            click.echo("error: interrupted", err=True)
            ctx.exit(130)


def _orphan_report(record: Any) -> bool:
    """False for asyncio's "Task exception was never retrieved" reports: when an S3 endpoint dies
    mid-put, every upload task still in flight ends with the same connection error, which the
    command already reported in its one line (once 351 stderr lines)."""
    return not str(record.msg).split("\n", 1)[0].endswith("exception was never retrieved")


def quiet_orphan_tasks() -> None:
    """Install `_orphan_report` on the asyncio logger, once (the CLI only: a library leaves logging
    be). ``logging`` is imported here, not at start-up: `--version` and `--help` never need it."""
    import logging

    log = logging.getLogger("asyncio")
    if _orphan_report not in log.filters:
        log.addFilter(_orphan_report)


def _heal_index(ctx: click.Context, e: sqlite3.DatabaseError) -> bool:
    """A damaged index is rebuilt from the log; True when the command may simply run again (it had
    committed nothing), False when the error is another one or the command's change already landed."""
    from .catalog.engine import is_corrupt

    obj = ctx.obj
    store = getattr(obj, "_store", None)
    if not is_corrupt(e) or store is None:
        return False
    committed = store.catalog.commits
    store.catalog.heal(e)
    if committed:
        raise CliError(
            f"the local index was damaged ({e}) after this command committed its change; the index "
            "was rebuilt from the log: check the result (for example with `artifacts ls`)"
        ) from None
    return True


class CliContext:
    """Global options, and the store opened lazily (once) by the commands that need it."""

    def __init__(self, url: str, options: dict[str, Any], user: str | None, quiet: bool) -> None:
        self.url, self.options, self.user, self.quiet = url, options, user, quiet
        self._store: Store | None = None

    def exists(self) -> bool:
        from storage import open_root

        root = open_root(self.url, self.options)
        if root.exists("store.json"):
            return True
        if root.remote:
            root.check_reachable()  # a missing bucket or a bad endpoint says so, not "no store"
        return False

    def store(self, *, create: bool = False) -> Store:
        if self._store is None:
            from .errors import StoreNotFoundError
            from .store import open_store

            try:  # store.json is read once: the open is the existence check
                self._store = open_store(
                    self.url, user=self.user, storage_options=self.options, create=create
                )
            except StoreNotFoundError:
                raise CliError(
                    f"no store at {self.url}: create one with `artifacts init`, or point --store "
                    "(or $ARTIFACTS_STORE) at an existing one"
                ) from None
            self._store.catalog.trust_open()  # the command runs now: the open's sync is fresh
            click.get_current_context().call_on_close(self._store.close)
        return self._store


def __getattr__(name: str) -> Any:
    """``TqdmCallback`` on first use: fsspec (and tqdm) load only when a progress bar is shown."""
    if name == "TqdmCallback":
        from fsspec.callbacks import TqdmCallback

        return TqdmCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
