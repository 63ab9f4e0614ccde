"""A run's live state in the store, outside the commit log: history chunks and a heartbeat.

    runs/<run_id>/chunks/0000000001.jsonl   created exclusively, by the run alone, one per flush with news
    runs/<run_id>/heartbeat.json            overwritten at every flush: the run is alive

A chunk is JSON lines: a header ``{"format", "run", "n", "t", "summary"[, "config"]}`` then one history
row per line. Chunks are numbered without gaps (one writer, in order), so a reader finds new ones by
probing forward, as for the log. A row whose step was still open when flushed (W&B's ``commit=False``,
or ``step=`` given) may be flushed again, completed, in a later chunk: readers merge consecutive rows of
one step, later keys winning. The finish entry in the log records how many chunks the run wrote, so a
run closed by someone else keeps exactly the history it had flushed.

A run whose heartbeat is older than the crash timeout (``$ARTIFACTS_CRASH_TIMEOUT`` seconds, default
300, never less than three flush intervals) reads as ``crashed``; nothing is stored to say so until
someone closes it with `Store.close_run`.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import bounds
from .errors import ArtifactsError, InvalidValueError
from .manifest import canonical_json
from .untrusted import MAX_DEPTH, check_depth, load_json

if TYPE_CHECKING:
    from storage import Root

__all__ = [
    "json_lines",
    "CHUNK_FORMAT",
    "Chunk",
    "Heartbeat",
    "chunk_path",
    "crash_timeout",
    "decode_chunk",
    "encode_chunk",
    "heartbeat_path",
    "is_stale",
    "merge_rows",
    "read_chunks",
    "read_heartbeat",
]

CHUNK_FORMAT = 1
DEFAULT_CRASH_TIMEOUT = 300.0
_RUN_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")
_MAX_BATCH = 256  # probes past the known chunks, at most, per round
#: chunks read per round, growing from the first to the most: a heartbeat or finish entry claiming
#: 10^12 chunks of a run that wrote three costs one round of 64 reads, not a list of 10^12 paths;
#: a real run's 10k chunks are a dozen rounds
_FIRST_ROUND = 64
_MAX_ROUND = 1024


def _run_dir(run_id: str) -> str:
    if not _RUN_ID.fullmatch(run_id):  # ids come from log entries: never let one pick a path
        raise InvalidValueError(f"run id {run_id!r} cannot name live files")
    return f"runs/{run_id}"


def chunk_path(run_id: str, n: int) -> str:
    return f"{_run_dir(run_id)}/chunks/{n:010d}.jsonl"


def heartbeat_path(run_id: str) -> str:
    return f"{_run_dir(run_id)}/heartbeat.json"


def crash_timeout() -> float:
    """Seconds without a heartbeat after which a running run reads as crashed."""
    raw = os.environ.get("ARTIFACTS_CRASH_TIMEOUT")
    if not raw:
        return DEFAULT_CRASH_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        raise InvalidValueError(
            f"$ARTIFACTS_CRASH_TIMEOUT must be a number of seconds, not {raw!r}"
        ) from None
    if not value > 0:
        raise InvalidValueError(f"$ARTIFACTS_CRASH_TIMEOUT must be positive, not {raw!r}")
    return value


@dataclass(frozen=True)
class Chunk:
    """One flush of a run: the rows committed since the last one, and the summary at that time."""

    n: int
    t: float
    rows: tuple[dict[str, Any], ...]
    summary: dict[str, Any]
    config: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "t": self.t,
            "rows": [dict(r) for r in self.rows],
            "summary": dict(self.summary),
            "config": self.config,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


@dataclass(frozen=True)
class Heartbeat:
    """The run's last sign of life: when, how many chunks it had written, its flush interval."""

    t: float
    chunks: int
    interval: float
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"t": self.t, "chunks": self.chunks, "interval": self.interval, **self.extra}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def encode_chunk(
    run_id: str,
    n: int,
    lines: Iterable[bytes],
    summary: dict[str, Any],
    config: dict[str, Any] | None,
) -> bytes:
    """A chunk's bytes; ``lines`` are rows already encoded with `canonical_json` (kept for the
    finish entry's history blob, so each row is encoded once)."""
    header: dict[str, Any] = {
        "format": CHUNK_FORMAT,
        "run": run_id,
        "n": n,
        "t": time.time(),
        "summary": summary,
    }
    if config is not None:
        header["config"] = config
    return b"\n".join([canonical_json(header), *lines]) + b"\n"


