"""What writers that died mid-write leave behind, removed by gc once older than its grace period.

- S3 multipart uploads that were neither completed nor aborted: a put aborts its upload on any error,
  but when the endpoint went dark the abort cannot get through either (6 such uploads after 8 trials
  of a dying endpoint). They are invisible to every listing yet billed for their parts, so gc lists
  the uploads under the store's prefix and aborts those begun before the cutoff.
- temp files ``.tmp-<hex>`` of a local root, written beside an object before it is linked into place
  (`LocalRoot.create_exclusive`: log entries, packs, snapshots, run chunks, ``store.json``): a writer
  killed between the two leaves one. Nothing reads them (every listing skips the name); gc removes
  those older than the cutoff. ``blobs/`` holds none (local puts write under ``tmp/``, which
  `BlobStore.clean_tmp` empties).

The cutoff protects writers still at work: an upload or a temp file younger than the grace period
may belong to a put in progress.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from .backend import Root

__all__ = ["TEMP_PREFIX", "Leftovers", "clean_leftovers"]

#: name prefix of the temp file a local exclusive create writes before linking it into place
TEMP_PREFIX = ".tmp-"
#: top-level folders of a store that hold no temp files of ours (and may be huge: not walked)
_NOT_WALKED = {"blobs", "tmp", "trash"}


@dataclass(frozen=True)
class Leftovers:
    """What was removed (or, with ``dry_run``, would be): uploads as (path, upload id), temp files as
    paths relative to the root."""

    uploads: tuple[tuple[str, str], ...]
    temp_files: tuple[str, ...]


def clean_leftovers(root: Root, cutoff: float, *, dry_run: bool = False) -> Leftovers:
    """Abort the multipart uploads and remove the temp files under ``root`` older than ``cutoff``
    (seconds since the epoch)."""
    slack = root.mtime_slack
    uploads = tuple(
        (rel, uid)
        for rel, uid, started in root.uploads()
        if started is not None and started + slack < cutoff
    )
    temps = tuple(_old_temp_files(root, cutoff)) if root.os_paths else ()
    if not dry_run:
        for rel, uid in uploads:
            root.abort_upload(rel, uid)
        for rel in temps:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(root.local(rel))
    return Leftovers(uploads, temps)


def _old_temp_files(root: Root, cutoff: float) -> list[str]:
    base = root.local("")
    out = []
    for here, dirs, files in os.walk(base):
        rel_dir = os.path.relpath(here, base)
        if rel_dir == ".":
            dirs[:] = [d for d in dirs if d not in _NOT_WALKED]
        for name in files:
            if not name.startswith(TEMP_PREFIX):
                continue
            path = os.path.join(here, name)
            try:
                mtime = os.lstat(path).st_mtime
            except FileNotFoundError:
                continue
            if mtime < cutoff:
                out.append(name if rel_dir == "." else f"{rel_dir}/{name}".replace(os.sep, "/"))
    return sorted(out)
