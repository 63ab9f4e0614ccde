"""How long a CLI command takes to fail when its S3 endpoint goes dark, against the configured bound.

A moto server on 127.0.0.1 sits behind a TCP relay (tests/_dark.py) that either refuses
connections (every open one cut, the port closed) or becomes a black hole (accepts, never answers).
For each, ``artifacts put`` and ``artifacts ls`` run as new processes against the dark endpoint, and
a multipart ``put`` of a 33 MiB file is cut off mid-upload; the table shows the seconds until the
command exited (from its start, or from the moment the endpoint went dark for the mid-upload row),
that time over ``$ARTIFACTS_S3_TIMEOUT``, and the stderr lines it wrote. The start-up of a CLI
process on a healthy endpoint is shown for reference.

    python benchmarks/dark_s3.py [--timeout 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks._common import load_line, moto_s3, quiet_werkzeug, table  # noqa: E402
from storage.upload import SINGLE_PUT_MAX  # noqa: E402
from tests._dark import Switch  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--timeout", type=float, default=20.0, help="$ARTIFACTS_S3_TIMEOUT (seconds)")
    ap.add_argument("--limit", type=float, default=300.0, help="give up on a command after this")
    args = ap.parse_args()
    quiet_werkzeug()
    rows = []
    with moto_s3() as (url, opts), tempfile.TemporaryDirectory() as tmp:
        endpoint = opts["client_kwargs"]["endpoint_url"]
        small, big = Path(tmp, "small.bin"), Path(tmp, "big.bin")
        small.write_bytes(os.urandom(1000))
        big.write_bytes(os.urandom(SINGLE_PUT_MAX + 1024))
        for mode in ("refuse", "hole"):
            switch = Switch(endpoint)
            env = {
                **os.environ,
                "PYTHONPATH": str(REPO),
                "ARTIFACTS_STORE": url,
                "ARTIFACTS_CACHE_DIR": str(Path(tmp, f"cache-{mode}")),
                "ARTIFACTS_STORAGE_OPTIONS": json.dumps(
                    {**opts, "client_kwargs": {**opts["client_kwargs"], "endpoint_url": switch.url}}
                ),
                "ARTIFACTS_S3_TIMEOUT": str(args.timeout),
            }
            cli = [sys.executable, "-m", "artifacts.cli"]
            subprocess.run([*cli, "init"], env=env, capture_output=True, check=True)
            t = time.monotonic()
            subprocess.run([*cli, "ls"], env=env, capture_output=True, check=True)
            rows.append((mode, "healthy ls (start-up)", time.monotonic() - t, "", 0))
            switch.go(mode)
            for cmd in (["put", "d", str(small), "--type", "dataset"], ["ls"]):
                t = time.monotonic()
                try:
                    p = subprocess.run(
                        [*cli, *cmd], env=env, capture_output=True, text=True, timeout=args.limit
                    )
                    took, lines = time.monotonic() - t, len(p.stderr.splitlines())
                except subprocess.TimeoutExpired:
                    took, lines = float("inf"), -1
                rows.append((mode, cmd[0], took, took / args.timeout, lines))
            switch.go("on")
            put = subprocess.Popen(
                [*cli, "put", "big", str(big), "--type", "model"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            time.sleep(0.5)  # the upload is under way (one part of 16 MiB takes longer)
            switch.go(mode)
            t = time.monotonic()
            try:
                _, err = put.communicate(timeout=args.limit)
                took, lines = time.monotonic() - t, len(err.splitlines())
            except subprocess.TimeoutExpired:
                put.kill()
                took, lines = float("inf"), -1
            rows.append((mode, "multipart put, dark mid-upload", took, took / args.timeout, lines))
            switch.close()
    print(f"$ARTIFACTS_S3_TIMEOUT={args.timeout:g}")
    print(table(rows, ("endpoint", "command", "s to fail", "/ bound", "stderr lines")))
    print(load_line())


if __name__ == "__main__":
    main()