def json_lines(data: bytes | str) -> list[Any]:
    """Every non-blank line of JSON lines ``data``, parsed; `ValueError` names a damaged line.

    Rows of metrics (objects without lists), one per line as our writers make them, parse as one
    JSON array, in about 0.7x the time of the decoder's scanner per line (with the same answer: see
    `_rows_at_once`). Anything else (blank lines, other values, lists, damage) goes through the scanner
    called once per line, a value that must end where the line ends, which names a damaged line; it
    takes about two thirds of the time of one `json.loads` per line (whose wrapper work is most of
    the cost on short lines), with the same strictness.
    """
    rows = _rows_at_once(data)
    if rows is not None:
        return rows
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    scan = _SCAN
    out = []
    # "\n" only: str.splitlines() also splits at U+2028, \x1c... that JSON leaves unescaped in strings
    for n, raw in enumerate(text.split("\n"), 1):
        line = raw.strip()
        if not line:
            continue
        try:
            value, end = scan(line, 0)
        except StopIteration:
            end = -1
        except RecursionError:
            raise ValueError(f"line {n} is nested too deeply to be read") from None
        if end != len(line):
            json.loads(line)  # raises the decoder's own message for this line
            raise ValueError(f"line {n} is not one JSON value")
        if line.count("[") + line.count("{") > 1:  # nested (a flat row has one brace): bound it
            check_depth(value, f"line {n}")
        out.append(value)
    return out


def _rows_at_once(data: bytes | str) -> list[Any] | None:
    """Flat-ish JSON lines of objects parsed by one `json.loads`; None where ``data`` is not that.

    Exactly the per-line answer: each newline becomes ``,\n``, so a line boundary inside a string
    leaves a raw newline there (refused); every line starts with ``{`` and no line holds a ``[``, so a
    boundary inside an object would put a ``{`` where a key must be (refused), and none can fall in an
    array. Every boundary then separates top-level values, and as many values as lines means one each.
    """
    try:
        text = (data.decode("utf-8") if isinstance(data, bytes) else data).strip()
        lines = text.count("\n") + 1
        if not text.startswith("{") or text.count("\n{") != lines - 1 or "[" in text:
            return None
        rows = json.loads("[" + text.replace("\n", ",\n") + "]")
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    if len(rows) != lines or set(map(type, rows)) != {dict}:
        return None
    if text.count("{") > len(rows):  # some row nests objects: bounded as the scanner's are
        try:
            check_depth(rows, "a line", MAX_DEPTH + 1)
        except ValueError:
            return None
    return rows


#: the C scanner `json.loads` calls, without its wrapper's per-call work
_SCAN: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def decode_chunk(data: bytes, run_id: str, n: int) -> Chunk:
    """Parse a chunk; `ValueError` says what is wrong with one that is damaged or not this run's."""
    if len(data) > bounds.MAX_CHUNK_BYTES:  # readers read one byte past the bound, no further
        raise ValueError(
            f"chunk {n} of run {run_id} ({chunk_path(run_id, n)}) holds more than "
            f"{bounds.MAX_CHUNK_BYTES} bytes; a chunk may have at most {bounds.MAX_CHUNK_BYTES}"
        )
    try:
        text = data.decode("utf-8")
        first, _, rest = text.partition("\n")
        header = load_json(first, "its header")
        rows = tuple(json_lines(rest))
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"chunk {n} of run {run_id} is not JSON lines ({e})") from None
    if not isinstance(header, dict) or header.get("format") != CHUNK_FORMAT:
        raise ValueError(f"chunk {n} of run {run_id} has an unknown format")
    if header.get("run") != run_id or header.get("n") != n:
        raise ValueError(f"chunk {n} of run {run_id} claims to be another chunk")
    if not all(isinstance(r, dict) and isinstance(r.get("_step"), int) for r in rows):
        raise ValueError(f"chunk {n} of run {run_id} holds a row without a step")
    summary, config = header.get("summary"), header.get("config")
    return Chunk(
        n,
        float(header.get("t") or 0.0),
        rows,
        summary if isinstance(summary, dict) else {},
        config if isinstance(config, dict) else None,
    )


