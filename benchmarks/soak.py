"""Crash and race campaigns, longer than CI runs them: SIGKILLed writers and racing processes.

    python benchmarks/soak.py                  # a short campaign: 50 kills and 2 races per backend
    python benchmarks/soak.py --long           # 1000 kills and 20 races per backend (about an hour)
    python benchmarks/soak.py --kills 200 --races 0 --backend local
    python benchmarks/soak.py --s3-url s3://bucket/soak --storage-options '{"profile": "dev"}'

The campaigns are the ones `tests/test_concurrency.py` runs (see `tests/_workers.py`): after every kill
the store must verify clean and hold every commit that returned before the kill; after every race the
versions must be gapless, aliases must point at live versions, the quota must hold after every log entry
of a fresh replay, and the store must verify clean. Each round of kills uses a fresh store (the per-kill
verify re-hashes everything, so a store that grew forever would slow the campaign down).

S3 runs against a moto server started here unless ``--s3-url`` names a real bucket (then each round
uses its own prefix below it, and races wait for the grace period instead of backdating blobs).
Prints one line per round and a summary; exits 1 at the first broken invariant, keeping its workdir.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests._workers import Zygote, crash_campaign, race_campaign  # noqa: E402

ROLES = ["writer-u0", "writer-u1", "writer-u0", "aliases", "deleter", "gc"]
SETTINGS = {
    "local": {
        "window": (0.01, 0.35),
        "big_kib": (256, 1024),
        "keep": 30,
        "grace": 5.0,
        "ops": {"writer": 30, "aliases": 30, "deleter": 15, "gc": 3},
    },
    "s3": {
        "window": (0.15, 1.0),
        "big_kib": (64, 256),
        "keep": 12,
        "grace": 10.0,
        "ops": {"writer": 14, "aliases": 16, "deleter": 8, "gc": 3},
    },
}
#: Kills per fresh store: every kill re-reads the whole log and re-hashes every live blob, and moto
#: answers about 80 requests a second, so S3 rounds are kept short.
KILLS_PER_ROUND = {"local": 50, "s3": 20}


@contextlib.contextmanager
def moto_s3() -> Iterator[tuple[str, dict[str, Any]]]:
    """A moto S3 server on loopback; yields its endpoint and the storage_options to reach it."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(k, "testing")
    from tests._moto import atomic_conditional_puts

    atomic_conditional_puts()  # moto's If-None-Match is check-then-put; S3's is one step
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    options = {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        "skip_instance_cache": True,
    }
    try:
        yield endpoint, options
    finally:
        server.stop()


def new_bucket(endpoint: str) -> str:
    import boto3

    name = f"soak-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=name)
    return name


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--long", action="store_true", help="1000 kills and 20 races per backend")
    ap.add_argument("--kills", type=int, help="SIGKILLs per backend (default 50; --long 1000)")
    ap.add_argument("--races", type=int, help="races per backend (default 2; --long 20)")
    ap.add_argument("--backend", choices=["local", "s3", "both"], default="both")
    ap.add_argument("--s3-url", help="a real bucket prefix instead of a local moto server")
    ap.add_argument("--storage-options", default="{}", help="JSON fsspec options for --s3-url")
    ap.add_argument("--workdir", help="where stores and journals go (default: a temp dir)")
    args = ap.parse_args()
    kills = args.kills if args.kills is not None else (1000 if args.long else 50)
    races = args.races if args.races is not None else (20 if args.long else 2)
    backends = ["local", "s3"] if args.backend == "both" else [args.backend]
    work = Path(args.workdir or tempfile.mkdtemp(prefix="artifacts-soak-"))
    os.environ["ARTIFACTS_CACHE_DIR"] = str(work / "cache")
    os.environ.setdefault("ARTIFACTS_USER", "alice")
    totals: Counter[str] = Counter()
    start = time.monotonic()
    zygote = Zygote()
    try:
        with contextlib.ExitStack() as stack:
            endpoint, moto_options = (None, {})
            if "s3" in backends and not args.s3_url:
                endpoint, moto_options = stack.enter_context(moto_s3())

            def store_url(kind: str, label: str) -> tuple[str, dict[str, Any], bool]:
                """(url, storage_options, backdate) for a fresh store."""
                if kind == "local":
                    return str(work / label / "store"), {}, True
                if args.s3_url:
                    return (
                        f"{args.s3_url.rstrip('/')}/{label}",
                        json.loads(args.storage_options),
                        False,
                    )
                return f"s3://{new_bucket(endpoint)}/store", moto_options, True

            for kind in backends:
                cfg = SETTINGS[kind]
                done = 0
                round_no = 0
                while done < kills:
                    n = min(KILLS_PER_ROUND[kind], kills - done)
                    label = f"{kind}-crash-{round_no}"
                    url, options, _ = store_url(kind, label)
                    t = time.monotonic()
                    stats = crash_campaign(
                        zygote,
                        url,
                        options,
                        work / label,
                        kills=n,
                        window=cfg["window"],
                        seed=label,
                        big_kib=cfg["big_kib"],
                        keep=cfg["keep"],
                    )
                    print(f"{label}: {stats} in {time.monotonic() - t:.0f} s", flush=True)
                    totals.update({f"{kind} {k}": v for k, v in stats.items()})
                    done += n
                    round_no += 1
                for r in range(races):
                    label = f"{kind}-race-{r}"
                    url, options, backdate = store_url(kind, label)
                    t = time.monotonic()
                    stats = race_campaign(
                        zygote,
                        url,
                        options,
                        work / label,
                        roles=ROLES,
                        ops=cfg["ops"],
                        quota=12_000,
                        grace=cfg["grace"],
                        backdate=backdate,
                        start_delay=1.0 if kind == "local" else 2.0,
                    )
                    print(f"{label}: {stats} in {time.monotonic() - t:.0f} s", flush=True)
                    totals.update({f"{kind} race {k}": v for k, v in stats.items()})
                    totals[f"{kind} races"] += 1
    except Exception:
        traceback.print_exc()
        print(f"FAILED after {time.monotonic() - start:.0f} s; stores and journals kept in {work}")
        return 1
    finally:
        with contextlib.suppress(Exception):
            zygote.close()
    print(f"all invariants held in {time.monotonic() - start:.0f} s")
    for key in sorted(totals):
        print(f"  {key}: {totals[key]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
