"""S3 going dark mid-operation (issue 11 item 6, issue 18 items 7 and 8): a bounded wait with retries
that say what they do, one line at the end, nothing half-visible, the store working again when the
endpoint returns, and gc cleaning what dead writers leave (multipart uploads, temp files).

The endpoint is a real moto server behind a TCP relay on loopback that can cut every connection and
refuse new ones, or turn into a black hole (accepts, never answers); see tests/_dark.py. Commands
run as real CLI subprocesses with ``ARTIFACTS_S3_TIMEOUT=2`` when they meet a dark endpoint (and
the default bound when they should succeed: a loaded machine may keep moto from answering in 1 s).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from conftest import make_bucket, s3_options

import artifacts
from storage.leftovers import Leftovers, clean_leftovers
from tests._dark import Switch

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 2.0  # $ARTIFACTS_S3_TIMEOUT of the commands below


class Dark:
    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.switch = Switch(endpoint)
        self.bucket = make_bucket(endpoint)
        self.url = f"s3://{self.bucket}/store"
        self.options = s3_options(self.switch.url)

    def store(self) -> artifacts.Store:
        return artifacts.open_store(self.url, user="alice", storage_options=self.options)

    def env(self, timeout: float = TIMEOUT) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "ARTIFACTS_STORE": self.url,
            "ARTIFACTS_STORAGE_OPTIONS": json.dumps(self.options),
            "ARTIFACTS_S3_TIMEOUT": str(timeout),
        }

    def cli(
        self, *args: str, timeout: float = TIMEOUT
    ) -> tuple[float, subprocess.CompletedProcess[str]]:
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "artifacts.cli", *args],
            capture_output=True,
            text=True,
            env=self.env(timeout),
            timeout=120,
        )
        return time.monotonic() - started, proc

    def uploads(self) -> list[dict[str, Any]]:
        """Multipart uploads under the store, asked of moto directly (never through the relay)."""
        s3 = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1")
        got = s3.list_multipart_uploads(Bucket=self.bucket, Prefix="store/")
        return list(got.get("Uploads", []))


@pytest.fixture
def dark(s3_endpoint: str) -> Iterator[Dark]:
    d = Dark(s3_endpoint)
    yield d
    d.switch.close()


def assert_one_line(stderr: str, d: Dark) -> list[str]:
    """The last line is the error, naming the endpoint and the bound; every other line is a retry."""
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr and "never retrieved" not in stderr, stderr
    assert lines and lines[-1].startswith(f"error: cannot reach {d.switch.url} within 2s"), stderr
    assert "ARTIFACTS_S3_TIMEOUT" in lines[-1]
    retries = lines[:-1]
    assert all(r.startswith("artifacts: S3 ") and "; retrying in " in r for r in retries), stderr
    return retries


@pytest.mark.parametrize("mode", ["refuse", "hole"])
def test_dark_endpoint_fails_put_and_ls_within_the_bound(
    dark: Dark, tmp_path: Path, mode: str
) -> None:
    store = dark.store()
    store.log_artifact(artifacts.Artifact("d", "dataset").add_bytes("x", b"before"))
    store.close()
    (tmp_path / "new.bin").write_bytes(b"written while dark")
    healthy, ok = dark.cli("ls", "d", timeout=20)  # start-up and a round trip, for the bound below
    assert ok.returncode == 0, ok.stderr
    dark.switch.go(mode)
    for args in (["put", "d", str(tmp_path / "new.bin")], ["ls", "d"]):
        took, proc = dark.cli(*args)
        assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
        retries = assert_one_line(proc.stderr, dark)
        if mode == "refuse":
            assert any("connection refused" in r for r in retries), proc.stderr
        else:
            assert "no answer within" in proc.stderr, proc.stderr
        # before: 16-83 s (put) and 36-41 s (ls) refused, over 100 s black-holed
        assert took < 2 * healthy + 3 * TIMEOUT, (args, took, healthy)
    dark.switch.go("on")
    again = dark.store()  # nothing half-visible: the dark put committed nothing
    assert [v.ref for v in again.versions("d")] == ["d:v0"]
    again.log_artifact(artifacts.Artifact("d", "dataset").add_file(tmp_path / "new.bin", "x"))
    assert again.artifact("d:v1").read_bytes("x") == b"written while dark"
    assert again.verify().ok


def test_an_endpoint_back_within_the_bound_lets_the_command_succeed(
    dark: Dark, tmp_path: Path
) -> None:
    """Refused for about a second, then back: the put retries (saying so) and commits once."""
    dark.store().close()
    src = tmp_path / "f.bin"
    src.write_bytes(b"through an outage")
    env = dark.env(30)
    dark.switch.go("refuse")
    put = subprocess.Popen(
        [sys.executable, "-m", "artifacts.cli", "put", "d", str(src), "--type", "dataset"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(2.0)  # start-up, then retries on the refused endpoint
    dark.switch.go("on")
    out, err = put.communicate(timeout=60)
    assert put.returncode == 0, err
    lines = err.strip().splitlines()
    assert lines and all(r.startswith("artifacts: S3 GET ") for r in lines), err  # the open's
    assert "connection refused" in lines[0] and "Traceback" not in err
    store = dark.store()
    assert [v.ref for v in store.versions("d")] == ["d:v0"]
    assert store.artifact("d:v0").read_bytes("f.bin") == b"through an outage"


@pytest.mark.parametrize("end", ["dark", "sigkill"])
def test_a_put_dying_mid_upload_commits_nothing_and_gc_aborts_the_upload(
    dark: Dark, tmp_path: Path, end: str
) -> None:
    """A put past the single-PUT size goes as a multipart upload; the endpoint dies with parts in
    flight, so the put's own abort cannot get through either (or the put is SIGKILLed): the upload is
    left (it would be billed), until a gc past the grace period aborts it."""
    from storage.upload import SINGLE_PUT_MAX

    dark.store().close()  # store.json
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(SINGLE_PUT_MAX + 1024))
    put = subprocess.Popen(
        [sys.executable, "-m", "artifacts.cli", "put", "big", str(big), "--type", "model"],
        env=dark.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not dark.uploads():
        assert put.poll() is None and time.monotonic() < deadline, put.communicate()
        time.sleep(0.02)
    if end == "sigkill":
        put.kill()
        put.communicate(timeout=60)
    else:
        dark.switch.go("refuse")  # every connection cut, new ones refused
        went_dark = time.monotonic()
        _, stderr = put.communicate(timeout=60)
        assert time.monotonic() - went_dark < 3 * TIMEOUT + 4, stderr  # before: 11-15 s
        assert put.returncode == 1, stderr
        assert_one_line(stderr, dark)
        dark.switch.go("on")
    store = dark.store()
    assert [a.name for a in store.artifacts()] == []  # the put committed nothing
    assert store.verify().ok
    left = dark.uploads()
    assert len(left) == 1, left  # its abort could not get through (or never ran)
    # moto says every upload began at 2010-11-10T20:48:33Z: a cutoff before that keeps it (an
    # upload younger than the grace period may be a put at work)
    before = left[0]["Initiated"].timestamp() - 60
    assert clean_leftovers(store.root, before) == Leftovers((), ())
    assert len(dark.uploads()) == 1
    _, gc = dark.cli("gc", "--grace", "0", timeout=20)
    assert gc.returncode == 0, gc.stderr
    assert "aborted 1 unfinished upload" in gc.stdout, gc.stdout
    assert dark.uploads() == []
    store.log_artifact(artifacts.Artifact("big", "model").add_file(big, "w"))  # works again
    assert store.artifact("big:v0").file("w").size == big.stat().st_size


def _blob_put(data: bytes) -> bool:
    return data.startswith(b"PUT ") and b"/blobs/" in data.split(b"\r\n", 1)[0]


def _log_put(data: bytes) -> bool:
    return data.startswith(b"PUT ") and b"/log/" in data.split(b"\r\n", 1)[0]


@pytest.mark.parametrize("match", [_blob_put, _log_put], ids=["blob", "log entry"])
def test_a_retried_put_sends_the_whole_body(dark: Dark, match: Any) -> None:
    """A PUT whose connection is cut half-way is sent again whole: each attempt has fresh parameters
    (a retry that re-sent a consumed body would store an empty object under a digest's name)."""
    store = dark.store()
    content = os.urandom(300_000)
    dark.switch.cut_next(match)
    v = store.log_artifact(artifacts.Artifact("d", "dataset").add_bytes("x", content))
    assert dark.switch.cuts == 1, "the fault was not injected"
    fresh = dark.store()
    assert fresh.artifact(v.ref).read_bytes("x") == content
    s3 = boto3.client("s3", endpoint_url=dark.endpoint, region_name="us-east-1")
    digest = v.file("x").digest
    head = s3.head_object(Bucket=dark.bucket, Key=f"store/blobs/{digest[:2]}/{digest[2:]}")
    assert head["ContentLength"] == len(content)
    assert fresh.index.last_seq == store.index.last_seq and fresh.index.rejected() == []
    assert fresh.verify().ok


def test_a_bad_timeout_setting_is_one_line(dark: Dark) -> None:
    env = {**dark.env(), "ARTIFACTS_S3_TIMEOUT": "soon"}
    proc = subprocess.run(
        [sys.executable, "-m", "artifacts.cli", "ls"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: $ARTIFACTS_S3_TIMEOUT must be a number of seconds between 0 and 1000000 (how long "
        "to wait on an S3 endpoint that does not answer), not 'soon'"
    ]


def test_gc_removes_temp_files_of_killed_commits_after_the_grace_period(tmp_path: Path) -> None:
    """A writer killed between writing an entry's temp file and linking it leaves ``.tmp-<hex>``
    beside the entry (log, run chunks, packs, store.json); gc removes those older than its grace."""
    store = artifacts.open_store(str(tmp_path / "s"))
    store.log_artifact(artifacts.Artifact("d", "dataset").add_bytes("x", b"1"))
    base = tmp_path / "s"
    old = [base / "log" / ".tmp-0badc0de", base / ".tmp-feed", base / "runs" / "r1" / ".tmp-ab"]
    young = base / "log" / ".tmp-young"
    for p in [*old, young]:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b'{"op": "half a comm')
    for p in old:
        os.utime(p, (time.time() - 7200, time.time() - 7200))
    assert store.gc(3600, dry_run=True).temp_removed == 3
    assert all(p.exists() for p in old)  # a dry run removes nothing
    report = store.gc(3600)
    assert report.temp_removed == 3 and report.uploads_aborted == 0
    assert not any(p.exists() for p in old) and young.exists()
    assert store.gc(0).temp_removed == 1 and not young.exists()
    assert store.verify().ok and store.artifact("d:v0").read_bytes("x") == b"1"
