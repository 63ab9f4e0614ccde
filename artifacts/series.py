"""A run's metric series as arrays, and the columnar blob a finished run stores them in.

Why: a run page drew its charts from the history blob, and parsing 13.7 MB of JSON lines (5 metrics x
100k steps) took most of the page's 500 ms budget. When a run with many history rows finishes (see
`artifacts.run`), it also stores each metric's steps and values as little-endian int64 / float64 arrays, one
blob content-addressed like the history blob and named in the finish entry (``series``). Readers use it
when it is there and sound; the history stays the record, and any doubt about a series blob (missing,
corrupt, too large, inconsistent) is a `StoreWarning` and a read of the history instead.

A metric's series is defined once, by `from_rows`, and the blob holds exactly that: the rows whose value
for the key is a finite number (an int or a float, not a bool), in step order (stable, so rows logged at
one step keep their order), with the row's ``_step`` (its position in the history where a row has none).

Blob layout: one header line, canonical JSON padded with spaces to a multiple of 8 bytes, ending in
``\\n``::

    {"format":"artifacts.series/1","metrics":[["loss",100000],...],"rows":100000}

then, for each metric in header order, its ``n`` int64 steps and its ``n`` float64 values. The blob holds
no offsets: the reader derives them from the counts and requires the blob to end where the last array
does, so no header can point a reader anywhere else.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .bounds import INT64_MAX
from .errors import ArtifactsError, NotFoundError, StoreWarning
from .manifest import canonical_json
from .untrusted import load_json

if TYPE_CHECKING:
    from storage import BlobStore

__all__ = [
    "FORMAT",
    "MAX_SERIES_BYTES",
    "MetricSeries",
    "decode",
    "encode",
    "from_rows",
    "load",
    "store_series",
]

FORMAT = "artifacts.series/1"
#: A series blob is read whole into memory, so one larger than this is refused (and the history read).
MAX_SERIES_BYTES = 2 * 2**30
#: Bytes of the header line; a header naming more metrics than fit is refused.
MAX_HEADER_BYTES = 16 * 2**20
_STEP = np.dtype("<i8")
_VALUE = np.dtype("<f8")
_PLAIN = frozenset({float, int, type(None)})


@dataclass(frozen=True, eq=False)
class MetricSeries:
    """One metric of one run: ``steps`` (int64) and ``values`` (float64, finite), in step order.

    The arrays may be read-only views of the blob they came from."""

    steps: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.steps)

    def equals(self, other: MetricSeries) -> bool:
        """Same steps and bit-for-bit the same values."""
        return np.array_equal(self.steps, other.steps) and np.array_equal(
            self.values.view(np.int64), other.values.view(np.int64)
        )


# -- from history rows -----------------------------------------------------------------------------
def _floats(values: list[Any]) -> np.ndarray:
    """``values`` as float64, NaN where one is no number (None, a bool, text, an int past float)."""
    if set(map(type, values)) <= _PLAIN:  # the usual case: numpy converts in C (None to NaN)
        try:
            return np.array(values, dtype=np.float64)
        except OverflowError:  # an int past a float's range
            pass
    return np.fromiter((_number(v) for v in values), dtype=np.float64, count=len(values))


def _number(v: Any) -> float:
    t = type(v)
    if t is float or (t is int and -(2**1023) < v < 2**1023):
        return float(v)
    return math.nan


def _steps(rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Each row's ``_step``, or its position where it has no int step in 0..2**63-1."""
    raw = [r.get("_step") for r in rows]
    if set(map(type, raw)) == {int}:
        try:
            steps = np.array(raw, dtype=np.int64)
            if not (steps < 0).any():
                return steps
        except OverflowError:
            pass
    return np.fromiter(
        (s if type(s) is int and 0 <= s <= INT64_MAX else i for i, s in enumerate(raw)),
        dtype=np.int64,
        count=len(raw),
    )


def from_rows(history: Iterable[Any], keys: Iterable[str] | None = None) -> dict[str, MetricSeries]:
    """Each metric of ``history`` (rows as `Run.history` returns them) with at least one finite value,
    by name in sorted order; ``keys`` limits it to those names. Column-wise with numpy."""
    rows = [r for r in history if isinstance(r, dict)]
    if not rows:
        return {}
    names = {k for k in set().union(*rows) if isinstance(k, str) and k and k[0] != "_"}
    if keys is not None:
        names &= set(keys)
    steps = _steps(rows)
    order = None
    if (np.diff(steps) < 0).any():  # not in step order already (ours always are)
        order = np.argsort(steps, kind="stable")
        steps = steps[order]
    out = {}
    for key in sorted(names):
        y = _floats([r.get(key) for r in rows])
        if order is not None:
            y = y[order]
        ok = np.isfinite(y)
        if ok.any():
            out[key] = MetricSeries(steps[ok], y[ok])
    return out


