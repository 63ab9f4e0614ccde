"""`artifacts ui` (a local browser UI over the store) and `artifacts report` (one shareable HTML file).

`artifacts.cli` adds `COMMANDS` to its group (this module does not import it, so it also works when
the CLI runs as ``python -m artifacts.cli``, where a second copy of that module would get them).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .cliutil import CliContext, CliError, out

if TYPE_CHECKING:
    import socket

__all__ = ["COMMANDS", "report", "ui"]

pass_ctx = click.make_pass_decorator(CliContext)

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    import ipaddress  # imported here, as the commands import what they use: `--version` starts fast

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the server starts (so port 0 can say which port it got)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise CliError(
            f"cannot listen on {host}:{port}: {e.strerror or e}; choose another --port"
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8765,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port (0: any free port).",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the UI in a web browser.")
@click.option(
    "--no-auth",
    is_flag=True,
    help="Serve a non-loopback address without a token (trusted networks only).",
)
@pass_ctx
def ui(c: CliContext, host: str, port: int, open_browser: bool, no_auth: bool) -> None:
    """Browse runs, metrics, artifacts and lineage in a web browser (read-only).

    Listens on 127.0.0.1 by default. On any other address every request needs the token printed at
    start (open the printed link once; it sets a cookie) unless --no-auth is given. The index follows
    the store's log while it runs: new runs and live metrics appear without a restart.
    """
    import secrets
    import threading
    import webbrowser

    import uvicorn

    from .ui import create_app

    store = c.store()
    loopback = is_loopback(host)
    token = None if loopback or no_auth else secrets.token_urlsafe(24)
    sock = bind(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound}/" + (f"?token={token}" if token else "")
    app = create_app(store, token=token, allowed_hosts=list(LOOPBACK_NAMES) if loopback else None)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    out(f"artifacts ui for {store.url} at {url}  (Ctrl-C stops)")
    if token:
        out(
            "every request needs that token: share the link only with people who may read the store"
        )
    sys.stdout.flush()
    if open_browser:
        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    server.run(sockets=[sock])


@click.command()
@click.argument("target", metavar="REF|run/ID")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The HTML file to write.",
)
@pass_ctx
def report(c: CliContext, target: str, output: Path) -> None:
    """Write one self-contained HTML file for a version or a run, to share a result.

    The file holds the page, its charts, its lineage and every digest, with CSS, scripts and SVG
    inline: it makes no request, so a reviewer without access to the store can read and check it.
    """
    from .ui import write_report

    path = write_report(c.store(), target, output)
    out(f"wrote {path} ({path.stat().st_size:,} bytes) for {target}")


COMMANDS = (ui, report)
