"""A lineage graph laid out left to right as layers (data flows rightwards), for an SVG drawn by a template.

Layers come from the longest path from a source, order within a layer from a few barycentre sweeps (the
Sugiyama recipe, small enough to need no library). Siblings that look alike - same artifact or job type,
same neighbours, e.g. the six checkpoints of one training run that nothing else used - are collapsed
into one node that links to their list, as W&B does, so a run with 100 epochs stays one readable column.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..lineage import Lineage, LineageNode

__all__ = ["COLLAPSE_AT", "GraphEdge", "GraphNode", "LaidOutGraph", "layout"]

COLLAPSE_AT = 3  # this many look-alike siblings (or more) become one node
NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 190, 44, 56, 18, 12


@dataclass(frozen=True)
class GraphNode:
    id: str
    kind: str  # "run" | "version" | "group"
    label: str
    sublabel: str
    href: str | None
    x: int
    y: int
    root: bool = False
    members: tuple[str, ...] = ()
    status: str | None = None

    @property
    def w(self) -> int:
        return NODE_W

    @property
    def h(self) -> int:
        return NODE_H


@dataclass(frozen=True)
class GraphEdge:
    source: str
    target: str
    kind: str
    path: str  # an SVG path from the source's right side to the target's left side


@dataclass(frozen=True)
class LaidOutGraph:
    nodes: tuple[GraphNode, ...]
    edges: tuple[GraphEdge, ...]
    width: int
    height: int
    collapsed: int = 0  # how many nodes were folded into group nodes
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "nodes": [
                {"id": n.id, "kind": n.kind, "label": n.label, "members": list(n.members)}
                for n in self.nodes
            ],
            "edges": [{"source": e.source, "target": e.target, "kind": e.kind} for e in self.edges],
        }


def _signature(n: LineageNode, preds: set[str], succs: set[str]) -> tuple[Any, ...]:
    what = n.attrs.get("name") if n.kind == "version" else n.attrs.get("job_type")
    return (n.kind, what, frozenset(preds), frozenset(succs))


def _collapse(
    lineage: Lineage, root: str
) -> tuple[dict[str, LineageNode | list[LineageNode]], list[tuple[str, str, str]], int]:
    preds: dict[str, set[str]] = defaultdict(set)
    succs: dict[str, set[str]] = defaultdict(set)
    for e in lineage.edges:
        succs[e.source].add(e.target)
        preds[e.target].add(e.source)
    groups: dict[tuple[Any, ...], list[LineageNode]] = defaultdict(list)
    for n in lineage.nodes:
        if n.id != root:
            groups[_signature(n, preds[n.id], succs[n.id])].append(n)
    alias: dict[str, str] = {}
    items: dict[str, LineageNode | list[LineageNode]] = {n.id: n for n in lineage.nodes}
    folded = 0
    for members in groups.values():
        if len(members) < COLLAPSE_AT:
            continue
        gid = "group/" + members[0].id
        for m in members:
            alias[m.id] = gid
            del items[m.id]
        items[gid] = members
        folded += len(members)
    edges = sorted(
        {
            (alias.get(e.source, e.source), alias.get(e.target, e.target), e.kind)
            for e in lineage.edges
        }
    )
    return items, edges, folded


def _layers(ids: list[str], edges: list[tuple[str, str, str]]) -> dict[str, int]:
    """Longest path from a source; a cycle (a run re-logging what it consumed) is broken where met."""
    succs: dict[str, list[str]] = defaultdict(list)
    for s, t, _ in edges:
        if s != t:
            succs[s].append(t)
    order: list[str] = []
    state: dict[str, int] = {}
    back: set[tuple[str, str]] = set()
    for start in ids:
        if start in state:
            continue
        stack = [(start, iter(succs[start]))]
        state[start] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                order.append(node)
                stack.pop()
            elif state.get(nxt) == 1:
                back.add((node, nxt))
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(succs[nxt])))
    layer = dict.fromkeys(ids, 0)
    for node in reversed(order):  # topological order
        for nxt in succs[node]:
            if (node, nxt) not in back:
                layer[nxt] = max(layer[nxt], layer[node] + 1)
    return layer


def layout(
    lineage: Lineage,
    href: Callable[[LineageNode], str | None],
    group_href: Callable[[list[LineageNode]], str | None],
) -> LaidOutGraph:
    """Positions for every node and a curve for every edge; ``href`` gives each node's link."""
    items, edges, folded = _collapse(lineage, lineage.root)
    ids = sorted(items)
    layer = _layers(ids, edges)
    columns: dict[int, list[str]] = defaultdict(list)
    for nid in ids:
        columns[layer[nid]].append(nid)
    preds: dict[str, list[str]] = defaultdict(list)
    succs: dict[str, list[str]] = defaultdict(list)
    for s, t, _ in edges:
        succs[s].append(t)
        preds[t].append(s)
    pos = {nid: i for col in columns.values() for i, nid in enumerate(col)}
    for sweep in range(4):  # barycentre ordering, alternating left->right and right->left
        keys = sorted(columns) if sweep % 2 == 0 else sorted(columns, reverse=True)
        for k in keys:
            nbrs = preds if sweep % 2 == 0 else succs

            def bary(nid: str, nbrs: dict[str, list[str]] = nbrs) -> tuple[float, str]:
                ps = [pos[p] for p in nbrs[nid] if p in pos]
                return (sum(ps) / len(ps) if ps else float(pos[nid]), nid)

            columns[k].sort(key=bary)
            for i, nid in enumerate(columns[k]):
                pos[nid] = i
    tallest = max((len(c) for c in columns.values()), default=1)
    height = PAD * 2 + tallest * NODE_H + (tallest - 1) * GAP_Y
    nodes: list[GraphNode] = []
    xy: dict[str, tuple[int, int]] = {}
    for k, col in columns.items():
        offset = (height - (len(col) * NODE_H + (len(col) - 1) * GAP_Y)) // 2
        for i, nid in enumerate(col):
            x, y = PAD + k * (NODE_W + GAP_X), offset + i * (NODE_H + GAP_Y)
            xy[nid] = (x, y)
            nodes.append(_node(nid, items[nid], x, y, lineage.root, href, group_href))
    out_edges = []
    dip_max = 0
    for s, t, kind in edges:
        (x1, y1), (x2, y2) = xy[s], xy[t]
        sx, sy, tx, ty = x1 + NODE_W, y1 + NODE_H // 2, x2, y2 + NODE_H // 2
        span = layer[t] - layer[s]
        if tx <= sx:  # a back edge: leave from the bottom and come round
            dip = NODE_H + 30
            path = (
                f"M{x1 + NODE_W // 2},{y1 + NODE_H} C{sx},{y1 + dip + NODE_H} "
                f"{tx},{y2 + dip + NODE_H} {tx + NODE_W // 2},{y2 + NODE_H}"
            )
        elif span > 1:  # skips a layer: arc below the nodes in between instead of through them
            dip = NODE_H // 2 + 14 + 12 * span
            lo = max(sy, ty) + dip
            path = f"M{sx},{sy} C{sx + GAP_X},{lo} {tx - GAP_X},{lo} {tx},{ty}"
        else:
            dip = 0
            mid = (sx + tx) // 2
            path = f"M{sx},{sy} C{mid},{sy} {mid},{ty} {tx},{ty}"
        dip_max = max(dip_max, dip)
        out_edges.append(GraphEdge(s, t, kind, path))
    height += dip_max
    width = PAD * 2 + (max(columns, default=0) + 1) * (NODE_W + GAP_X) - GAP_X
    return LaidOutGraph(tuple(nodes), tuple(out_edges), width, height, folded)


