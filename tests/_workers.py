"""Code that runs in other OS processes for the crash and race tests.

Crash tests fork writers from a *zygote*: one interpreter that has already imported `artifacts`, s3fs
and botocore, reads one JSON command per line on stdin and forks a child per ``run`` command, so each
kill cycle costs a ``fork`` instead of an interpreter start (about 0.5 s). The test SIGKILLs the child
by pid, then asks the zygote to reap it (``wait``) before it inspects the store.

Every worker appends what it has done to a journal file, one line per *returned* call, flushed and
fsynced before the next call starts, so the test knows exactly which commits returned before a kill.
Journal lines are ``<kind> <fields...>``:

    v <ref> <manifest digest>   a version was logged (store.log_artifact or run.log_artifact returned)
    D <ref>                     about to delete <ref> (written before the call: it may or may not land)
    d <ref>                     the delete returned
    r <run id>                  a run was started
    f <run id> <history digest> the run finished with this metric history
    a <ref> <alias>             an alias was set
    g <deleted> <spared>        a gc pass returned
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sys
import time
from typing import Any

import artifacts
from artifacts import Artifact

# content shared by every worker, so puts dedup against blobs of live and of deleted versions alike
POOL = [bytes([i]) * (3000 + 17 * i) for i in range(12)]


class Journal:
    def __init__(self, path: str) -> None:
        self._f = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the worker

    def write(self, *fields: object) -> None:
        self._f.write(" ".join(str(f) for f in fields) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())


def read_journal(path: str) -> list[list[str]]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return []
    lines = text.split("\n")
    return [
        ln.split(" ") for ln in lines[:-1] if ln
    ]  # a last line without "\n" was cut by the kill


def _open(url: str, options: dict[str, Any], cache: str, user: str) -> artifacts.Store:
    os.environ["ARTIFACTS_CACHE_DIR"] = cache
    return artifacts.open_store(url, user=user, storage_options=options)


# -- crash writer ------------------------------------------------------------------------------------
def crash_writer(
    url: str,
    options: dict[str, Any],
    cache: str,
    journal: str,
    seed: int,
    files_dir: str,
    max_ops: int = 100_000,
) -> None:
    """Commit until killed (or ``max_ops`` operations): versions with shared, unique and large blobs,
    runs with metric histories, alias moves and deletions of its own earlier versions."""
    rng = random.Random(seed)
    store = _open(url, options, cache, "alice")
    out = Journal(journal)
    files = sorted(os.path.join(files_dir, n) for n in os.listdir(files_dir))
    mine: list[str] = []
    for i in range(max_ops):
        op = rng.random()
        if op < 0.55:
            name = rng.choice(["data", "model"])
            a = Artifact(
                name, "dataset" if name == "data" else "model", metadata={"seed": seed, "i": i}
            )
            a.add_bytes("unique.txt", f"{seed}-{i}-{rng.random()}".encode())
            a.add_bytes("shared.bin", rng.choice(POOL))
            if rng.random() < 0.3:
                a.add_bytes("big.bin", rng.randbytes(rng.randint(256, 1024) * 1024))
            if rng.random() < 0.3:
                a.add_file(rng.choice(files), name="file.bin")
            aliases = ["best"] if rng.random() < 0.3 else []
            v = store.log_artifact(a, aliases=aliases)
            out.write("v", v.ref, v.digest)
            mine.append(v.ref)
        elif op < 0.7:
            with store.start_run(project="crash", config={"seed": seed, "i": i}) as run:
                out.write("r", run.id)
                if mine:
                    with contextlib.suppress(artifacts.NotFoundError):  # we deleted it earlier
                        run.use_artifact(rng.choice(mine))
                for step in range(rng.randint(1, 5)):
                    run.log({"loss": 1.0 / (step + 1), "i": i}, step=step)
                a = Artifact("metrics", "result").add_json("result.json", {"seed": seed, "i": i})
                v = run.log_artifact(a)
                out.write("v", v.ref, v.digest)
                mine.append(v.ref)
            out.write("f", run.id, store.run(run.id)._history_digest)
        elif op < 0.85 and mine:
            ref = rng.choice(mine)
            if _live(store, ref):
                store.set_alias(ref, "pinned")
                out.write("a", ref, "pinned")
        elif mine:
            ref = mine.pop(rng.randrange(len(mine)))
            out.write("D", ref)
            with contextlib.suppress(artifacts.NotFoundError):
                store.delete_version(ref)
            out.write("d", ref)


def _live(store: artifacts.Store, ref: str) -> bool:
    try:
        store.artifact(ref)
    except artifacts.NotFoundError:
        return False
    return True


# -- race workers ------------------------------------------------------------------------------------
def race_worker(
    role: str,
    url: str,
    options: dict[str, Any],
    cache: str,
    journal: str,
    seed: int,
    ops: int,
    start_at: float,
    stop_file: str,
) -> None:
    """One racing process: ``writer-<user>``, ``aliases``, ``deleter`` or ``gc``; ``ops`` operations
    (gc: passes until ``stop_file`` exists, at least ``ops``)."""
    rng = random.Random(seed)
    kind, _, user = role.partition("-")
    store = _open(url, options, cache, user or "alice")
    # gc below runs with a 4 s grace; a dedup hit must freshen any blob older than 1 s to stay clear
    # of it (the production default is 1 h against a 24 h grace: the same margin, scaled).
    store.blobs.freshen_after = 1.0
    out = Journal(journal)
    time.sleep(max(0.0, start_at - time.time()))  # every role starts at the same moment
    names = ["alpha", "beta"]
    done = 0
    deadline = start_at + 120
    while (
        done < ops or (kind == "gc" and not os.path.exists(stop_file))
    ) and time.time() < deadline:
        name = rng.choice(names)
        if kind == "writer":
            a = Artifact(name, "dataset", metadata={"by": role})
            a.add_bytes("shared.bin", rng.choice(POOL))
            a.add_bytes("own.txt", f"{role}-{seed}-{done}".encode())
            try:
                v = store.log_artifact(a)
            except artifacts.QuotaExceededError:
                out.write("q", name)
            else:
                out.write("v", v.ref, v.digest)
            done += 1
        elif kind == "aliases":
            live = _live_versions(store, name)
            if live:
                ref = rng.choice(live)
                try:
                    store.set_alias(ref, rng.choice(["prod", "stable"]))
                    out.write("a", ref)
                except artifacts.NotFoundError:
                    pass  # deleted between our choice and the commit: correctly refused
                done += 1
            else:
                time.sleep(0.05)
        elif kind == "deleter":
            live = _live_versions(store, name)
            if len(live) > 1:
                ref = rng.choice(live[:-1])
                out.write("D", ref)
                try:
                    store.delete_version(ref)
                    out.write("d", ref)
                except artifacts.NotFoundError:
                    pass
                done += 1
            time.sleep(0.05)
        elif kind == "gc":
            report = store.gc(grace_period=4.0)
            out.write("g", len(report.deleted), len(report.spared))
            done += 1
            time.sleep(0.3)
        else:
            raise ValueError(role)
    out.write("done", role)


def _live_versions(store: artifacts.Store, name: str) -> list[str]:
    try:
        return [v.ref for v in store.versions(name)]
    except artifacts.NotFoundError:
        return []


# -- the zygote --------------------------------------------------------------------------------------
def zygote() -> None:
    """Fork a child per ``{"cmd": "run", "fn": ..., "kwargs": {...}}`` line and print its pid;
    ``{"cmd": "wait", "pid": N}`` reaps it and prints its status. Imports happen once, here."""
    import s3fs  # noqa: F401 - imported once so that forked children start warm
    import sqlite_utils  # noqa: F401

    print("ready", flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "run":
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    signal.signal(signal.SIGINT, signal.SIG_DFL)
                    globals()[cmd["fn"]](**cmd["kwargs"])
                except BaseException as e:  # reported to the test through the exit status
                    print(f"worker failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
                    code = 3
                finally:
                    os._exit(code)
            print(pid, flush=True)
        elif cmd["cmd"] == "wait":
            _, status = os.waitpid(cmd["pid"], 0)
            print(status, flush=True)
        else:
            return


if __name__ == "__main__":
    zygote()
