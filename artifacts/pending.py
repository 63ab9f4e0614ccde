"""Checkpoints logged in the background: ``run.log_artifact(artifact, wait=False)``.

The training thread pays for one memory copy of the artifact's in-memory buffers (the tensors), so it
may keep changing them at once; a per-run worker thread then uploads and commits, one artifact after the
other in the order they were logged. Crash safety is the store's: blobs go up before the log entry that
names them, so a process killed mid-upload leaves at most unreferenced blobs (gc removes them), never a
half-committed version.

Errors are never lost: each surfaces on `PendingVersion.result`, and one nobody asked for is raised by
the run's next ``log_artifact`` or by ``finish()``, which waits for every pending upload.

Memory is bounded: copies held by pending uploads may total at most ``limit`` bytes; a further
``log_artifact(wait=False)`` waits (in the training thread) until enough of them are done. A single
artifact larger than the limit is still accepted when nothing else is pending. Within an upload each
buffer's copy gives its pages back as soon as its blob is stored (`artifacts.bufcopy.release`), so the
put writes its new blobs into memory the copy just held rather than into memory untouched for long
(which costs a host fault per page on this VM: benchmarks/README, "wait=False time to commit").
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING

from .artifact import Artifact
from .bufcopy import copy_buffers, release

if TYPE_CHECKING:
    from .version import ArtifactVersion

__all__ = ["DEFAULT_PENDING_BYTES", "PendingUploads", "PendingVersion", "snapshot"]

#: Bytes of copies that pending uploads may hold (``$ARTIFACTS_PENDING_BYTES`` overrides it).
DEFAULT_PENDING_BYTES = 4 << 30


class PendingVersion:
    """The handle `Run.log_artifact` returns with ``wait=False``: a version being uploaded."""

    def __init__(self, name: str, future: Future[ArtifactVersion], owner: PendingUploads) -> None:
        self.name = name
        self._future = future
        self._owner = owner

    def __repr__(self) -> str:
        state = "done" if self._future.done() else "pending"
        return f"PendingVersion({self.name!r}, {state})"

    def done(self) -> bool:
        """True once the upload and commit finished (or failed)."""
        return self._future.done()

    def result(self, timeout: float | None = None) -> ArtifactVersion:
        """Wait for the commit and return the version; raises the upload's error, if any (which then
        counts as surfaced: ``finish()`` will not raise it again)."""
        try:
            return self._future.result(timeout)
        except BaseException:
            if self._future.done():
                self._owner.surfaced(self._future)
            raise

    def exception(self, timeout: float | None = None) -> BaseException | None:
        return self._future.exception(timeout)


class PendingUploads:
    """The background uploads of one run: one worker thread, a byte budget for the copies."""

    def __init__(self, limit: int | None = None) -> None:
        env = os.environ.get("ARTIFACTS_PENDING_BYTES")
        self.limit = limit if limit is not None else int(env) if env else DEFAULT_PENDING_BYTES
        self._pool: ThreadPoolExecutor | None = None
        self._cond = threading.Condition()
        self._held = 0
        self._futures: list[Future[ArtifactVersion]] = []
        self._unsurfaced: list[Future[ArtifactVersion]] = []
        self._seen: set[Future[ArtifactVersion]] = set()

    def submit(
        self, artifact: Artifact, upload: Callable[[Artifact, Callable[[str], None]], ArtifactVersion]
    ) -> PendingVersion:
        """Copy ``artifact``'s buffers (within the byte budget), then ``upload(copy, stored)`` in the
        background, where ``stored(path)`` frees that buffer's copy once its blob is stored (the
        upload must not read it again). Raises first any earlier background error nobody has seen."""
        self.raise_unsurfaced()
        nbytes = sum(s.size for s in artifact if s.data is not None)
        with self._cond:
            self._cond.wait_for(lambda: self._held == 0 or self._held + nbytes <= self.limit)
            self._held += nbytes
        try:
            copy = snapshot(artifact)
        except BaseException:
            self._release(nbytes)
            raise
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="artifacts-upload")

        def stored(path: str) -> None:
            release(copy._staged[path].data)

        def job() -> ArtifactVersion:
            try:
                return upload(copy, stored)
            finally:
                copy._staged.clear()  # drop the copies before waking a waiting producer
                self._release(nbytes)

        future = self._pool.submit(job)
        future.add_done_callback(self._on_done)
        with self._cond:
            self._futures.append(future)
        return PendingVersion(artifact.name, future, self)

    def _release(self, nbytes: int) -> None:
        with self._cond:
            self._held -= nbytes
            self._cond.notify_all()

    def _on_done(self, future: Future[ArtifactVersion]) -> None:
        # runs after waiters of the future woke up: result() may have surfaced the error already
        if future.exception() is not None:
            with self._cond:
                if future not in self._seen:
                    self._unsurfaced.append(future)

    def surfaced(self, future: Future[ArtifactVersion]) -> None:
        with self._cond:
            self._seen.add(future)
            if future in self._unsurfaced:
                self._unsurfaced.remove(future)

    def raise_unsurfaced(self) -> None:
        """Raise the first background error not yet seen by anyone (once)."""
        with self._cond:
            if not self._unsurfaced:
                return
            future = self._unsurfaced.pop(0)
        exc = future.exception()
        assert exc is not None
        raise exc

    def wait_all(self) -> None:
        """Wait until every pending upload has committed or failed."""
        with self._cond:
            futures = list(self._futures)
            self._futures.clear()
        wait(futures)  # errors stay in the futures, for raise_unsurfaced

    def close(self) -> None:
        self.wait_all()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def snapshot(artifact: Artifact) -> Artifact:
    """A copy of ``artifact`` whose in-memory buffers are private copies (one memory copy each, made
    on every core: `artifacts.bufcopy`), so the caller may change its tensors as soon as this
    returns. Local files are not copied: a file that changes while being stored is re-read or refused
    by the put."""
    copy = Artifact(
        artifact.name, artifact.type, description=artifact.description, metadata=artifact.metadata
    )
    staged = list(artifact)
    mem = {s.path: s.data for s in staged if s.data is not None}
    copies = dict(zip(mem, copy_buffers(list(mem.values())), strict=True))
    for s in staged:
        if s.path in copies:
            s = dataclasses.replace(s, data=copies[s.path])
        copy._staged[s.path] = s
    return copy
