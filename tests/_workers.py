"""The crash and race campaigns: the workers that run in other OS processes, and the drivers that start,
kill and check them (used by `tests/test_concurrency.py` and `benchmarks/soak.py`).

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
    q <name>                    a commit was refused for quota
    g <deleted> <spared>        a gc pass returned
    done <role>                 the worker finished its operations
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import random
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import artifacts
from artifacts import Artifact
from artifacts.catalog.index import Index

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
    big_kib: tuple[int, int] = (256, 1024),
    keep: int = 30,
) -> None:
    """Commit until killed (or ``max_ops`` operations): versions with shared, unique and large blobs,
    runs with metric histories, alias moves and deletions (about ``keep`` versions stay live)."""
    rng = random.Random(seed)
    store = _open(url, options, cache, "alice")
    out = Journal(journal)
    files = sorted(os.path.join(files_dir, n) for n in os.listdir(files_dir))
    mine = [v.ref for n in ("data", "model", "metrics") for v in _versions(store, n)]
    out.write("o", os.getpid())  # opened: the campaign's kill window starts now
    for i in range(max_ops):
        op = rng.random()
        if len(mine) > keep and op < 0.4:
            op = 1.0  # delete
        if op < 0.55:
            name = rng.choice(["data", "model"])
            a = Artifact(
                name, "dataset" if name == "data" else "model", metadata={"seed": seed, "i": i}
            )
            a.add_bytes("unique.txt", f"{seed}-{i}-{rng.random()}".encode())
            a.add_bytes("shared.bin", rng.choice(POOL))
            if rng.random() < 0.3:
                a.add_bytes("big.bin", rng.randbytes(rng.randint(*big_kib) * 1024))
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
    grace: float = 4.0,
) -> None:
    """One racing process: ``writer-<user>``, ``aliases``, ``deleter`` or ``gc``; ``ops`` operations
    (gc: passes until ``stop_file`` exists, at least ``ops``)."""
    rng = random.Random(seed)
    kind, _, user = role.partition("-")
    store = _open(url, options, cache, user or "alice")
    # gc below runs with a grace of seconds; a dedup hit must freshen any blob older than a quarter
    # of it to stay clear of it (the production default is 1 h against a 24 h grace).
    store.blobs.freshen_after = grace / 4
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
                with contextlib.suppress(artifacts.NotFoundError):  # the mover's alias raced us
                    store.delete_version(ref)
                    out.write("d", ref)
                done += 1
            time.sleep(0.05)
        elif kind == "gc":
            report = store.gc(grace_period=grace)
            out.write("g", len(report.deleted), len(report.spared))
            done += 1
            time.sleep(0.3)
        else:
            raise ValueError(role)
    out.write("done", role)


def _versions(store: artifacts.Store, name: str) -> list[artifacts.ArtifactVersion]:
    try:
        return store.versions(name)
    except artifacts.NotFoundError:
        return []


def _live_versions(store: artifacts.Store, name: str) -> list[str]:
    return [v.ref for v in _versions(store, name)]


# -- one user's processes opening a store at once --------------------------------------------------
def first_open_worker(
    url: str, options: dict[str, Any], cache: str, src_dir: str, k: int, start_at: float
) -> None:
    """Open the store on a cache (index, stat cache) that several processes create at this moment,
    and log a directory (many threads consult the stat cache at once)."""
    time.sleep(max(0.0, start_at - time.time()))
    store = _open(url, options, cache, "alice")
    store.log_artifact(Artifact("first", "dataset").add_dir(src_dir).add_bytes("k", b"%d" % k))


# -- the zygote (runs in its own process) ------------------------------------------------------------
def zygote() -> None:
    """Fork a child per ``{"cmd": "run", "fn": ..., "kwargs": {...}}`` line (``fn`` is a function
    of this module or ``"package.module:function"``) and print its pid;
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
                    module, _, name = cmd["fn"].rpartition(":")  # "pkg.module:fn" or "fn"
                    where = vars(importlib.import_module(module)) if module else globals()
                    where[name](**cmd["kwargs"])
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


# -- driving the zygote and checking the outcome (runs in the test or the soak script) ---------------
REPO = Path(__file__).resolve().parent.parent


