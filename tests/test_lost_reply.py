"""A lost reply to the log's conditional PUT (issue 11 item 5): S3 stores the entry, the reply never
reaches the client, the client retries and gets HTTP 412. The commit must recognise its own entry: the
change is committed once, and the caller sees success.

The fault is real: a TCP proxy between the client and the moto server forwards every request, and for
the first conditional PUT of a log entry it reads moto's reply and then closes the client's connection
without sending it (what a dropped connection or a timeout after the server acted looks like).
"""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import make_bucket, s3_options

import artifacts


class DroppingProxy:
    """HTTP/1.1 proxy to ``upstream`` that swallows the reply of the first ``drop`` matching requests."""

    def __init__(self, upstream: str, match: Any, drop: int = 1) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.match, self.left, self.dropped = match, drop, 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _client(self, conn: socket.socket) -> None:
        f = conn.makefile("rb")
        try:
            while True:
                line = f.readline()
                if not line:
                    return
                method, path, _ = line.decode("latin-1").split(" ", 2)
                headers = []
                while (h := f.readline()) not in (b"\r\n", b"\n", b""):
                    k, _, v = h.decode("latin-1").partition(":")
                    headers.append((k.strip(), v.strip()))
                hd = {k.lower(): v for k, v in headers}
                if hd.get("expect", "").lower() == "100-continue":
                    conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                    headers = [(k, v) for k, v in headers if k.lower() != "expect"]
                body = f.read(int(hd.get("content-length", "0") or 0))
                up = http.client.HTTPConnection(*self.upstream, timeout=30)
                up.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
                for k, v in headers:
                    up.putheader(k, v)
                up.endheaders(body or None)
                resp = up.getresponse()
                data = resp.read()
                up.close()
                with self.lock:
                    drop = self.left > 0 and self.match(method, path, hd)
                    if drop:
                        self.left -= 1
                        self.dropped += 1
                if drop:
                    return  # the server acted; the client never hears of it
                out = [f"HTTP/1.1 {resp.status} {resp.reason}\r\n".encode()]
                for k, v in resp.getheaders():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                        out.append(f"{k}: {v}\r\n".encode())
                out.append(f"Content-Length: {len(data)}\r\n\r\n".encode())
                conn.sendall(b"".join(out) + (data if method != "HEAD" else b""))
        except (OSError, ValueError):
            return
        finally:
            conn.close()

    def close(self) -> None:
        self.sock.close()


def _log_put(method: str, path: str, headers: dict[str, str]) -> bool:
    return method == "PUT" and "/log/" in path and headers.get("if-none-match") == "*"


@pytest.fixture
def lossy(s3_endpoint: str) -> Iterator[tuple[DroppingProxy, str, dict[str, Any]]]:
    bucket = make_bucket(s3_endpoint)
    url = f"s3://{bucket}/store"
    artifacts.open_store(url, storage_options=s3_options(s3_endpoint)).close()  # store.json
    proxy = DroppingProxy(s3_endpoint, _log_put, drop=0)
    yield proxy, url, s3_options(proxy.url)
    proxy.close()


OPS = {
    "start_run": lambda s: s.start_run(project="p"),
    "log_artifact": lambda s: s.log_artifact(
        artifacts.Artifact("d", "dataset").add_bytes("x", b"1")
    ),
    "set_alias": lambda s: s.set_alias("base:v0", "best"),
    "delete_version": lambda s: s.delete_version("base:v0"),
    "set_quota": lambda s: s.set_quota("bob", 10**9),
}


@pytest.mark.parametrize("op", sorted(OPS))
def test_commit_whose_reply_was_lost_is_committed_once(
    lossy: tuple[DroppingProxy, str, dict[str, Any]], op: str
) -> None:
    proxy, url, options = lossy
    store = artifacts.open_store(url, storage_options=options)
    store.log_artifact(artifacts.Artifact("base", "dataset").add_bytes("x", b"0"))
    before = len(store.root.find("log"))
    with proxy.lock:
        proxy.left = 1
    done = OPS[op](store)  # succeeds: the entry it wrote is recognised as its own
    assert proxy.dropped == 1, "the fault was not injected"
    assert len(store.root.find("log")) == before + 1  # committed exactly once
    fresh = artifacts.open_store(url, storage_options=options)
    assert fresh.index.rejected() == [] and fresh.index.last_seq == before + 1
    assert fresh.verify().ok
    if isinstance(done, artifacts.Run):  # finished while the endpoint is up, not at exit
        done.finish()


# -- the log is a hash chain (issue 18 item 4) --------------------------------------------------------
@pytest.mark.parametrize("rot", ["alias", "description", "metadata"])
def test_entry_rotting_into_other_valid_json_is_named_by_verify(tmp_path: Any, rot: str) -> None:
    """An applied entry changes into other valid JSON (an alias name, a description): each newer
    entry records its predecessor's digest, so verify names the changed entry, for the reader whose
    index applied the original and for a fresh one."""
    import json
    import os

    store = artifacts.open_store(str(tmp_path / "s"))
    store.log_artifact(artifacts.Artifact("d", "dataset").add_bytes("x", b"1"), aliases=["good"])
    store.set_alias("d:v0", "best")  # entry 2 records the digest of entry 1
    path = tmp_path / "s" / "log" / f"{1:020d}.json"
    obj = json.loads(path.read_bytes())
    obj.update(
        {
            "alias": {"aliases": ["goad"]},
            "description": {"description": "rewritten"},
            "metadata": {"metadata": {"x": 1}},
        }[rot]
    )
    os.chmod(path, 0o644)
    path.write_bytes(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode())
    for reader in (store, artifacts.open_store(str(tmp_path / "s"), user="bob")):
        problems = reader.verify().problems
        assert any("log entry 1 was changed after entry 2" in p for p in problems), problems
