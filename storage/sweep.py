"""Sweeping unreferenced blobs for gc, safely against a concurrent put that dedups onto them.

The catalog decides what is unreferenced; this module decides how a doomed blob goes on each backend:

- on local disk it is first renamed into a quarantine name under ``tmp/`` (atomic) and its mtime
  re-read there: a put that freshened it before the rename is seen and the blob is put back; a put
  after the rename finds no blob and writes it again. A killed gc leaves quarantined blobs, which the
  next gc puts back first (`recover_quarantine`) to be judged again;
- elsewhere it is HEADed right before it goes, and it goes to the trash (see `storage.trash`), not
  away: a dedup hit there refreshes a blob's age only when it is older than ``freshen_after``, so only
  a later pass that replayed the log (`empty_trash`) purges it, or puts it back if a commit refers to it.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .backend import mtime_of
from .errors import NotFoundError
from .trash import list_trash, move_to_trash, purge, restore

if TYPE_CHECKING:
    from .blobs import BlobInfo, BlobStore

__all__ = ["QUARANTINE", "empty_trash", "older", "recover_quarantine", "sweep"]

QUARANTINE = "gc-"  # name prefix of a quarantined blob under tmp/


def older(blobs: BlobStore, mtime: float | None, cutoff: float) -> bool:
    """True if a blob modified at ``mtime`` is older than ``cutoff``, allowing for the backend's
    timestamp resolution (S3 keeps whole seconds: a blob counts as that much younger)."""
    return mtime is not None and mtime + blobs.root.mtime_slack < cutoff


def sweep(blobs: BlobStore, blob: BlobInfo, cutoff: float) -> bool:
    """Remove one unreferenced blob unless a put reused it since it was listed; True if it went."""
    if blobs.root.os_paths:
        return _sweep_local(blobs, blob.digest, cutoff)
    rel = blobs.relpath(blob.digest)
    try:
        mtime = mtime_of(blobs.root.info(rel))
    except NotFoundError:
        return False
    if not older(blobs, mtime, cutoff):
        return False
    return move_to_trash(blobs.root, rel, blob.digest)


def _sweep_local(blobs: BlobStore, digest: str, cutoff: float) -> bool:
    target = blobs.root.local(blobs.relpath(digest))
    quarantine = blobs.root.local(f"{blobs.tmp_dir}/{QUARANTINE}{digest}-{uuid.uuid4().hex[:8]}")
    os.makedirs(os.path.dirname(quarantine), exist_ok=True)
    try:
        os.rename(target, quarantine)
    except FileNotFoundError:
        return False  # another gc took it
    try:
        fresh = os.stat(quarantine).st_mtime >= cutoff
    except FileNotFoundError:
        return False
    if fresh:  # a put reused it after we listed: it goes back, whoever rewrote it meanwhile
        with contextlib.suppress(FileExistsError):
            os.link(quarantine, target)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(quarantine)
    return not fresh


def recover_quarantine(blobs: BlobStore) -> None:
    """Put back blobs that a killed gc had quarantined but not yet deleted (local roots only)."""
    if not blobs.root.os_paths:
        return
    d = blobs.root.local(blobs.tmp_dir)
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        return
    for name in names:
        if not name.startswith(QUARANTINE):
            continue
        digest = name[len(QUARANTINE) :].split("-", 1)[0]
        path = os.path.join(d, name)
        try:
            target = blobs.root.local(blobs.relpath(digest))
        except ValueError:
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with contextlib.suppress(FileExistsError, FileNotFoundError):
            os.link(path, target)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def empty_trash(
    blobs: BlobStore, live: Iterable[str], cutoff: float, *, everything: bool = False
) -> tuple[str, ...]:
    """Put back trashed blobs that are ``live`` (digests a commit refers to, replayed after the
    sweep); purge those trashed before ``cutoff`` (``everything``: all others). Returns those put back."""
    if blobs.root.os_paths:
        return ()
    live = set(live)
    back = []
    for digest, info in list_trash(blobs.root):
        if digest in live:
            restore(blobs.root, blobs.relpath(digest), digest)
            back.append(digest)
        elif everything or older(blobs, mtime_of(info), cutoff):
            purge(blobs.root, digest)
    return tuple(back)
