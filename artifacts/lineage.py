"""`Lineage`: the graph of runs and versions around one version, with text renderings."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Lineage", "LineageEdge", "LineageNode"]


@dataclass(frozen=True)
class LineageNode:
    """A run (``id`` = ``run/<run id>``) or a version (``id`` = ``name:vN``)."""

    id: str
    kind: str  # "run" | "version"
    label: str
    attrs: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "label": self.label, **self.attrs}


@dataclass(frozen=True)
class LineageEdge:
    """Data flow: ``produced`` goes run -> version, ``consumed`` goes version -> run."""

    source: str
    target: str
    kind: str

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "kind": self.kind}


@dataclass(frozen=True)
class Lineage:
    root: str
    direction: str
    nodes: tuple[LineageNode, ...]
    edges: tuple[LineageEdge, ...]

    def node(self, node_id: str) -> LineageNode:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)

    def versions(self) -> list[LineageNode]:
        return [n for n in self.nodes if n.kind == "version"]

    def runs(self) -> list[LineageNode]:
        return [n for n in self.nodes if n.kind == "run"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "direction": self.direction,
            "nodes": [n.to_dict() for n in self.nodes],
            "edges": [e.to_dict() for e in self.edges],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def to_dot(self) -> str:
        ids = {n.id: f"n{i}" for i, n in enumerate(self.nodes)}
        lines = ["digraph lineage {", "  rankdir=LR;"]
        for n in self.nodes:
            shape = "box" if n.kind == "run" else "ellipse"
            style = ', style="bold"' if n.id == self.root else ""
            lines.append(f"  {ids[n.id]} [label={json.dumps(n.label)}, shape={shape}{style}];")
        for e in self.edges:
            lines.append(f"  {ids[e.source]} -> {ids[e.target]} [label={json.dumps(e.kind)}];")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def to_mermaid(self) -> str:
        ids = {n.id: f"n{i}" for i, n in enumerate(self.nodes)}
        lines = ["flowchart LR"]
        for n in self.nodes:
            text = n.label.replace('"', "'")
            lines.append(
                f'  {ids[n.id]}["{text}"]' if n.kind == "run" else f'  {ids[n.id]}(["{text}"])'
            )
        for e in self.edges:
            lines.append(f"  {ids[e.source]} -->|{e.kind}| {ids[e.target]}")
        return "\n".join(lines) + "\n"

    def to_tree(self) -> str:
        """An indented view from the root, following the lineage's direction (for terminals)."""
        up = self.direction != "downstream"
        children: dict[str, list[LineageEdge]] = {}
        for e in self.edges:
            key = e.target if up else e.source
            children.setdefault(key, []).append(e)
        labels = {n.id: n.label for n in self.nodes}
        lines: list[str] = [labels.get(self.root, self.root)]
        seen = {self.root}

        def walk(node: str, indent: str) -> None:
            kids = children.get(node, [])
            for i, e in enumerate(kids):
                other = e.source if up else e.target
                last = i == len(kids) - 1
                verb = {
                    "produced": "produced by" if up else "produced",
                    "consumed": "consumed" if up else "consumed by",
                }[e.kind]
                lines.append(
                    f"{indent}{'└── ' if last else '├── '}{verb} {labels.get(other, other)}"
                )
                if other not in seen:
                    seen.add(other)
                    walk(other, indent + ("    " if last else "│   "))

        walk(self.root, "")
        return "\n".join(lines) + "\n"
