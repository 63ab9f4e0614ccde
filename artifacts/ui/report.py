"""`artifacts report`: one self-contained HTML file for a run or a version, to share a result.

The file is the app's own page rendered without a server: CSS, scripts (uPlot and the page script) and
the lineage SVG are inline, links between pages are dropped, and a Content-Security-Policy in the page
lets only the inline blocks carrying this file's random nonce run - so nothing from the store's content
can execute, and the file makes no request at all. Every digest is listed, so a reviewer can check
downloaded files against it with any BLAKE3 tool.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from ..errors import InvalidValueError
from . import views
from .render import STATIC_DIR, Links, environment

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["render_report", "write_report"]


def _inline(path: Path, closing: str) -> str:
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"^/\*!.*?\*/", "", text, count=1, flags=re.S)  # the banner holds a URL
    if closing in text.lower():
        raise AssertionError(f"{path.name} cannot be inlined: it contains {closing}")
    return text


def _assets() -> tuple[str, str]:
    css = (
        _inline(STATIC_DIR / "vendor/uplot/uPlot.min.css", "</style")
        + "\n"
        + _inline(STATIC_DIR / "app.css", "</style")
    )
    js = (
        _inline(STATIC_DIR / "vendor/uplot/uPlot.iife.min.js", "</script")
        + "\n"
        + _inline(STATIC_DIR / "app.js", "</script")
    )
    return css, js


def render_report(store: Store, target: str) -> str:
    """The report's HTML for ``target``: a version REF or ``run/ID``."""
    if not isinstance(target, str) or not target:
        raise InvalidValueError("report needs a REF (name:vN) or run/ID")
    store.sync()
    links = Links(enabled=False)
    graph = views.lineage_graph(
        store,
        target if target.startswith("run/") else str(store.artifact(target).ref),
        links,
        "both",
        None,
    )
    lineage_digests = []
    for n in store.lineage(
        target if target.startswith("run/") else store.artifact(target).ref, "both"
    ).versions():
        lineage_digests.append({"ref": n.id, "digest": n.attrs.get("digest")})
    css, js = _assets()
    context: dict[str, Any] = {
        "links": links,
        "report": True,
        "section": "",
        "nonce": secrets.token_urlsafe(18),
        "inline_css": Markup(css),  # noqa: S704 - the package's own files, checked by _inline
        "inline_js": Markup(js),  # noqa: S704
        "store_url": store.url,
        "seq": store.index.last_seq,
        "generated_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "graph": graph,
        "lineage_digests": lineage_digests,
    }
    env = environment()
    if target.startswith("run/"):
        context.update(views.run_view(store, target[4:]))
        return env.get_template("run.html").render(**context)
    v = store.artifact(target)
    context.update(views.version_view(store, v))
    return env.get_template("version.html").render(**context)


def write_report(store: Store, target: str, path: str | os.PathLike[str]) -> Path:
    """Write the report for ``target`` (REF or ``run/ID``) to ``path``, atomically; returns the path."""
    html = render_report(store, target)
    out = Path(path)
    tmp = out.with_name(f".{out.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, out)
    return out
