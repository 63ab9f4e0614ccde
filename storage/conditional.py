"""Refuse to commit through an endpoint whose exclusive create is not exclusive.

The commit log is exactly as safe as `Root.create_exclusive`, on S3 a ``PutObject`` with
``If-None-Match: *``. Some S3-compatible endpoints (older MinIO and Ceph releases, proxies and
gateways that drop the header) accept the request and ignore the condition: the second writer of log
entry N then silently replaces the first, and a commit is lost with no error anywhere. Nothing a
reader sees afterwards tells, so the check has to come before the first write.

Before a process first creates an object exclusively on a remote root, it creates a probe object
twice; the second create must be refused. The answer is remembered per machine and location (in the
per-user cache, next to the index), so the probe's three requests are paid once, not per commit.
``$ARTIFACTS_SINGLE_WRITER=1`` skips the refusal (with a warning) for a store that is only ever written
by one process at a time, where the condition is never tested by a race.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
import warnings
from pathlib import Path

from .backend import Root
from .errors import ArtifactsError, BackendError, ConflictError

__all__ = ["SINGLE_WRITER_ENV", "ensure_exclusive_creates"]

SINGLE_WRITER_ENV = "ARTIFACTS_SINGLE_WRITER"
_PROBE_DIR = "tmp"  # gc's leftovers of killed writers live here too
_checked: set[str] = set()
_lock = threading.Lock()


def _marker(root: Root) -> tuple[str, Path]:
    from .hashing import hash_bytes
    from .statcache import default_cache_dir

    key = hash_bytes(json.dumps(root.location(), sort_keys=True).encode())[:32]
    return key, default_cache_dir() / "endpoints" / f"{key}.json"


def ensure_exclusive_creates(root: Root) -> None:
    """Raise `BackendError` if ``root``'s endpoint lets a second exclusive create of one key succeed.

    A no-op for local and memory roots (their creates are a link that fails on an existing name), and
    after the first successful check of a location on this machine.
    """
    if not root.remote:
        return
    key, marker = _marker(root)
    with _lock:
        if key in _checked:
            return
        if marker.is_file():
            _checked.add(key)
            return
        if _probe(root):
            _checked.add(key)
            _remember(marker, root)
            return
    msg = (
        f"{root.url}: the endpoint ignores If-None-Match on PUT, so two writers could overwrite each "
        "other's commits; use an S3 endpoint with conditional writes (AWS S3 has them since "
        f"2024-08), or set {SINGLE_WRITER_ENV}=1 if only one process ever writes this store at a time"
    )
    if os.environ.get(SINGLE_WRITER_ENV) == "1":
        warnings.warn(msg.split(";")[0] + f"; writing anyway ({SINGLE_WRITER_ENV}=1)", stacklevel=3)
        with _lock:
            _checked.add(key)
        return
    raise BackendError(msg)


def _remember(marker: Path, root: Root) -> None:
    """Write the marker; where the cache cannot take it (a full disk), the next process probes again."""
    tmp = marker.with_name(f".{marker.name}.{uuid.uuid4().hex}")
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({**root.location(), "checked_at": time.time()}))
        os.replace(tmp, marker)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _probe(root: Root) -> bool:
    """True if a second exclusive create of a fresh key is refused."""
    rel = f"{_PROBE_DIR}/probe-{uuid.uuid4().hex}"
    root.create_exclusive(rel, b"1")
    try:
        root.create_exclusive(rel, b"2")
    except ConflictError:
        return True
    finally:
        with contextlib.suppress(ArtifactsError, OSError):  # a leftover probe under tmp/ is harmless
            root.delete(rel)
    return False
