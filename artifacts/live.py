"""The active side of a run: W&B's step rules, and a background thread that flushes history live.

`LiveHistory.log` runs on the training thread and does no I/O: it merges the row into the open step
under a lock held for a few dict operations. A daemon thread wakes every ``flush_interval`` seconds (or
as soon as ``flush_rows`` rows are waiting), takes what is new, encodes it and writes one chunk plus a
heartbeat (see `artifacts.chunks`). A SIGKILL loses at most what was logged since the last flush; what
was flushed stays readable by anyone.

Step rules (W&B's): ``log(d)`` puts ``d`` on the current step and closes it (the step advances);
``log(d, step=s)`` with ``s`` above the current step closes the open one and opens ``s`` without closing
it (``commit=True`` closes it); a step below the current one is refused; ``commit=False`` keeps the step
open. Keys logged twice on one open step: the later value wins.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import operator
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import bounds
from .bounds import INT64_MAX, check_int, shorten
from .chunks import Heartbeat, chunk_path, encode_chunk, heartbeat_path
from .errors import ArtifactsError, ConflictError, InvalidValueError
from .manifest import canonical_json
from .values import Summary, to_json_value

if TYPE_CHECKING:
    from storage import Root

__all__ = [
    "DEFAULT_FLUSH_INTERVAL",
    "DEFAULT_FLUSH_ROWS",
    "LiveHistory",
    "clean_json",
    "flush_interval_default",
]

DEFAULT_FLUSH_INTERVAL = 5.0
DEFAULT_FLUSH_ROWS = 1000
MAX_TEXT = 64 * 1024  # characters of one text metric
_PLAIN = frozenset({int, float, str, bool, type(None)})
_writers: weakref.WeakSet[LiveHistory] = weakref.WeakSet()


def flush_interval_default() -> float:
    raw = os.environ.get("ARTIFACTS_FLUSH_INTERVAL")
    if not raw:
        return DEFAULT_FLUSH_INTERVAL
    try:
        return check_interval(float(raw))
    except ValueError:
        raise InvalidValueError(
            f"$ARTIFACTS_FLUSH_INTERVAL must be a positive number of seconds, not {raw!r}"
        ) from None


def check_interval(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidValueError(
            f"flush_interval must be a positive number of seconds, not {value!r}"
        )
    return float(value)


def clean_json(obj: Any) -> Any:
    """Replace NaN/inf (common in losses) by None so the stored JSON is standard."""
    if type(obj) is float:
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: clean_json(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [clean_json(v) for v in obj]
    return obj


def _step_value(step: Any) -> int:
    """A step given as an int-like (NumPy integer, 0-d integer tensor) as an int; else refused."""
    try:
        value = None if isinstance(step, bool) else operator.index(step)
    except TypeError:
        value = None
    if value is None or value < 0:
        raise InvalidValueError(f"step must be a non-negative int, got {shorten(step)}")
    return check_int(value, "step")


class LiveHistory:
    """History, summary and config of one active run, flushed to ``runs/<id>/`` while it runs."""

    def __init__(
        self,
        root: Root,
        run_id: str,
        summary: Summary,
        *,
        flush_interval: float | None = None,
        flush_rows: int | None = None,
        config: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.root = root
        self.run_id = run_id
        self.summary = summary
        self.interval = (
            flush_interval_default() if flush_interval is None else check_interval(flush_interval)
        )
        if flush_rows is not None and (
            isinstance(flush_rows, bool) or not isinstance(flush_rows, int) or flush_rows < 1
        ):
            raise InvalidValueError(f"flush_rows must be a positive int, not {flush_rows!r}")
        self.max_rows = flush_rows or DEFAULT_FLUSH_ROWS
        self._config = config
        self._config_dirty = False
        self.step = 0
        self._open: dict[str, Any] | None = None  # the open step's row
        self._open_dirty = False
        self._closed: list[dict[str, Any]] = []  # rows closed since the last flush
        self._lock = threading.Lock()  # guards the four fields above; held for dict operations only
        self._io = threading.Lock()  # one flush at a time
        self.lines: list[bytes] = []  # every closed row, encoded: the finish entry's history blob
        self.chunks = 0
        self.error: BaseException | None = None
        self._last_summary: bytes | None = None
        self._wake = threading.Event()
        self._stopped = False
        self._thread = threading.Thread(
            target=self._loop, name=f"artifacts-flush-{run_id}", daemon=True
        )
        self._thread.start()
        _writers.add(self)

    # -- the training thread ---------------------------------------------------------------------
    def log(self, metrics: Any, step: int | None = None, commit: bool | None = None) -> None:
        """Merge ``metrics`` into the step's row following W&B's step rules (see module doc)."""
        if not isinstance(metrics, dict):
            if not hasattr(metrics, "items"):
                raise InvalidValueError(
                    f"run.log() takes a dict of metrics, got {type(metrics).__name__}"
                )
            metrics = dict(metrics.items())
        row = {}
        for k, v in metrics.items():
            if type(k) is not str or not k or k[0] == "_":
                raise InvalidValueError(
                    f"metric names must be non-empty strings not starting with '_', got {k!r}"
                )
            t = type(v)
            if t is str and len(v) > MAX_TEXT:
                raise InvalidValueError(f"metric {k!r} is {len(v)} characters; at most {MAX_TEXT}")
            row[k] = v if t in _PLAIN else to_json_value(v, f"metric {k!r}")
        if step is not None and (type(step) is not int or not 0 <= step <= INT64_MAX):
            step = _step_value(step)
        if len(row) > 4096:
            raise InvalidValueError(f"run.log() got {len(row)} metrics; at most 4096 per call")
        with self._lock:
            if step is not None and step != self.step:
                if step < self.step:
                    raise InvalidValueError(
                        f"step {step} is below the current step {self.step}: steps only go up "
                        "(log without step= to use the current one)"
                    )
                self._close_locked()
                self.step = step
            dict.update(self.summary, row)  # converted already; before the row gets its _step
            if self._open is None:
                self._open = row
            else:
                self._open.update(row)
            self._open_dirty = True
            if commit if commit is not None else step is None:
                self._close_locked()
            waiting = len(self._closed)
        if waiting >= self.max_rows:
            self._wake.set()

    def _close_locked(self) -> None:
        if self._open is not None:
            self._open["_step"] = self.step
            self._closed.append(self._open)
            self._open = None
            self._open_dirty = False
            self.step += 1

    def config_changed(self) -> None:
        self._config_dirty = True

    # -- the flusher thread ----------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stopped:
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stopped:
                return
            with contextlib.suppress(BaseException):  # recorded in self.error; retried next time
                self.flush()

    def flush(self) -> None:
        """Write what is new as one chunk (if anything is), then a heartbeat."""
        with self._io:
            with self._lock:
                closed, self._closed = self._closed, []
                open_row = None
                if self._open is not None and self._open_dirty:
                    open_row = {**self._open, "_step": self.step}
                    self._open_dirty = False
                config_dirty, self._config_dirty = self._config_dirty, False
            summary = dict(self.summary)  # one C-level copy: safe while the training thread writes
            try:
                self._write(closed, open_row, summary, config_dirty)
            except BaseException as e:
                with self._lock:  # put everything back, in order, for the next attempt
                    self._closed[:0] = closed
                    if open_row is not None and self._open is not None:
                        self._open_dirty = True
                    self._config_dirty |= config_dirty
                self.error = e
                raise
            self.error = None

    def _write(
        self,
        closed: list[dict[str, Any]],
        open_row: dict[str, Any] | None,
        summary: dict[str, Any],
        config_dirty: bool,
    ) -> None:
        lines = [canonical_json(clean_json(r)) for r in closed]
        summary_json = canonical_json(clean_json(summary))
        config = clean_json(self._config()) if config_dirty and self._config else None
        if (
            lines
            or open_row is not None
            or config is not None
            or summary_json != self._last_summary
        ):
            rows = lines + ([canonical_json(clean_json(open_row))] if open_row else [])
            n = self.chunks + 1
            data = encode_chunk(self.run_id, n, rows, clean_json(summary), config)
            if len(data) > bounds.MAX_CHUNK_BYTES:  # no reader would take it (rows put back)
                raise InvalidValueError(
                    f"run {self.run_id}: {len(rows)} rows make a chunk of {len(data)} bytes; a chunk "
                    f"may have at most {bounds.MAX_CHUNK_BYTES}: flush more often (flush_rows=)"
                )
            try:
                self.root.create_exclusive(chunk_path(self.run_id, n), data)
            except ConflictError:
                # a retried PUT that had landed, or another process writing this run: only the
                # former is fine
                path = chunk_path(self.run_id, n)
                if self.root.read_many([path], limit=len(data)).get(path) != data:
                    raise ArtifactsError(
                        f"chunk {n} of run {self.run_id} was written by someone else; is the run "
                        "running twice?"
                    ) from None
            self.chunks = n
            self.lines.extend(lines)
            self._last_summary = summary_json
        beat = Heartbeat(
            time.time(),
            self.chunks,
            self.interval,
            {"host": socket.gethostname(), "pid": os.getpid()},
        )
        self.root.write(heartbeat_path(self.run_id), canonical_json(beat.to_dict()))

    def close(self) -> None:
        """Close the open step and stop the thread; the rows not flushed yet join `lines` without a
        chunk of their own (the finish entry's history blob holds them: one write fewer at finish)."""
        self._stopped = True
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=max(self.interval, 1.0) + 60)
        with self._io, self._lock:
            self._close_locked()
            closed, self._closed = self._closed, []
        self.lines.extend(canonical_json(clean_json(r)) for r in closed)
        _writers.discard(self)

    def pending(self) -> list[dict[str, Any]]:
        """Closed rows not flushed yet plus the open step (for the run's own `history()`)."""
        with self._lock:
            rows = list(self._closed)
            if self._open is not None:
                rows.append({**self._open, "_step": self.step})
        return rows


@atexit.register
def _flush_at_exit() -> None:
    """Runs still active when the interpreter exits keep what they logged (they are not finished)."""
    for w in list(_writers):
        with contextlib.suppress(BaseException):
            w.flush()
