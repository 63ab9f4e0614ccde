"""Backends for the contract suites: memory, local disk, and S3 on a real moto HTTP server on loopback."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests._moto import atomic_conditional_puts

BACKENDS = ["memory", "local", "s3"]


@dataclass(frozen=True)
class Backend:
    """Where a test's store lives: a URL plus the storage_options to open it (picklable for subprocesses)."""

    kind: str
    url: str
    storage_options: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(autouse=True)
def _isolated_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each test gets its own per-user cache (stat cache, index), as a fresh machine would."""
    monkeypatch.setenv("ARTIFACTS_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("ARTIFACTS_STORE", raising=False)
    monkeypatch.setenv("ARTIFACTS_USER", "alice")


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1, started once per session (as s3fs and zarr test themselves)."""
    from moto.server import ThreadedMotoServer

    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(k, v)
    atomic_conditional_puts()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def s3_options(endpoint: str) -> dict[str, Any]:
    return {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        "skip_instance_cache": True,
    }


def make_bucket(endpoint: str, name: str | None = None) -> str:
    """Create a bucket with boto3 (never through the code under test)."""
    name = name or f"test-{uuid.uuid4().hex[:16]}"
    boto_client(endpoint).create_bucket(Bucket=name)
    return name


def boto_client(endpoint: str, service: str = "s3") -> Any:
    """A boto3 client of the test server, to set up or inspect state without the code under test."""
    import boto3

    return boto3.client(
        service,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


@pytest.fixture
def s3_backend(s3_endpoint: str) -> Iterator[Backend]:
    import requests

    bucket = make_bucket(s3_endpoint)
    yield Backend("s3", f"s3://{bucket}/store", s3_options(s3_endpoint))
    requests.post(f"{s3_endpoint}/moto-api/reset", timeout=10)


@pytest.fixture
def local_backend(tmp_path: Any) -> Backend:
    return Backend("local", str(tmp_path / "store"))


@pytest.fixture
def memory_backend() -> Iterator[Backend]:
    from fsspec.implementations.memory import MemoryFileSystem

    name = f"memory://test-{uuid.uuid4().hex[:12]}"
    yield Backend("memory", name)
    fs = MemoryFileSystem()
    path = fs._strip_protocol(name)
    if fs.exists(path):
        fs.rm(path, recursive=True)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    """Every contract test runs once per backend."""
    return request.getfixturevalue(f"{request.param}_backend")


@pytest.fixture(params=["local", "s3"])
def shared_backend(request: pytest.FixtureRequest) -> Backend:
    """Backends that several OS processes can share (memory:// lives inside one process)."""
    return request.getfixturevalue(f"{request.param}_backend")