def _short(text: str, n: int = 30) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _node(
    nid: str,
    item: LineageNode | list[LineageNode],
    x: int,
    y: int,
    root: str,
    href: Callable[[LineageNode], str | None],
    group_href: Callable[[list[LineageNode]], str | None],
) -> GraphNode:
    if isinstance(item, list):
        first = item[0]
        if first.kind == "version":
            nums = sorted(int(m.attrs.get("version", 0)) for m in item)
            label = f"{first.attrs.get('name')} ×{len(item)}"
            sub = f"v{nums[0]}…v{nums[-1]} ({len(item)} versions)"
        else:
            label = f"{first.attrs.get('job_type') or 'run'} ×{len(item)}"
            sub = f"{len(item)} similar runs"
        return GraphNode(
            nid,
            "group",
            _short(label),
            sub,
            group_href(item),
            x,
            y,
            members=tuple(m.id for m in item),
        )
    if item.kind == "run":
        a = item.attrs
        label = f"{a.get('job_type') or 'run'} {a.get('name') or ''}".strip()
        sub = f"run {a.get('run_id')} · {a.get('status')}"
        status = a.get("status")
    else:
        a = item.attrs
        label = item.id
        sub = f"{a.get('type')}" + (
            f" · {', '.join(a.get('aliases') or [])}" if a.get("aliases") else ""
        )
        status = "deleted" if a.get("deleted") else None
    return GraphNode(
        nid,
        item.kind,
        _short(label),
        _short(sub, 34),
        href(item),
        x,
        y,
        root=nid == root,
        status=status,
    )