def read_chunks(
    root: Root, run_id: str, start: int = 1, stop: int | None = None, hint: int = 0
) -> list[Chunk]:
    """Chunks ``start..stop`` (inclusive), or ``start..`` the last one when ``stop`` is None.

    ``hint`` (a heartbeat's chunk count) lets the chunks known to exist be fetched in rounds of
    `_FIRST_ROUND` growing to `_MAX_ROUND` at once; past them the reader probes. A chunk that is missing below ``stop``, or
    damaged, raises `ArtifactsError`.
    """
    out: list[Chunk] = []
    n = start
    known = stop if stop is not None else hint  # from a log entry or a heartbeat: untrusted
    probe, size = 1, _FIRST_ROUND
    while stop is None or n <= stop:
        if n <= known:  # chunks that should exist: in growing rounds of at most _MAX_ROUND
            last = min(known, n + size - 1)
            size = min(size * 4, _MAX_ROUND)
        else:  # past them, probe from one at a time: most probes of a live run find nothing
            last = n + probe - 1
            probe = min(probe * 4, _MAX_BATCH)
        paths = {chunk_path(run_id, i): i for i in range(n, last + 1)}
        got = root.read_many(list(paths), limit=bounds.MAX_CHUNK_BYTES)  # no further: untrusted
        for path, i in paths.items():
            data = got.get(path)
            if data is None:
                if stop is not None:
                    raise ArtifactsError(
                        f"chunk {i} of run {run_id} is missing from {root.url}; its history is "
                        "incomplete"
                    )
                return out
            try:
                out.append(decode_chunk(data, run_id, i))
            except ValueError as e:
                raise ArtifactsError(str(e)) from None
        n = last + 1
    return out


def read_heartbeat(root: Root, run_id: str) -> Heartbeat | None:
    """The run's heartbeat, or None if it never flushed (or the last write was cut short)."""
    got = root.read_many([heartbeat_path(run_id)], limit=bounds.MAX_SMALL_BYTES)
    data = next(iter(got.values()), None)
    if data is None:
        return None
    try:
        obj = load_json(data, "heartbeat", limit=bounds.MAX_SMALL_BYTES)
        extra = {k: v for k, v in obj.items() if k not in ("t", "chunks", "interval")}
        return Heartbeat(float(obj["t"]), int(obj["chunks"]), float(obj["interval"]), extra)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def is_stale(last_seen: float, interval: float | None, now: float | None = None) -> bool:
    """Whether a run last seen at ``last_seen`` (epoch seconds) is past the crash timeout."""
    limit = max(crash_timeout(), 3 * (interval or 0.0))
    return (now if now is not None else time.time()) - last_seen > limit


def epoch_seconds(iso: str | None) -> float:
    """An ISO timestamp from a log entry as epoch seconds (0 when missing or unreadable)."""
    if not iso:
        return 0.0
    try:
        dt = _dt.datetime.fromisoformat(iso)
    except ValueError:
        return 0.0
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=_dt.timezone.utc)
    return dt.timestamp()


def merge_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """History rows with consecutive rows of one ``_step`` merged (a step flushed while still open,
    then again complete), later values winning."""
    out: list[dict[str, Any]] = []
    for row in rows:
        if out and out[-1].get("_step") == row.get("_step"):
            out[-1] = {**out[-1], **row}
        else:
            out.append(dict(row))
    return out
