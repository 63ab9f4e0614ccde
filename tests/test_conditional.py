"""An endpoint that ignores If-None-Match is refused before it can lose a commit.

The second endpoint is a real moto HTTP server whose requests lose their ``If-None-Match`` header on
the way in, as behind a gateway that drops it: its PUTs always overwrite. It serves the same buckets as
the suite's own server (moto keeps them in this process), so one store is seen through both.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

import artifacts
from storage import BackendError, default_cache_dir
from tests.conftest import boto_client, make_bucket, s3_options

pytestmark = pytest.mark.s3


@pytest.fixture(scope="module")
def careless_endpoint(s3_endpoint: str) -> Iterator[str]:
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    class Careless(ThreadedMotoServer):
        def _server_entry(self) -> None:
            app = DomainDispatcherApplication(create_backend_app)

            def drop_condition(environ: dict[str, Any], start_response: Any) -> Any:
                environ.pop("HTTP_IF_NONE_MATCH", None)
                return app(environ, start_response)

            self._server = make_server("127.0.0.1", 0, drop_condition, True)
            self._server_ready_event.set()
            self._server.serve_forever()

    server = Careless(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def _keys(endpoint: str, bucket: str) -> list[str]:
    return [o["Key"] for o in boto_client(endpoint).list_objects_v2(Bucket=bucket).get("Contents", [])]


def _artifact(content: bytes = b"hello") -> artifacts.Artifact:
    return artifacts.Artifact("data", type="dataset").add_bytes("a.txt", content)


def test_the_careless_endpoint_really_overwrites(careless_endpoint: str) -> None:
    """The premise: through it, a second exclusive create of one key succeeds."""
    from storage import open_root

    bucket = make_bucket(careless_endpoint)
    root = open_root(f"s3://{bucket}/r", s3_options(careless_endpoint))
    root.create_exclusive("k", b"1")
    root.create_exclusive("k", b"2")  # would raise ConflictError on S3
    assert root.read("k") == b"2"


def test_a_good_endpoint_is_checked_once_per_machine(s3_endpoint: str) -> None:
    bucket = make_bucket(s3_endpoint)
    store = artifacts.open_store(f"s3://{bucket}/store", storage_options=s3_options(s3_endpoint))
    store.log_artifact(_artifact())
    markers = list((default_cache_dir() / "endpoints").glob("*.json"))
    assert len(markers) == 1
    assert json.loads(markers[0].read_text())["endpoint"] == s3_endpoint
    assert not [k for k in _keys(s3_endpoint, bucket) if "/tmp/" in k]  # the probe is gone
    assert store.artifact("data:v0").read_bytes("a.txt") == b"hello"


def test_a_local_store_needs_no_check(tmp_path: Any) -> None:
    store = artifacts.open_store(str(tmp_path / "store"))
    store.log_artifact(_artifact())
    assert not (default_cache_dir() / "endpoints").exists()


def test_a_new_store_is_not_created_through_a_careless_endpoint(careless_endpoint: str) -> None:
    bucket = make_bucket(careless_endpoint)
    with pytest.raises(BackendError, match="ignores If-None-Match") as e:
        artifacts.open_store(f"s3://{bucket}/store", storage_options=s3_options(careless_endpoint))
    assert "ARTIFACTS_SINGLE_WRITER" in str(e.value) and "\n" not in str(e.value)
    assert [k for k in _keys(careless_endpoint, bucket) if not k.startswith("store/tmp/")] == []


def test_commits_through_a_careless_endpoint_are_refused_and_nothing_is_lost(
    s3_endpoint: str, careless_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = make_bucket(s3_endpoint)
    url = f"s3://{bucket}/store"
    good = artifacts.open_store(url, storage_options=s3_options(s3_endpoint))
    good.log_artifact(_artifact())
    log = sorted(k for k in _keys(s3_endpoint, bucket) if k.startswith("store/log/"))

    careless = artifacts.open_store(url, storage_options=s3_options(careless_endpoint))
    assert careless.artifact("data:v0").read_bytes("a.txt") == b"hello"  # reading is fine
    with pytest.raises(BackendError, match="ignores If-None-Match"):
        careless.log_artifact(_artifact(b"second"))
    assert sorted(k for k in _keys(s3_endpoint, bucket) if k.startswith("store/log/")) == log
    careless.close()

    monkeypatch.setenv("ARTIFACTS_SINGLE_WRITER", "1")  # the user's word that nobody races
    careless = artifacts.open_store(url, storage_options=s3_options(careless_endpoint))
    with pytest.warns(UserWarning, match="writing anyway"):
        v = careless.log_artifact(_artifact(b"second"))
    assert v.version == 1
    good.close()
