"""The ASGI app behind `artifacts ui`: read-only pages over one store, safe to open on shared content.

- every response carries a Content-Security-Policy that allows scripts only from the app's own
  ``/static/`` (no inline script at all, so nothing in a page's content can run), no frames, no
  plugins, and requests back to the app only;
- with a token (any address but loopback), a request needs it once as ``?token=`` (then a cookie),
  or as ``Authorization: Bearer``; everything else gets 401;
- only GET and HEAD exist, so nothing can change the store through the app;
- the index is brought up to date from the log at most once a second while requests come in, so new
  runs and live metrics appear without a restart.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from ..errors import ArtifactsError, InvalidNameError, InvalidPathError, NotFoundError
from .render import STATIC_DIR, Links, environment

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["CSP", "TOKEN_COOKIE", "UiState", "create_app"]

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
TOKEN_COOKIE = "artifacts_ui_token"
SYNC_EVERY = 1.0
SECTIONS = {
    "run": "runs",
    "compare": "runs",
    "artifact": "artifacts",
    "version": "artifacts",
    "file": "artifacts",
    "diff": "artifacts",
    "lineage": "artifacts",
}
SECTIONS |= {"runs": "runs", "artifacts": "artifacts", "usage": "usage"}
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]


class UiState:
    """The store, its lock (one SQLite connection serves every request, one at a time) and templates."""

    def __init__(self, store: Store, sync_every: float = SYNC_EVERY) -> None:
        self.store = store
        self.lock = threading.RLock()
        self.env = environment()
        self.links = Links()
        self.sync_every = sync_every
        self._synced = 0.0

    def sync(self) -> None:
        now = time.monotonic()
        if now - self._synced >= self.sync_every:
            self.store.sync()
            self._synced = now

    def page(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("section", SECTIONS.get(template.split(".")[0], ""))
        html = self.env.get_template(template).render(
            links=self.links, report=False, store_url=self.store.url, **context
        )
        return HTMLResponse(html, status_code=status)


def _status(e: Exception) -> int:
    if isinstance(e, NotFoundError):
        return 404
    if isinstance(e, InvalidNameError | InvalidPathError | ValueError):
        return 400
    if isinstance(e, ArtifactsError):
        return 422
    return 500


class Guard:
    """Security headers on every response, and the token check when one is set (pure ASGI: cheap)."""

    def __init__(self, app: ASGIApp, token: str | None, allowed_hosts: list[str] | None) -> None:
        self.app = app
        self.token = token
        self.allowed = {h.lower() for h in allowed_hosts} if allowed_hosts else None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                    (b"cache-control", b"no-store"),
                ]
                message["headers"] = headers
            await send(message)

        if self.allowed is not None and not self._host_ok(scope):
            response: Response = HTMLResponse(
                "<!doctype html><title>400</title><p>Unexpected Host header: open the UI at the "
                "address <code>artifacts ui</code> printed.</p>",
                status_code=400,
            )
            await response(scope, receive, send_with_headers)
            return
        if self.token is not None:
            request = Request(scope)
            given = request.query_params.get("token")
            if given is not None and hmac.compare_digest(given, self.token):
                rest = [
                    (k, v)
                    for k, v in parse_qsl(scope.get("query_string", b"").decode())
                    if k != "token"
                ]
                target = scope["path"] + ("?" + urlencode(rest) if rest else "")
                response = RedirectResponse(target, status_code=303)
                response.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="strict")
                await response(scope, receive, send_with_headers)
                return
            cookie = request.cookies.get(TOKEN_COOKIE, "")
            auth = request.headers.get("authorization", "")
            bearer = auth[7:] if auth.lower().startswith("bearer ") else ""
            if not (
                hmac.compare_digest(cookie, self.token) or hmac.compare_digest(bearer, self.token)
            ):
                response = HTMLResponse(
                    "<!doctype html><title>401</title><p>This artifacts ui needs its token: open the "
                    "link printed by <code>artifacts ui</code> (it ends in ?token=...).</p>",
                    status_code=401,
                )
                await response(scope, receive, send_with_headers)
                return
        await self.app(scope, receive, send_with_headers)

    def _host_ok(self, scope: Scope) -> bool:
        """A loopback server answers only to loopback names (no DNS rebinding from a web page)."""
        host = ""
        for k, v in scope.get("headers", []):
            if k == b"host":
                host = v.decode("latin-1").lower()
        name = host[1:].split("]", 1)[0] if host.startswith("[") else host.rsplit(":", 1)[0]
        return self.allowed is not None and name in self.allowed


def create_app(
    store: Store,
    *,
    token: str | None = None,
    allowed_hosts: list[str] | None = None,
    sync_every: float = SYNC_EVERY,
) -> ASGIApp:
    """The app over ``store``; ``token`` (when given) is required of every request, and with
    ``allowed_hosts`` a request must name one of them in its Host header."""
    from .routes import routes

    state = UiState(store, sync_every)

    def error_page(request: Request, exc: Exception) -> Response:
        if isinstance(exc, HTTPException):
            status, message = exc.status_code, str(exc.detail)
        else:
            status, message = _status(exc), str(exc)
            if status == 500:
                message = f"internal error ({type(exc).__name__}); see the server's log"
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": message}, status_code=status)
        return state.page("error.html", status=status, status_code=status, message=message)

    app = Starlette(
        routes=[
            *routes(state),
            Mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static"),
        ],
        exception_handlers={
            HTTPException: error_page,
            ArtifactsError: error_page,
            ValueError: error_page,
            Exception: error_page,
        },
    )
    app.state.ui = state
    return Guard(app, token, allowed_hosts)
