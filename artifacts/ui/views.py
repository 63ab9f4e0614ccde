"""What each page shows, gathered from a store into plain values (the app and the report share these).

Nothing here renders HTML or knows about HTTP: a view is a dict of values and value objects that a
template turns into a page. Store content stays untrusted text all the way; the templates escape it.
"""

from __future__ import annotations

import csv
import io
import json
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..compare import flatten as _flatten
from ..errors import IntegrityError, InvalidValueError, NotFoundError
from ..names import check_name, check_path, parse_ref
from ..untrusted import load_json
from .charts import DEFAULT_WIDTH, MAX_WIDTH, Series, downsampled, overlay, run_charts
from .graph import LaidOutGraph, layout
from .render import Links

if TYPE_CHECKING:
    from ..lineage import LineageNode
    from ..run import Run
    from ..store import Store
    from ..version import ArtifactVersion

__all__ = [
    "PREVIEW_BYTES",
    "check_run_id",
    "compare_view",
    "file_preview",
    "flatten",
    "lineage_graph",
    "run_series",
    "run_view",
    "version_diff",
    "version_view",
]

PREVIEW_BYTES = 64 * 1024  # shown of a text file
VERIFY_LIMIT = 16 * 2**20  # files up to this size are read whole, so the preview is digest-verified
PREVIEW_ROWS = 50
_series_cache: OrderedDict[tuple[str, str, str], list[Series]] = OrderedDict()


def check_run_id(run_id: str) -> str:
    """Run ids are 1-64 of letters, digits, '_' and '-' (ours are 12 hex digits)."""
    if not (0 < len(run_id) <= 64) or not all(c.isalnum() or c in "_-" for c in run_id):
        raise InvalidValueError(f"invalid run id {run_id[:80]!r}: expected letters and digits")
    if not run_id.isascii():
        raise InvalidValueError(f"invalid run id {run_id[:80]!r}: expected letters and digits")
    return run_id


def check_width(width: int | None) -> int:
    if width is None:
        return DEFAULT_WIDTH
    if not 50 <= width <= MAX_WIDTH:
        raise InvalidValueError(f"width must be between 50 and {MAX_WIDTH} pixels, not {width}")
    return width


def flatten(obj: Any) -> list[tuple[str, Any]]:
    """Nested config as dotted keys (``arch.hidden``, the query language's names), in key order."""
    return sorted(_flatten(obj).items()) if isinstance(obj, Mapping) else []


# -- runs ------------------------------------------------------------------------------------------
def run_series(run: Run, width: int = DEFAULT_WIDTH) -> list[Series]:
    """The run's metrics as downsampled series (`Run.series`: from its series blob where it has one);
    a finished run's are cached (they cannot change)."""
    done = run.status != "running" and run.finished_at is not None
    key = (run.id, str(run.finished_at), str(width))
    if done and key in _series_cache:
        _series_cache.move_to_end(key)
        return _series_cache[key]
    series = downsampled(run.series(), width)
    if done:
        _series_cache[key] = series
        while len(_series_cache) > 64:
            _series_cache.popitem(last=False)
    return series


def run_brief(run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "name": run.name,
        "project": run.project,
        "job_type": run.job_type,
        "group": run.group,
        "status": run.status,
        "user": run.user,
        "started_at": run.started_at,
    }


def run_view(store: Store, run_id: str, width: int = DEFAULT_WIDTH) -> dict[str, Any]:
    run = store.run(check_run_id(run_id))
    series = run_series(run, check_width(width))
    versions = dict(run.env.get("versions") or {})
    env = {
        "user": run.user,
        "host": run.host,
        "command": " ".join(run.command) if isinstance(run.command, list) else run.command,
        "git commit": run.git,
        "platform": run.env.get("platform"),
        "working directory": run.env.get("cwd"),
        "devices": run.env.get("devices"),
    }
    return {
        "run": run,
        "brief": run_brief(run),
        "config": flatten(run.config),
        "summary": flatten(run.summary),
        "env": [(k, v) for k, v in env.items() if v not in (None, "", [], {})],
        "versions": sorted(versions.items()),
        "series": [s.to_dict() for s in series],
        "charts_spec": run_charts(series),
        "inputs": [v.to_dict() for v in run.inputs()],
        "outputs": [v.to_dict() for v in run.outputs()],
        "tags": list(getattr(run, "tags", None) or ()),
        "notes": getattr(run, "notes", None) or "",
        "live": run.status == "running",
        "history_digest": getattr(run, "_history_digest", None),
        "series_digest": getattr(run, "_series_digest", None),
    }


