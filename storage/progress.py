"""Progress callbacks (fsspec's ``Callback``) that several concurrent transfers can share.

Apart from `storage.streams` because fsspec is imported here: the package costs 60 ms of start-up
(asyncio, importlib.metadata), which a command that moves no bytes (an unchanged re-put of a local
store, ``ls``) should not pay. Modules on those paths import this one where a transfer starts.
"""

from __future__ import annotations

import threading
from typing import Any

from fsspec.callbacks import Callback, NoOpCallback

__all__ = ["Relay", "Tally", "as_callback"]


def as_callback(cb: Callback | None) -> Callback:
    return cb if cb is not None else NoOpCallback()


class Relay(Callback):
    """Forwards byte progress of one transfer into a shared callback without resetting its size.

    Several transfers run in threads at once and ``Callback.relative_update`` is a read-modify-write,
    so updates are serialised (otherwise progress would lose bytes).
    """

    # re-entrant: a Relay may forward into another Relay (nested transfers)
    _lock = threading.RLock()

    def __init__(self, parent: Callback | None) -> None:
        super().__init__()
        self._parent = as_callback(parent)

    def set_size(self, size: int | None) -> None:
        pass

    def relative_update(self, inc: int = 1) -> None:
        with Relay._lock:
            self._parent.relative_update(inc)

    def absolute_update(self, value: int) -> None:
        pass

    def call(self, *args: Any, **kwargs: Any) -> None:
        pass


class Tally(Callback):
    """Passes progress through to ``inner`` and counts the bytes reported."""

    def __init__(self, inner: Callback) -> None:
        super().__init__()
        self._inner = inner
        self.n = 0

    def set_size(self, size: int | None) -> None:
        self._inner.set_size(size)

    def relative_update(self, inc: int = 1) -> None:
        self.n += inc
        self._inner.relative_update(inc)

    def call(self, *args: Any, **kwargs: Any) -> None:
        pass