# -- the blob --------------------------------------------------------------------------------------
def encode(series: Mapping[str, MetricSeries], rows: int) -> bytes:
    """The blob of ``series`` (made by `from_rows` from ``rows`` history rows)."""
    header = canonical_json(
        {"format": FORMAT, "metrics": [[k, len(s)] for k, s in series.items()], "rows": rows}
    )
    header += b" " * (-(len(header) + 1) % 8) + b"\n"
    parts = [header]
    for s in series.values():
        parts += [s.steps.astype(_STEP).tobytes(), s.values.astype(_VALUE).tobytes()]
    return b"".join(parts)


def decode(data: bytes) -> dict[str, MetricSeries]:
    """The series in a blob; `ValueError` says what is wrong with one that is not sound.

    Everything is checked before an array is made: the header's shape and bounds, that the counts
    account for every byte, then that steps are in order and values finite (what `from_rows` makes).
    """
    end = data.find(b"\n", 0, MAX_HEADER_BYTES)
    if end < 0:
        raise ValueError("it has no header line")
    start = end + 1
    if start % 8:
        raise ValueError("its header is not padded to 8 bytes")
    header = load_json(data[:end], "its header")
    if header.get("format") != FORMAT:
        raise ValueError(f"it has an unknown format {str(header.get('format'))[:40]!r}")
    rows, metrics = header.get("rows"), header.get("metrics")
    if type(rows) is not int or not 0 < rows <= MAX_SERIES_BYTES // 16:
        raise ValueError("its row count is not a positive int in range")
    if not isinstance(metrics, list):
        raise ValueError("its metrics are not a list")
    counts: list[tuple[str, int]] = []
    for m in metrics:
        if not (isinstance(m, list) and len(m) == 2 and isinstance(m[0], str)):
            raise ValueError("a metric is not a [name, count] pair")
        name, n = m
        if not name or name[0] == "_" or type(n) is not int or not 0 < n <= rows:
            raise ValueError(f"metric {name[:40]!r} has a bad name or count")
        counts.append((name, n))
    if len({name for name, _ in counts}) != len(counts):
        raise ValueError("it names a metric twice")
    total = start + 16 * sum(n for _, n in counts)
    if total != len(data):
        raise ValueError(f"it has {len(data)} bytes where its header accounts for {total}")
    out = {}
    offset = start
    for name, n in counts:
        steps = np.frombuffer(data, _STEP, n, offset)
        values = np.frombuffer(data, _VALUE, n, offset + 8 * n)
        offset += 16 * n
        if (steps < 0).any() or (n > 1 and (np.diff(steps) < 0).any()):
            raise ValueError(f"the steps of metric {name[:40]!r} are out of order")
        if not np.isfinite(values).all():
            raise ValueError(f"metric {name[:40]!r} holds a value that is not a finite number")
        out[name] = MetricSeries(steps, values)
    return out


def store_series(blobs: BlobStore, rows: Sequence[Any]) -> str | None:
    """Put the series blob of a finished run's history ``rows``; None where it has no metric with a
    number."""
    series = from_rows(rows)
    if not series:
        return None
    return str(blobs.put_bytes(encode(series, len(rows))).digest)


def load(blobs: BlobStore, digest: str, where: str) -> dict[str, MetricSeries] | None:
    """The series in blob ``digest`` (of ``where``, e.g. ``run 3fa9...``), or None with a
    `StoreWarning` if it is missing or not sound: the caller then reads the history."""
    try:
        size = blobs.size(digest)  # before the read: no buffer of a hostile size
        if size > MAX_SERIES_BYTES:
            raise ValueError(f"it has {size} bytes, over the {MAX_SERIES_BYTES} a reader takes")
        return decode(blobs.read_bytes(digest, size=size))  # verified: it hashes to its name
    except (ValueError, ArtifactsError) as e:  # a bad name (from a snapshot) or a failed read too
        what = "is missing" if isinstance(e, NotFoundError) else f"is unusable: {e}"
        warnings.warn(
            f"the series blob {digest[:16]}... of {where} {what}; reading its history instead",
            StoreWarning,
            stacklevel=3,
        )
        return None