class Zygote:
    """A warm interpreter (``python -m tests._workers``) that forks workers on request."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests._workers"],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        self._buf = b""
        assert self._readline(60) == "ready"

    def _readline(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                raise TimeoutError("the worker zygote did not answer")
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError("the worker zygote died")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode()

    def _send(self, cmd: dict[str, Any]) -> None:
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())

    def run(self, fn: str, **kwargs: Any) -> int:
        self._send({"cmd": "run", "fn": fn, "kwargs": kwargs})
        return int(self._readline(30))

    def wait(self, pid: int, timeout: float = 120) -> int:
        """Reap ``pid`` and return its wait status; SIGKILL it first if it runs past ``timeout``."""
        self._send({"cmd": "wait", "pid": pid})
        try:
            return int(self._readline(timeout))
        except TimeoutError:
            os.kill(pid, signal.SIGKILL)
            self._readline(30)
            raise AssertionError(f"worker {pid} ran longer than {timeout} s") from None

    def close(self) -> None:
        self._send({"cmd": "quit"})
        self.proc.stdin.close()
        self.proc.wait(30)


def exit_info(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exited with code {os.WEXITSTATUS(status)}"


@contextlib.contextmanager
def other_machine(url: str, options: dict[str, Any], cache: Path) -> Iterator[artifacts.Store]:
    """The store as a machine whose cache (index) is ``cache`` sees it."""
    old = os.environ.get("ARTIFACTS_CACHE_DIR")
    os.environ["ARTIFACTS_CACHE_DIR"] = str(cache)
    try:
        store = artifacts.open_store(url, user="alice", storage_options=options)
        try:
            yield store
        finally:
            store.close()
    finally:
        if old is None:
            del os.environ["ARTIFACTS_CACHE_DIR"]
        else:
            os.environ["ARTIFACTS_CACHE_DIR"] = old


def _wait_opened(journal: Path, pid: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ["o", str(pid)] in read_journal(str(journal)):
            return
        time.sleep(0.005)
    raise AssertionError(f"the writer {pid} did not open the store within {timeout:.0f} s")


class Committed:
    """What a crash writer's journal says returned before each kill, checked against the store."""

    def __init__(self, journal: Path) -> None:
        self.journal = journal
        self.lines = 0
        self.versions: dict[str, str] = {}
        self.maybe_deleted: set[str] = set()
        self.deleted: set[str] = set()
        self.runs: dict[str, str | None] = {}

    def check(self, store: artifacts.Store, when: str) -> None:
        lines = read_journal(str(self.journal))
        store.sync()
        new = lines[self.lines :]
        self.lines = len(lines)
        fresh = []
        for kind, *rest in new:
            if kind == "v":
                self.versions[rest[0]] = rest[1]
                fresh.append(rest[0])
            elif kind == "D":
                self.maybe_deleted.add(rest[0])
            elif kind == "d":
                self.deleted.add(rest[0])
            elif kind == "r":
                self.runs.setdefault(rest[0], None)
            elif kind == "f":
                self.runs[rest[0]] = rest[1]
        for ref, digest in self.versions.items():
            name, _, v = ref.partition(":v")
            try:
                row = store.index.resolve(name, int(v))
            except artifacts.NotFoundError:
                assert ref in self.maybe_deleted, f"{when}: committed {ref} is gone"
                continue
            assert ref not in self.deleted, f"{when}: {ref} was deleted, yet it is there"
            assert row["digest"] == digest, f"{when}: {ref} changed"
        for ref in fresh:  # read the new ones back, verified against their digests
            if ref not in self.maybe_deleted:
                version = store.artifact(ref)
                path = "result.json" if version.name == "metrics" else "unique.txt"
                assert version.digest == self.versions[ref] and version.read_bytes(path)
        for run_id, history in self.runs.items():
            run = store.run(run_id)
            if history is not None:
                assert run.status == "finished", f"{when}: run {run_id} is {run.status}"
                assert run._history_digest == history and run.history(), f"{when}: {run_id}"


def make_old(store: artifacts.Store, digests: Iterable[str], seconds: float = 7200.0) -> None:
    """Backdate blobs, as if uploaded ``seconds`` ago: local mtime, memory:// creation time, or the
    LastModified of a moto server running in this process (the test suite's)."""
    when = time.time() - seconds
    for digest in digests:
        full = store.root.full(store.blobs.relpath(digest))
        if store.root.os_paths:
            os.utime(full, (when, when))
        elif type(store.root).__name__ == "MemoryRoot":
            store.root.fs.store[full].created = datetime.fromtimestamp(when, timezone.utc)
        else:
            from moto.core import DEFAULT_ACCOUNT_ID
            from moto.s3.models import s3_backends

            bucket, key = full.split("/", 1)
            fake = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].buckets[bucket].keys[key]
            fake.last_modified = datetime.fromtimestamp(when, timezone.utc).replace(tzinfo=None)


