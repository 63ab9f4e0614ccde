"""An S3 endpoint that goes dark on demand: a TCP relay on loopback in front of a real moto server.

``Switch.go("refuse")`` cuts every open connection (RST) and closes the listening port, so new
connections are refused; ``go("hole")`` keeps accepting connections but never answers on any, new or
open (a black-holed endpoint); ``go("on")`` relays again, on the same port. ``cut_next(match)`` cuts
the next request whose first bytes ``match`` after relaying only half of them (the server never
gets the whole request; the client sees its connection reset).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable

__all__ = ["Switch"]


def _reset(sock: socket.socket) -> None:
    """Close with an RST, as a dropped connection looks to the other side."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class Switch:
    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("http://").rsplit(":", 1)
        self.upstream = (host, int(port))
        self.mode = "on"
        self.lock = threading.Lock()
        self.conns: list[socket.socket] = []
        self._cut: Callable[[bytes], bool] | None = None
        self.cuts = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._serve(self.listener)

    def _serve(self, listener: socket.socket) -> None:
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(conn)
                if self.mode != "on":
                    continue  # held open, never answered
            try:
                up = socket.create_connection(self.upstream, timeout=10)
                up.settimeout(None)
            except OSError:
                _reset(conn)
                continue
            with self.lock:
                self.conns.append(up)
            threading.Thread(target=self._pump, args=(conn, up, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, conn, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, request: bool) -> None:
        try:
            while data := src.recv(1 << 16):
                if self.mode != "on":
                    continue  # swallowed: the endpoint went dark
                cut = request and self._cut is not None and self._cut(data)
                if cut:
                    with self.lock:
                        self._cut, self.cuts = None, self.cuts + 1
                    dst.sendall(data[: len(data) // 2])
                    _reset(dst)
                    _reset(src)
                    return
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def cut_next(self, match: Callable[[bytes], bool]) -> None:
        with self.lock:
            self._cut = match

    def go(self, mode: str) -> None:
        assert mode in ("on", "refuse", "hole"), mode
        with self.lock:
            was, self.mode = self.mode, mode
            if mode == "refuse":
                with contextlib.suppress(OSError):
                    self.listener.shutdown(socket.SHUT_RDWR)
                self.listener.close()
                for c in self.conns:
                    _reset(c)
                self.conns.clear()
            elif mode == "on" and was == "refuse":
                self.listener = socket.create_server(("127.0.0.1", self.port))
                self._serve(self.listener)
            elif mode == "on":  # a black hole ends: what it held is dropped
                for c in self.conns:
                    _reset(c)
                self.conns.clear()

    def close(self) -> None:
        self.go("refuse")