def compare_view(store: Store, ids: list[str], width: int = DEFAULT_WIDTH) -> dict[str, Any]:
    """Selected runs side by side (`Store.compare_runs`): overlaid charts, config with differing keys
    first, summaries, and the inputs where the runs disagree."""
    ids = list(dict.fromkeys(ids))
    if len(ids) < 2:
        raise InvalidValueError("select at least two runs to compare (?runs=ID&runs=ID)")
    for i in ids:
        check_run_id(i)
    cmp = store.compare_runs(ids)
    runs = [store.run(i) for i in cmp.runs]
    width = check_width(width)
    charts = overlay([(r.name or r.id, run_series(r, width)) for r in runs])
    n = len(runs)
    config = [{"key": k, "values": v, "differs": True} for k, v in cmp.config.items()]
    config += [{"key": k, "values": [v] * n, "differs": False} for k, v in cmp.same_config.items()]
    summary = [
        {"key": k, "values": v, "differs": len({json.dumps(x, default=str) for x in v}) > 1}
        for k, v in cmp.summary.items()
    ]
    return {
        "runs": [run_brief(r) for r in runs],
        "charts_spec": charts,
        "config": config,
        "summary": sorted(summary, key=lambda r: (not r["differs"], r["key"])),
        "inputs": cmp.different_inputs,
    }


# -- versions --------------------------------------------------------------------------------------
def resolve_version(store: Store, name: str, version: str) -> ArtifactVersion:
    check_name(name)
    return store.artifact(str(parse_ref(f"{name}:{version}")))


def _tree(files: list[Any]) -> list[dict[str, Any]]:
    """Files as rows of a tree, directories first with their total size, in path order."""
    dirs: dict[str, int] = {}
    counts: dict[str, int] = {}
    for f in files:
        parts = f.path.split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            dirs[d] = dirs.get(d, 0) + f.size
            counts[d] = counts.get(d, 0) + 1
    rows: list[dict[str, Any]] = []
    entries = [(d.split("/"), True, d) for d in dirs] + [
        (f.path.split("/"), False, f) for f in files
    ]
    entries.sort(key=lambda e: [*e[0][:-1], ("0" if e[1] else "1") + e[0][-1]])
    for parts, is_dir, item in entries:
        if is_dir:
            rows.append(
                {
                    "dir": True,
                    "depth": len(parts) - 1,
                    "name": parts[-1] + "/",
                    "path": item,
                    "size": dirs[item],
                    "files": counts[item],
                }
            )
        else:
            rows.append(
                {
                    "dir": False,
                    "depth": len(parts) - 1,
                    "name": parts[-1],
                    "path": item.path,
                    "size": item.size,
                    "digest": item.digest,
                    "meta": dict(item.meta),
                }
            )
    return rows


def _previous(store: Store, v: ArtifactVersion) -> ArtifactVersion | None:
    older = [o for o in store.versions(v.name) if o.version < v.version]
    return older[-1] if older else None


def version_view(store: Store, v: ArtifactVersion) -> dict[str, Any]:
    files = v.files()
    prev = _previous(store, v)
    prev_digests = {f.digest for f in prev.files()} if prev is not None else set()
    tensors = [
        {
            "name": f.path,
            "dtype": f.meta.get("dtype"),
            "shape": list(f.meta.get("shape") or []),
            "size": f.size,
            "digest": f.digest,
            "shared": f.digest in prev_digests,
        }
        for f in files
        if "dtype" in f.meta and "shape" in f.meta
    ]
    producers = v.producers()
    others = [o for o in store.versions(v.name) if o.version != v.version]
    return {
        "v": v.to_dict(),
        "metadata": flatten(v.metadata),
        "description": v.description,
        "producers": [run_brief(r) for r in producers],
        "consumers": [run_brief(r) for r in v.consumed_by()],
        "tree": _tree(files),
        "nfiles": len(files),
        "tensors": tensors,
        "shared_bytes": sum(t["size"] for t in tensors if t["shared"]),
        "previous": prev.to_dict() if prev is not None else None,
        "others": [o.to_dict() for o in others],
    }