def crash_campaign(
    zygote: Zygote,
    url: str,
    options: dict[str, Any],
    workdir: Path,
    *,
    kills: int,
    window: tuple[float, float],
    seed: str,
    big_kib: tuple[int, int] = (256, 1024),
    keep: int = 30,
    progress: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """SIGKILL a looping writer ``kills`` times at random moments; after each kill the store verifies
    clean and everything that returned before the kill is there. Raises AssertionError otherwise."""
    store = artifacts.open_store(url, user="alice", storage_options=options)
    files = workdir / "files"
    files.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for i in range(3):
        f = files / f"f{i}.bin"
        f.write_bytes(rng.randbytes(rng.randint(64, 768) * 1024))
        os.utime(f, (1_000_000, 1_000_000))  # old enough for the stat cache to trust
    journal = workdir / "journal"
    child_cache = (
        workdir / "child-cache"
    )  # reused: the killed writer's index must survive the kills
    committed = Committed(journal)
    job = dict(
        url=url,
        options=options,
        cache=str(child_cache),
        journal=str(journal),
        files_dir=str(files),
        big_kib=big_kib,
        keep=keep,
    )
    for cycle in range(kills):
        pid = zygote.run("crash_writer", seed=rng.randrange(1 << 30), **job)
        _wait_opened(journal, pid)  # on a loaded machine opening alone can outlast the window
        time.sleep(rng.uniform(*window))
        os.kill(pid, signal.SIGKILL)
        status = zygote.wait(pid)
        assert os.WIFSIGNALED(status), f"kill {cycle}: the writer {exit_info(status)} before it"
        # every blob is there at its size after each kill, and re-hashed after every fourth and the
        # last (a kill cannot change bytes under a name, only leave them short or missing; the full
        # verify after the uninterrupted run below re-hashes everything once more)
        report = store.verify(quick=cycle % 4 != 3 and cycle != kills - 1)
        assert report.ok, f"after kill {cycle}: {report.problems}"
        committed.check(store, f"after kill {cycle}")
        if progress:
            progress(f"kill {cycle + 1}/{kills}: {len(committed.versions)} versions committed")
    assert len(committed.versions) > kills // 2, "the writer hardly committed anything"

    # left alone after all those kills, a writer finishes normally (a hang shows here, not above)
    pid = zygote.run("crash_writer", seed=-1, max_ops=25, **job)
    status = zygote.wait(pid, timeout=120)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"the writer {exit_info(status)}"
    committed.check(store, "after an uninterrupted run")
    # gc with nothing in flight keeps everything committed; the killed writer's own index and a
    # new machine's agree with ours
    gc = store.gc(grace_period=0)
    assert store.verify().ok
    committed.check(store, "after gc")
    for cache in (child_cache, workdir / "new-machine"):
        with other_machine(url, options, cache) as other:
            for name in ("data", "model", "metrics"):
                ours = [(v.ref, v.digest, v.aliases) for v in store.versions(name)]
                assert [(v.ref, v.digest, v.aliases) for v in other.versions(name)] == ours
            assert other.index.rejected() == []
    store.close()
    return {
        "kills": kills,
        "versions": len(committed.versions),
        "deleted": len(committed.deleted),
        "runs": len(committed.runs),
        "gc_deleted": len(gc.deleted),
    }


def race_campaign(
    zygote: Zygote,
    url: str,
    options: dict[str, Any],
    workdir: Path,
    *,
    roles: list[str],
    ops: dict[str, int],
    quota: int,
    grace: float,
    start_delay: float = 1.0,
    backdate: bool = True,
) -> dict[str, int]:
    """Run ``roles`` at once; then check every invariant (raises AssertionError).

    The store starts with every shared blob orphaned (its versions deleted) and older than the grace
    period, so from the first moment gc sweeps blobs that the writers are reusing. ``backdate`` ages
    them with `make_old`; without it (a real bucket) the race starts once they are old enough.
    """
    store = artifacts.open_store(url, user="alice", storage_options=options)  # admin: created it
    store.set_quota("u0", quota)
    seeded = [
        store.log_artifact(
            Artifact(name, "dataset").add_bytes("shared.bin", blob).add_bytes("own.txt", b"seed")
        )
        for blob, name in zip(POOL, ["alpha", "beta"] * len(POOL), strict=False)
    ]
    for v in seeded[:-2]:
        store.delete_version(v.ref)
    if backdate:
        make_old(store, store.blobs.iter_digests())
    else:
        start_delay = max(start_delay, grace + 1.5)
    stop = workdir / "stop"
    start_at = time.time() + start_delay
    pids = {}
    for i, role in enumerate(roles):
        pids[i] = zygote.run(
            "race_worker",
            role=role,
            url=url,
            options=options,
            cache=str(workdir / f"cache{i}"),
            journal=str(workdir / f"journal{i}"),
            seed=i,
            ops=ops[role.split("-")[0]],
            start_at=start_at,
            stop_file=str(stop),
            grace=grace,
        )
    statuses = {i: zygote.wait(pid) for i, pid in pids.items() if roles[i] != "gc"}
    stop.touch()
    statuses.update({i: zygote.wait(pid) for i, pid in pids.items() if roles[i] == "gc"})
    for i, status in statuses.items():
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, (
            f"{roles[i]} {exit_info(status)}"
        )

    journals = [read_journal(str(workdir / f"journal{i}")) for i in range(len(roles))]
    assert all(j and j[-1][0] == "done" for j in journals), "a worker did not finish"
    lines = [ln for j in journals for ln in j]
    committed = {ln[1]: ln[2] for ln in lines if ln[0] == "v"}
    deleted = {ln[1] for ln in lines if ln[0] == "D"}
    stats = {
        k: sum(1 for ln in lines if ln[0] == c)
        for k, c in (
            ("commits", "v"),
            ("quota_refusals", "q"),
            ("deletes", "d"),
            ("alias_moves", "a"),
            ("gc_passes", "g"),
        )
    }
    stats["gc_deleted"] = sum(int(ln[1]) for ln in lines if ln[0] == "g")
    stats["gc_spared"] = sum(int(ln[2]) for ln in lines if ln[0] == "g")

    # replay the log entry by entry into a fresh index: u0 is never over quota after any entry
    idx = Index(
        workdir / "replay.sqlite", store_id=store.info["id"], admins=[store.info["created_by"]]
    )
    entries = store.log.read_after(0)
    stats["entries"] = len(entries)
    for e in entries:
        assert idx.apply([e]) == [], f"entry {e.seq} was rejected"
        limit = idx.quota("u0")
        assert limit is None or idx.usage("u0") <= limit, f"u0 over quota after entry {e.seq}"
    store.sync()
    names = [r[0] for r in idx._conn.execute("SELECT name FROM artifacts")]
    for name in names:
        numbers = [r["version"] for r in idx.versions(name, include_deleted=True)]
        assert numbers == list(range(len(numbers))), f"{name}: versions not gapless: {numbers}"
        assert numbers == [r["version"] for r in store.index.versions(name, include_deleted=True)]
    for ref, digest in committed.items():
        name, _, v = ref.partition(":v")
        row = idx._conn.execute(
            "SELECT digest, deleted FROM versions WHERE name=? AND version=?", (name, int(v))
        ).fetchone()
        assert row is not None and row["digest"] == digest, f"committed {ref} is not in the log"
        assert not row["deleted"] or ref in deleted, f"{ref} was deleted by nobody"
    dangling = idx._conn.execute(
        "SELECT a.name, a.alias FROM aliases a LEFT JOIN versions v"
        " ON v.name = a.name AND v.version = a.version WHERE v.id IS NULL OR v.deleted != 0"
    ).fetchall()
    assert not dangling, f"aliases on dead versions: {[tuple(r) for r in dangling]}"
    for name, alias in idx._conn.execute("SELECT name, alias FROM aliases"):
        assert store.artifact(f"{name}:{alias}").read_bytes("own.txt")
    idx.close()

    report = store.verify()
    assert report.ok, report.problems
    store.gc(grace_period=0)  # nothing in flight now: sweep everything unreferenced
    assert store.verify().ok
    for name in names:
        for v in store.versions(name):
            assert v.read_bytes("own.txt")
    store.close()
    return stats


if __name__ == "__main__":
    zygote()
