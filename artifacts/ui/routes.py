"""The app's pages (GET only) and the two JSON endpoints that live pages poll."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from ..catalog.engine import is_corrupt
from ..errors import InvalidValueError
from ..names import check_path
from . import runsdata, views
from .usage import usage_view

if TYPE_CHECKING:
    from .app import UiState

__all__ = ["routes"]


def _int(request: Request, name: str, default: int | None, lo: int, hi: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > 12:
        raise InvalidValueError(
            f"{name} must be a whole number between {lo} and {hi}, not {raw[:40]!r}"
        )
    value = int(raw)
    if not lo <= value <= hi:
        raise InvalidValueError(f"{name} must be between {lo} and {hi}, not {value}")
    return value


def _str(request: Request, name: str, limit: int = 2000) -> str | None:
    raw = request.query_params.get(name)
    if raw is None or raw.strip() == "":
        return None
    if len(raw) > limit:
        raise InvalidValueError(f"{name} is longer than {limit} characters")
    return raw.strip()


def routes(state: UiState) -> list[BaseRoute]:
    links = state.links

    def page(fn: Callable[[Request], Response]) -> Callable[[Request], Response]:
        """Each request sees the index as of now, and has the one SQLite connection to itself."""

        def endpoint(request: Request) -> Response:
            with state.lock:
                try:
                    state.sync()
                    return fn(request)
                except sqlite3.DatabaseError as e:  # the local index (a cache), never the store
                    if not is_corrupt(e):
                        raise
                    state.store.catalog.heal(e)  # rebuilt from the log; a page changes nothing
                    return fn(request)

        endpoint.__name__ = fn.__name__
        return endpoint

    def index(request: Request) -> Response:
        return RedirectResponse(links.runs() or "/runs", status_code=307)

    @page
    def runs(request: Request) -> Response:
        project = _str(request, "project", 128)
        where = _str(request, "q")
        sort = _str(request, "sort", 256) or "started_at"
        desc = request.query_params.get("dir", "desc") != "asc"
        number = _int(request, "page", 1, 1, runsdata.MAX_PAGE) or 1
        per_page = _int(request, "per_page", runsdata.PER_PAGE, 1, 500) or runsdata.PER_PAGE
        cols_raw = _str(request, "cols")
        columns = [c.strip() for c in cols_raw.split(",") if c.strip()] if cols_raw else None
        after = _str(request, "after", 4000)
        group = _str(request, "group", 256)
        metric = _str(request, "metric", 256)
        result = runsdata.runs_page(
            state.store,
            project=project,
            where=where,
            sort=sort,
            desc=desc,
            page=number,
            per_page=per_page,
            columns=columns,
            after=after,
        )
        groups = (
            runsdata.run_groups(state.store, project=project, where=where, by=group, metric=metric)
            if group
            else None
        )
        params = {
            "project": project,
            "q": where,
            "cols": cols_raw,
            "group": group,
            "metric": metric,
            "per_page": per_page if per_page != runsdata.PER_PAGE else None,
        }
        return state.page(
            "runs.html",
            result=result,
            groups=groups,
            project=project,
            q=where or "",
            sort=sort,
            desc=desc,
            group=group or "",
            metric=metric or "",
            params=params,
            projects=sorted(str(g.key["project"]) for g in state.store.run_groups(by="project")),
            head=state.store.index.last_seq,
        )

    @page
    def run(request: Request) -> Response:
        width = _int(request, "width", None, 50, 4000)
        view = views.run_view(state.store, request.path_params["run_id"], width or 800)
        graph = views.safe_lineage(state.store, f"run/{view['run'].id}", links)
        return state.page("run.html", graph=graph, **view)

    @page
    def run_api(request: Request) -> Response:
        width = _int(request, "width", None, 50, 4000)
        view = views.run_view(state.store, request.path_params["run_id"], width or 800)
        return JSONResponse(
            {
                "status": view["run"].status,
                "series": view["series"],
                "summary": [[k, v] for k, v in view["summary"]],
            }
        )

    @page
    def head(request: Request) -> Response:
        return JSONResponse({"seq": state.store.index.last_seq})

    @page
    def compare(request: Request) -> Response:
        ids = [i for raw in request.query_params.getlist("runs") for i in raw.split(",") if i]
        width = _int(request, "width", None, 50, 4000)
        return state.page("compare.html", **views.compare_view(state.store, ids, width or 800))

    @page
    def artifacts_(request: Request) -> Response:
        return state.page("artifacts.html", artifacts=state.store.artifacts())

    @page
    def artifact(request: Request) -> Response:
        name = request.path_params["name"]
        versions = state.store.versions(name)
        return state.page(
            "artifact.html", name=name, versions=[v.to_dict() for v in versions]
        )

    def _version(request: Request) -> Any:
        return views.resolve_version(
            state.store, request.path_params["name"], request.path_params["version"]
        )

    @page
    def version(request: Request) -> Response:
        v = _version(request)
        graph = views.safe_lineage(state.store, v.ref, links)
        return state.page("version.html", graph=graph, **views.version_view(state.store, v))

    @page
    def file(request: Request) -> Response:
        v = _version(request)
        path = check_path(request.path_params["path"])
        return state.page(
            "file.html", v=v.to_dict(), preview=views.file_preview(v, path)
        )

    @page
    def download(request: Request) -> Response:
        v = _version(request)
        path = check_path(request.path_params["path"])
        entry = v.file(path)
        stream = v.open(path, verify=True)

        def chunks() -> Any:
            with stream:
                while True:
                    block = stream.read(1 << 20)
                    if not block:
                        return
                    yield block

        base = path.rsplit("/", 1)[-1]
        ascii_name = "".join(
            c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in base
        )
        disposition = f"attachment; filename=\"{ascii_name or 'file'}\"; filename*=UTF-8''{quote(base, safe='')}"
        return StreamingResponse(
            chunks(),
            media_type="application/octet-stream",
            headers={
                "content-disposition": disposition,
                "content-length": str(entry.size),
                "x-artifacts-digest": entry.digest,
            },
        )

    @page
    def diff(request: Request) -> Response:
        v = _version(request)
        against = _str(request, "against", 300)
        if against is None:
            raise InvalidValueError("choose a version to compare with: ?against=v0 (or NAME:vN)")
        other = state.store.artifact(against if ":" in against else f"{v.name}:{against}")
        return state.page("diff.html", **views.version_diff(state.store, other, v))

    @page
    def lineage(request: Request) -> Response:
        ref = _str(request, "ref", 300)
        if ref is None:
            raise InvalidValueError("choose what to trace: ?ref=NAME:vN or ?ref=run/ID")
        direction = request.query_params.get("direction", "both")
        depth = _int(request, "depth", 3, 0, 100)
        graph = views.lineage_graph(state.store, ref, links, direction, depth)
        return state.page("lineage.html", graph=graph, ref=ref, direction=direction, depth=depth)

    @page
    def usage(request: Request) -> Response:
        return state.page("usage.html", **usage_view(state.store))

    return [
        Route("/", index),
        Route("/runs", runs),
        Route("/runs/{run_id}", run),
        Route("/api/runs/{run_id}", run_api),
        Route("/api/head", head),
        Route("/compare", compare),
        Route("/artifacts", artifacts_),
        Route("/artifacts/{name}", artifact),
        Route("/artifacts/{name}/{version}", version),
        Route("/artifacts/{name}/{version}/files/{path:path}", file),
        Route("/artifacts/{name}/{version}/download/{path:path}", download),
        Route("/artifacts/{name}/{version}/diff", diff),
        Route("/lineage", lineage),
        Route("/usage", usage),
    ]
