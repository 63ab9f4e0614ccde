"""Shared bits for the benchmark scripts: timing medians, tables, and a moto S3 server on loopback."""

from __future__ import annotations

import contextlib
import os
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def median_time(
    fn: Callable[[], Any], repeat: int = 5, setup: Callable[[], Any] | None = None
) -> float:
    times = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


CHUNK = 8 << 20


def make_random_file(path: Path, size: int) -> None:
    """Write ``size`` random (incompressible, undeduplicable) bytes to ``path``, unless already there."""
    if path.exists() and path.stat().st_size == size:
        return
    print(f"writing {size / 2**20:.0f} MiB of random bytes to {path} ...", flush=True)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, CHUNK)
            f.write(os.urandom(n))
            left -= n


def read_through(path: Path) -> None:
    """Bring a file into the page cache: every contender is measured on a page-cached input."""
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(CHUNK)
        while f.readinto(buf):
            pass


def load_line() -> str:
    """The load average, printed with every table: load from other processes slows CPU-bound rows."""
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"load average (1/5/15 min) at the end: {load} on {os.cpu_count()} CPUs"


def interleaved_medians(
    fns: dict[str, Callable[[], Any]], repeat: int = 9, setup: Callable[[], Any] | None = None
) -> dict[str, float]:
    """Median time of each function, run in alternation (a, b, a, b, ...) so that a noisy neighbour or a
    slow spell of the machine hits every contender alike, as a ratio needs."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            if setup is not None:
                setup()
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def table(rows: list[tuple[Any, ...]], header: tuple[str, ...]) -> str:
    cells = [tuple(str(c) for c in header)] + [tuple(_fmt(c) for c in r) for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(c: Any) -> str:
    if isinstance(c, float):
        return f"{c:.4g}"
    return str(c)


def make_bucket(endpoint: str) -> str:
    """A fresh bucket on ``endpoint``, created with boto3 rather than the code being measured."""
    import boto3

    bucket = f"bench-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket=bucket)
    return bucket


@contextlib.contextmanager
def moto_s3() -> Iterator[tuple[str, dict[str, Any]]]:
    """A moto S3 server on 127.0.0.1 with one fresh bucket: yields (s3 url, storage_options)."""
    from moto.server import ThreadedMotoServer

    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(k, "testing")
    from tests._moto import atomic_conditional_puts

    atomic_conditional_puts()  # moto's If-None-Match is check-then-put; S3's is one step
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    bucket = make_bucket(endpoint)
    opts = {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
    }
    try:
        yield f"s3://{bucket}/store", opts
    finally:
        server.stop()


def quiet_werkzeug() -> None:
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)


def parse_size(text: str) -> int:
    """``256M``, ``1G``, ``4KiB``, ``1000`` (powers of 1024) as bytes, for a benchmark's size flags."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    t = text.strip().lower().rstrip("ib").rstrip("b")
    if t and t[-1] in units:
        return int(float(t[:-1]) * units[t[-1]])
    return int(t)
