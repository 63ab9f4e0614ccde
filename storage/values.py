"""What the blob store answers with: frozen values, shared by its modules (no I/O here)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["BlobInfo", "LocalBlob", "PutResult"]


@dataclass(frozen=True)
class PutResult:
    """What a put did: the digest and size, and whether bytes were actually written (False = dedup)."""

    digest: str
    size: int
    written: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BlobInfo:
    """A stored blob as a listing shows it (``mtime``: seconds since the epoch, if the backend has one)."""

    digest: str
    size: int
    mtime: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LocalBlob:
    """A blob as a local file to memory-map (see `BlobStore.local_blob`): ``trusted`` when it was
    hashed on this machine before and is unchanged since, so it need not be hashed again."""

    digest: str
    path: Path
    size: int
    trusted: bool
    stat: os.stat_result
