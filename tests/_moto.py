"""The moto S3 server of the tests and benchmarks, made to decide conditional PUTs as S3 does."""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["atomic_conditional_puts"]

_PUT_LOCK = threading.Lock()


def atomic_conditional_puts() -> None:
    """Make moto's conditional PUT as atomic as S3's. moto checks ``If-None-Match: *`` and then
    stores the object in two steps of one request thread, so two writers racing for one log entry
    can both get 200 and the later one silently replaces the earlier (seen as an 8-process commit
    test whose entry 13 named another entry 12 than the one stored). S3 decides the race in one
    step; the commit protocol relies on that, so the test server must too."""
    from moto.s3.responses import S3Response

    put = S3Response.put_object
    if getattr(put, "_atomic", False):
        return

    def atomic_put(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.headers.get("If-None-Match") is None:
            return put(self, *args, **kwargs)
        with _PUT_LOCK:
            return put(self, *args, **kwargs)

    atomic_put._atomic = True  # type: ignore[attr-defined]
    S3Response.put_object = atomic_put  # type: ignore[method-assign]
