"""How long we wait on S3: one bound, one retry loop, and a line on stderr for every retry.

Left to themselves, botocore retries a refused connection 4 times inside every request, s3fs retries
that request 5 times around it, and a request to an endpoint that accepts connections but never
answers waits for its read timeout on every attempt: a dead endpoint took 16-83 s to fail a ``put``
and 36-41 s to fail an ``ls``, and a black-holed one hung for minutes, silently. So botocore's retries
are turned off and its timeouts set to the bound, and every S3 request goes through `Patience.call`,
the only retry loop: transient failures (refused or cut connections, no answer in time, HTTP 5xx and
throttling) are retried with growing, jittered pauses, each retry says on stderr what is retried and
why, and once the endpoint has given no answer for ``$ARTIFACTS_S3_TIMEOUT`` seconds (default 20)
the request fails with one `BackendError` line.

The bound is a clock per endpoint, not per request: it starts when a request that later failed was
sent (or at the last answer, if that came later) and stops at the next answer of any kind, so a
command of many requests fails after about the bound however many of them were waiting. Once the
bound has passed, a request makes one attempt (a probe: the endpoint may be back) if no other probe
was made in the last few seconds, and fails at once otherwise. Every attempt has an answer-time
limit of half the bound (a stuck connection is retried on a fresh one) or what is left of it, plus
one second per MiB it sends (a slow link is not a dark endpoint).
"""

from __future__ import annotations

import asyncio
import errno
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, TextIO, TypeVar

from .errors import BackendError

__all__ = ["DEFAULT_TIMEOUT", "ENV", "Patience", "botocore_config", "s3_timeout", "transient"]

ENV = "ARTIFACTS_S3_TIMEOUT"
#: seconds an endpoint may stay silent before a request to it fails
DEFAULT_TIMEOUT = 20.0
#: the answer-time limit of an attempt grows by one second per this many bytes sent
_BYTES_PER_SECOND = 1024 * 1024
#: once the bound has passed: a probe's answer-time limit, and the least time between two probes
_PROBE = 5.0
#: pauses between attempts: the first, the growth factor, the longest
_FIRST_PAUSE, _GROWTH, _LONGEST_PAUSE = 0.5, 2.0, 4.0
#: a retry line within this many seconds of the last one is counted into the next one instead
_QUIET = 0.3

T = TypeVar("T")


