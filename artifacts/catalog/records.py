"""Typed records read from the index: what `Run` and `ArtifactVersion` are built from.

The index stores JSON columns as text and booleans as integers; these records are the one place that
turns a row into Python values, so the facade, the CLI, lineage and the UI all see the same thing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from types import MappingProxyType
from typing import Any

from ..manifest import FileEntry
from . import jsoncol

__all__ = ["RunRecord", "VersionRecord", "file_entry"]


def _loads(text: str | None, empty: Any) -> Any:
    return jsoncol.loads(text) if text else empty


@dataclass(frozen=True)
class RunRecord:
    """A run as the log made it: started, maybe finished."""

    id: str
    project: str
    name: str | None
    group: str | None
    job_type: str | None
    user: str
    host: str | None
    status: str
    config: Mapping[str, Any]
    summary: Mapping[str, Any]
    command: tuple[str, ...] | None
    git: str | None
    env: Mapping[str, Any]
    started_at: str
    finished_at: str | None
    history: str | None  # digest of the metric history blob
    seq: int
    tags: tuple[str, ...] = ()
    notes: str = ""
    chunks: int | None = None  # metric-history chunks the run flushed (None: none recorded)
    series: str | None = None  # digest of the metric series blob (`artifacts.series`), if any

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> RunRecord:
        command = _loads(row["command"], None)
        return cls(
            id=row["id"],
            project=row["project"],
            name=row["name"],
            group=row["group_"],
            job_type=row["job_type"],
            user=row["user"],
            host=row["host"],
            status=row["status"],
            config=MappingProxyType(_loads(row["config"], {})),
            summary=MappingProxyType(_loads(row["summary"], {})),
            command=tuple(command) if command is not None else None,
            git=row["git"],
            env=MappingProxyType(_loads(row["env"], {})),
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            history=row["history"],
            seq=row["seq"],
            tags=tuple(_loads(row["tags"], [])),
            notes=row["notes"] or "",
            chunks=row["chunks"],
            series=row["series"],
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self) | {"config": dict(self.config), "summary": dict(self.summary)}
        d["env"] = dict(self.env)
        d["command"] = list(self.command) if self.command is not None else None
        d["tags"] = list(self.tags)
        return d


@dataclass(frozen=True)
class VersionRecord:
    """One version of an artifact as the index holds it (``deleted`` is the deleting entry, or 0)."""

    id: int
    name: str
    version: int
    type: str
    digest: str
    size: int
    metadata: Mapping[str, Any]
    description: str
    user: str
    created_at: str
    run_id: str | None
    deleted: int
    seq: int
    aliases: tuple[str, ...]

    @classmethod
    def from_row(cls, row: sqlite3.Row, aliases: tuple[str, ...]) -> VersionRecord:
        return cls(
            id=row["id"],
            name=row["name"],
            version=row["version"],
            type=row["type"],
            digest=row["digest"],
            size=row["size"],
            metadata=MappingProxyType(_loads(row["metadata"], {})),
            description=row["description"] or "",
            user=row["user"],
            created_at=row["created_at"],
            run_id=row["run_id"],
            deleted=row["deleted"],
            seq=row["seq"],
            aliases=aliases,
        )


def file_entry(row: sqlite3.Row) -> FileEntry:
    """A row of the files table as the manifest entry it came from."""
    meta = jsoncol.loads(row["meta"]) if row["meta"] else {}
    return FileEntry(row["path"], row["digest"], row["size"], MappingProxyType(meta))