def file_preview(v: ArtifactVersion, path: str) -> dict[str, Any]:
    """The first lines of a text, CSV or JSON file, read through the digest-verifying reader.

    A file up to 16 MiB is read whole, so its digest is checked before anything is shown; of a larger
    one only the first 64 kB are shown, marked as unverified. Binary content is never shown.
    """
    check_path(path)
    f = v.file(path)
    verified = f.size <= VERIFY_LIMIT
    if verified:
        data = v.read_bytes(path, verify=True)
    else:
        with v.open(path, verify=False) as fh:
            data = fh.read(PREVIEW_BYTES)
    head = data[:PREVIEW_BYTES]
    view: dict[str, Any] = {
        "file": f,
        "verified": verified,
        "kind": "binary",
        "truncated": len(data) > PREVIEW_BYTES or f.size > len(data),
    }
    if b"\x00" in head:
        return view
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 4:  # not just a character cut at the preview's end
            return view
        text = head[: e.start].decode("utf-8")
    lower = path.lower()
    if lower.endswith(".json") and not view["truncated"]:
        try:
            view.update(
                kind="json",
                text=json.dumps(load_json(text, path, expect=None), indent=2, ensure_ascii=False)[
                    :PREVIEW_BYTES
                ],
            )
            return view
        except ValueError:
            pass
    if lower.endswith((".csv", ".tsv")):
        reader = csv.reader(io.StringIO(text), delimiter="\t" if lower.endswith(".tsv") else ",")
        try:
            rows = [row for _, row in zip(range(PREVIEW_ROWS + 1), reader, strict=False)]
        except csv.Error:
            rows = []
        if rows:
            view.update(kind="csv", header=rows[0], rows=rows[1 : PREVIEW_ROWS + 1])
            return view
    lines = text.splitlines()
    view.update(kind="text", text="\n".join(lines[:500]))
    return view


def version_diff(store: Store, a: ArtifactVersion, b: ArtifactVersion) -> dict[str, Any]:
    """`Store.diff` of ``a`` -> ``b`` (files and tensors added, removed, changed; bytes shared and
    new), plus the metadata keys whose values differ."""
    diff = store.diff(a.ref, b.ref)
    ma, mb = dict(flatten(a.metadata)), dict(flatten(b.metadata))
    meta = [
        {"key": k, "a": ma.get(k), "b": mb.get(k)}
        for k in sorted(ma.keys() | mb.keys())
        if json.dumps(ma.get(k), default=str) != json.dumps(mb.get(k), default=str)
    ]
    return {"a": a.to_dict(), "b": b.to_dict(), "diff": diff, "metadata": meta}


# -- lineage ---------------------------------------------------------------------------------------
def lineage_graph(
    store: Store, ref: str, links: Links, direction: str = "both", depth: int | None = None
) -> LaidOutGraph:
    if ref.startswith("run/"):
        check_run_id(ref[4:])
    elif not ref.startswith("group/"):
        parse_ref(ref)
    if depth is not None and not 0 <= depth <= 100:
        raise InvalidValueError(f"depth must be between 0 and 100, not {depth}")
    lin = store.lineage(ref, direction, depth)

    def href(n: LineageNode) -> str | None:
        if n.kind == "run":
            return links.run(str(n.attrs.get("run_id")))
        return links.version(str(n.attrs.get("name")), int(n.attrs.get("version", 0)))

    def group_href(members: list[LineageNode]) -> str | None:
        first = members[0]
        if first.kind == "version":
            return links.artifact(str(first.attrs.get("name")))
        return links.compare([str(m.attrs.get("run_id")) for m in members])

    return layout(lin, href, group_href)


def safe_lineage(
    store: Store, ref: str, links: Links, depth: int | None = 2
) -> LaidOutGraph | None:
    """The graph for a page's lineage panel; a store too damaged to walk shows none, not an error."""
    try:
        return lineage_graph(store, ref, links, "both", depth)
    except (NotFoundError, IntegrityError):
        return None