def s3_timeout(env: dict[str, str] | os._Environ[str] | None = None) -> float:
    """``$ARTIFACTS_S3_TIMEOUT`` in seconds (default 20); a value that is not a positive number is
    refused with one line (at open, before any request)."""
    raw = (os.environ if env is None else env).get(ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 < value < 10**6:  # NaN, inf, zero and negative numbers fail this too
        raise BackendError(
            f"${ENV} must be a number of seconds between 0 and 1000000 (how long to wait on an "
            f"S3 endpoint that does not answer), not {raw!r}"
        )
    return value


def botocore_config(options: dict[str, Any], timeout: float) -> dict[str, Any]:
    """s3fs ``config_kwargs`` with botocore's own retries off and its connect and read timeouts at
    the bound, where the caller's options do not set them."""
    config = dict(options.get("config_kwargs") or {})
    config.setdefault("connect_timeout", timeout)
    config.setdefault("read_timeout", timeout)
    config.setdefault("retries", {"total_max_attempts": 1})
    return config


#: botocore and aiohttp exception names that mean the request never got an answer
_TRANSIENT_NAMES = (
    "EndpointConnectionError",
    "ConnectionClosedError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ProxyConnectionError",
    "HTTPClientError",
    "ClientConnectorError",
    "ClientOSError",
    "ServerDisconnectedError",
    "ServerTimeoutError",
    "ClientPayloadError",
    "IncompleteRead",
    "ResponseParserError",
)
#: S3 error codes worth another attempt (throttling, the service's own trouble)
_TRANSIENT_CODES = {
    "SlowDown",
    "ServiceUnavailable",
    "InternalError",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
}


def _chain(e: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    err: BaseException | None = e
    while err is not None and all(err is not o for o in out) and len(out) < 16:
        out.append(err)
        err = err.__cause__ or err.__context__
    return out


def _status(e: BaseException) -> tuple[int, str] | None:
    response = getattr(e, "response", None)
    if not isinstance(response, dict):
        return None
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return (int(status) if isinstance(status, int) else 0), code


def transient(e: BaseException) -> bool:
    """True if ``e`` says the endpoint did not answer (or answered "try again"), not that it refused
    the request: only those are retried."""
    if isinstance(e, BackendError):  # our own verdict (a dark endpoint): final
        return False
    for err in _chain(e):
        if isinstance(err, FileNotFoundError | FileExistsError | PermissionError):
            return False  # an answer (404, 412, 403) translated by s3fs
        if isinstance(err, TimeoutError | ConnectionError):
            return True
        if any(n in type(c).__name__ for c in type(err).__mro__ for n in _TRANSIENT_NAMES):
            return True
        st = _status(err)
        if st is not None:
            status, code = st
            return status >= 500 or status == 429 or code in _TRANSIENT_CODES
    return False


def cause(e: BaseException) -> str:
    """A few words for why a request failed (a retry line, the final error)."""
    for err in _chain(e):
        if isinstance(err, OSError) and err.errno in (errno.ECONNREFUSED, errno.ECONNRESET):
            return "connection refused" if err.errno == errno.ECONNREFUSED else "connection reset"
        name = type(err).__name__
        if "Disconnected" in name or "ConnectionClosed" in name:
            return "connection closed before the answer"
        st = _status(err)
        if st is not None:
            return f"HTTP {st[0]} {st[1]}".strip()
    text = str(e).strip().splitlines()
    detail = text[0][:120] if text else ""
    return f"{type(e).__name__}: {detail}" if detail else type(e).__name__


def _secs(x: float) -> str:
    return f"{x:.1f}" if x < 10 else f"{x:.0f}"


class Patience:
    """The retry loop and the dark clock of one endpoint (one per S3 filesystem object; all its
    requests run on that filesystem's event loop, so no lock is needed)."""

    def __init__(self, endpoint: str, timeout: float, out: TextIO | None = None) -> None:
        self.endpoint, self.timeout = endpoint, timeout
        self._out = out
        self._dark_since: float | None = None  # when the endpoint last went silent, if it has
        self._answered = time.monotonic()  # the last answer of any kind
        self._probed = float("-inf")  # the last attempt after the bound had passed
        self._said, self._hushed = float("-inf"), 0  # the last retry line, retries not written

    def left(self, now: float | None = None) -> float:
        """Seconds left before requests fail: the whole bound while the endpoint answers."""
        if self._dark_since is None:
            return self.timeout
        return self._dark_since + self.timeout - (time.monotonic() if now is None else now)

    async def call(
        self,
        attempt: Callable[[], Awaitable[T]],
        what: str,
        *,
        body: int = 0,
        limited: bool = True,
    ) -> T:
        """Run ``attempt()`` until it answers, retrying transient failures within the bound;
        ``what`` names the request for the retry lines and the final error, ``body`` is the number
        of bytes it sends (they lengthen its answer-time limit). ``limited=False``: no answer-time
        limit of our own, for requests whose answer may take long while the endpoint keeps the
        connection alive (a server-side copy): the read timeout of botocore still ends silence."""
        n = 1
        while True:
            started = time.monotonic()
            left = self.left(started)
            probe = left <= 0
            if probe:
                if started - self._probed < _PROBE:
                    silent = started - (self._dark_since or started)
                    raise BackendError(self._message(what, f"no answer for {silent:.0f}s"))
                self._probed = started
            # half the bound per attempt: a stuck connection is retried on a fresh one in time
            limit = min(left, self.timeout / 2) if not probe else min(self.timeout, _PROBE)
            limit += body / _BYTES_PER_SECOND
            try:
                out = await (asyncio.wait_for(attempt(), limit) if limited else attempt())
            except Exception as e:  # CancelledError is not an Exception: a cancel goes through
                if not transient(e):
                    self._answer()  # a refusal is an answer too: the endpoint is there
                    raise
                why = (
                    f"no answer within {_secs(limit)}s" if isinstance(e, TimeoutError) else cause(e)
                )
                if self._dark_since is None:
                    self._dark_since = max(started, self._answered)
                left = self.left()
                if probe or left < _FIRST_PAUSE / 4:
                    raise BackendError(self._message(what, why)) from e
                pause = min(
                    _LONGEST_PAUSE, _FIRST_PAUSE * _GROWTH ** (n - 1), left
                ) * random.uniform(0.8, 1.0)
                n += 1
                self._say(
                    f"artifacts: {what} failed ({why}); retrying in {pause:.1f}s "
                    f"(attempt {n}, {_secs(left)}s left)"
                )
                await asyncio.sleep(pause)
                continue
            self._answer()
            return out

    def _answer(self) -> None:
        self._dark_since, self._answered = None, time.monotonic()

    def _message(self, what: str, why: str) -> str:
        return (
            f"cannot reach {self.endpoint} within {self.timeout:g}s: {what} failed ({why}); check "
            f"the endpoint and the network, or raise ${ENV}"
        )

    def _say(self, line: str) -> None:
        """Write a retry line, unless another one went out just now: requests that fail together
        (16 uploads at once) are counted into the next line instead of one line each."""
        now = time.monotonic()
        if now - self._said < _QUIET:
            self._hushed += 1
            return
        if self._hushed:
            more = "1 more retry" if self._hushed == 1 else f"{self._hushed} more retries"
            line += f" (and {more} since the last line)"
        self._said, self._hushed = now, 0
        out = self._out or sys.stderr
        try:
            out.write(line + "\n")
            out.flush()
        except (OSError, ValueError):  # a closed or broken stderr must not fail the request
            pass
