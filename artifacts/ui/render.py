"""Jinja2 templates (autoescaped), their filters, and the links between pages, shared by app and report.

Everything that comes from a store is untrusted text: templates never mark it safe, JSON handed to
scripts goes into ``<script type="application/json">`` blocks with ``<``, ``>`` and ``&`` escaped, and
links are built here from validated parts with every path segment percent-quoted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from ..cliutil import format_size, when

__all__ = [
    "STATIC_DIR",
    "TEMPLATE_DIR",
    "VENDOR",
    "Links",
    "environment",
    "format_size",
    "json_script",
]

HERE = Path(__file__).resolve().parent
TEMPLATE_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
VENDOR = {"uplot": "1.6.32"}


def json_script(value: Any) -> Markup:
    """JSON safe inside ``<script type="application/json">``: no ``</script>`` or ``<!--`` can form."""
    text = json.dumps(value, sort_keys=True, allow_nan=False, default=str)
    text = text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
    return Markup(text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))  # noqa: S704


def show(value: Any) -> str:
    """A config or summary value as text: numbers short, everything else as JSON."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


class Links:
    """The URL of every page; in a report (``enabled=False``) there is no server, so none at all."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled

    def _u(self, path: str, **params: Any) -> str | None:
        if not self.enabled:
            return None
        q = {k: v for k, v in params.items() if v not in (None, "", [], ())}
        return path + ("?" + urlencode(q, doseq=True) if q else "")

    def runs(self, **params: Any) -> str | None:
        return self._u("/runs", **params)

    def run(self, run_id: str) -> str | None:
        return self._u(f"/runs/{quote(run_id, safe='')}")

    def compare(self, ids: list[str]) -> str | None:
        return self._u("/compare", runs=ids)

    def artifacts(self) -> str | None:
        return self._u("/artifacts")

    def artifact(self, name: str) -> str | None:
        return self._u(f"/artifacts/{quote(name, safe='')}")

    def version(self, name: str, version: int, **params: Any) -> str | None:
        return self._u(f"/artifacts/{quote(name, safe='')}/v{int(version)}", **params)

    def file(self, name: str, version: int, path: str) -> str | None:
        return self._u(f"/artifacts/{quote(name, safe='')}/v{int(version)}/files/{quote(path)}")

    def download(self, name: str, version: int, path: str) -> str | None:
        return self._u(f"/artifacts/{quote(name, safe='')}/v{int(version)}/download/{quote(path)}")

    def lineage(self, ref: str, **params: Any) -> str | None:
        return self._u("/lineage", ref=ref, **params)

    def usage(self) -> str | None:
        return self._u("/usage")

    def static(self, path: str) -> str | None:
        return self._u(f"/static/{path}")


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["size"] = format_size
    env.filters["when"] = when
    env.filters["json_script"] = json_script
    env.filters["show"] = show
    env.globals["vendor"] = VENDOR
    return env
