"""Typed log entries: every field of every operation is checked on decode, so one malformed entry is
rejected with its sequence number by every reader and never takes `ls`, `show`, `runs`, `put`, `verify`
or `reindex` down with a traceback (issue 11 item 1)."""

from __future__ import annotations

import copy
import functools
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import artifacts
from artifacts.catalog import entries as E
from artifacts.catalog.index import Index
from artifacts.catalog.log import RawEntry
from artifacts.manifest import FileEntry, Manifest
from tests.test_cli import Cli

D1, D2 = "1" * 64, "2" * 64
BIG = 2**63


def manifest(**sizes: int) -> dict[str, Any]:
    return Manifest.build([FileEntry(p, D1, s) for p, s in sizes.items()]).to_json()


def version_entry(name: str = "w", **sizes: int) -> dict[str, Any]:
    m = manifest(**(sizes or {"f": 1}))
    return {
        "op": "version_logged",
        "name": name,
        "type": "dataset",
        "digest": Manifest.from_json(m).digest,
        "manifest": m,
        "metadata": {},
        "description": "",
        "aliases": [],
        "run_id": None,
    }


RUN = "r0000000001"
#: one valid entry per operation, in an order in which each applies after the ones before it
EXAMPLES: dict[str, dict[str, Any]] = {
    "run_started": {
        "op": "run_started",
        "run": {
            "id": RUN,
            "project": "p",
            "name": "n",
            "group": None,
            "job_type": "train",
            "config": {"lr": 0.1},
            "host": "h",
            "command": ["python", "x.py"],
            "git": None,
            "env": {},
            "tags": ["baseline"],
            "notes": "first try",
        },
    },
    "version_logged": {**version_entry(), "run_id": RUN, "aliases": ["best"]},
    "artifact_used": {"op": "artifact_used", "run_id": RUN, "name": "w", "version": 0},
    "alias_set": {"op": "alias_set", "name": "w", "version": 0, "alias": "good"},
    "alias_removed": {"op": "alias_removed", "name": "w", "alias": "good"},
    "run_finished": {
        "op": "run_finished",
        "run_id": RUN,
        "status": "finished",
        "summary": {"acc": 1},
        "history": None,
        "chunks": 3,
        "config": {"lr": 0.2},
    },
    "run_updated": {
        "op": "run_updated",
        "run_id": RUN,
        "name": "renamed",
        "tags": ["best"],
        "notes": None,
    },
    "quota_set": {"op": "quota_set", "target": "bob", "bytes": 10},
    "admin_added": {"op": "admin_added", "target": "bob"},
    "version_deleted": {"op": "version_deleted", "name": "w", "version": 0},
}


def raw(seq: int, body: dict[str, Any], user: str = "alice") -> RawEntry:
    obj = {"format": 1, "seq": seq, "user": user, "ts": "2026-01-01T00:00:00+00:00", **body}
    return RawEntry(seq, json.dumps(obj).encode())


def test_every_operation_has_an_example() -> None:
    assert set(EXAMPLES) == set(E.OPERATIONS)


def test_examples_round_trip_byte_for_byte_and_apply(tmp_path: Path) -> None:
    index = Index(tmp_path / "i.sqlite", store_id="s", admins=["alice"])
    rows = [raw(i, body) for i, body in enumerate(EXAMPLES.values(), 1)]
    for r in rows:
        entry = E.decode(r.seq, r.data)
        assert E.decode(r.seq, E.encode(entry)) == entry
        assert json.loads(entry.to_json()) == json.loads(r.data)
    assert index.apply(rows) == []


def test_unknown_optional_fields_are_ignored_and_missing_ones_default() -> None:
    body = copy.deepcopy(EXAMPLES["run_started"])
    body["run"]["tags"] = ["from", "a", "newer", "writer"]
    body["commit_id"] = "abc"
    e = E.decode(1, raw(1, body).data)
    assert isinstance(e, E.RunStarted) and e.id == RUN
    bare = {"op": "run_started", "run": {"id": RUN, "project": "p"}}
    e = E.decode(1, raw(1, bare).data)
    assert isinstance(e, E.RunStarted) and (e.config, e.command, e.name) == ({}, None, None)
    e = E.decode(2, raw(2, {"op": "quota_set", "target": "bob", "bytes": None}).data)
    assert isinstance(e, E.QuotaSet) and e.bytes is None


# (operation, where to put the bad value, the bad value, a word the rejection must contain)
CASES: list[tuple[str, tuple[Any, ...], Any, str]] = [
    ("version_logged", ("description",), ["a", "list"], "description must be a string"),
    ("version_logged", ("ts",), {"an": "object"}, "ts must be a string"),
    ("version_logged", ("manifest", "files", "f", "size"), BIG, "size of 'f'"),
    ("version_logged", ("manifest", "files", "f", "size"), True, "size of 'f'"),
    ("version_logged", ("manifest",), manifest(a=2**62, b=2**62), "add up to"),
    ("version_logged", ("metadata",), json.loads("[" * 200 + "]" * 200), "JSON object"),
    ("version_logged", ("metadata", "deep"), json.loads("[" * 200 + "]" * 200), "nested deeper"),
    ("version_logged", ("aliases",), "best", "aliases must be a list"),
    ("version_logged", ("aliases",), [["best"]], "aliases[0]"),
    ("version_logged", ("name",), 10**20, "name"),
    ("version_logged", ("digest",), 7, "digest"),
    ("version_logged", ("manifest", "files", "f", "digest"), 12, "manifest"),
    ("version_logged", ("run_id",), {"id": "x"}, "run_id"),
    ("artifact_used", ("version",), 10**20, "version is 100000000000000000000"),
    ("alias_set", ("version",), -1, "version is -1"),
    ("alias_set", ("alias",), ["best"], "alias"),
    ("alias_removed", ("name",), {"n": 1}, "name"),
    ("version_deleted", ("version",), 1.5, "version must be an integer"),
    ("quota_set", ("bytes",), 10**30, "bytes is"),
    ("quota_set", ("bytes",), float("inf"), "bytes must be an integer"),
    ("quota_set", ("bytes",), False, "bytes must be an integer"),
    ("quota_set", ("target",), None, "target"),
    ("admin_added", ("target",), {"user": "bob"}, "target"),
    ("run_started", ("run", "id"), {"id": 1}, "run.id"),
    ("run_started", ("run", "host"), ["h"], "run.host must be a string"),
    ("run_started", ("run", "config"), "lr=1", "run.config must be a JSON object"),
    ("run_started", ("run", "command"), [1, 2], "run.command[0]"),
    ("run_started", ("run",), ["not", "an", "object"], "'run' must be an object"),
    ("run_finished", ("status",), {"s": 1}, "status must be one of"),
    ("run_finished", ("summary",), [1], "summary must be a JSON object"),
    ("run_finished", ("history",), "not-a-digest", "history"),
    ("run_finished", ("user",), ["alice"], "user"),
    ("run_finished", ("seq",), "3", "claims sequence"),
]


def mutate(op: str, path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    body = copy.deepcopy(EXAMPLES[op])
    if op == "version_logged":
        body["run_id"] = None
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return body


@pytest.fixture
def damaged(local_backend: Any) -> tuple[Cli, artifacts.Store]:
    """A store with a version, a running run and a finished one, its CLI and its Python facade."""
    cli = Cli(local_backend.url)
    cli.ok("init")
    store = artifacts.open_store(local_backend.url)
    a = artifacts.Artifact("w", type="dataset")
    a.add_bytes("f", b"fine")
    store.log_artifact(a)
    with store.start_run(project="p") as run:
        run.log({"acc": 1})
    return cli, store


def _write_next(store: artifacts.Store, body: dict[str, Any]) -> int:
    seq = store.log.head() + 1
    entry = {"format": 1, "seq": seq, "user": "alice", "ts": "2026-01-01T00:00:00+00:00"}
    if "seq" in body or "ts" in body or "user" in body:
        entry |= {k: body.pop(k) for k in ("seq", "ts", "user") if k in body}
    store.root.create_exclusive(f"log/{seq:020d}.json", json.dumps({**entry, **body}).encode())
    return seq


def _every_command_still_works(cli: Cli, tmp_path: Path, seq: int, word: str) -> None:
    assert "w" in [a["name"] for a in cli.json("ls")]
    assert "w:v0" in cli.ok("show", "w").stdout
    assert cli.json("runs")
    (tmp_path / "new.txt").write_text(f"after {seq}")
    cli.ok("put", "after", str(tmp_path / "new.txt"), "--type", "dataset")
    for command in (("verify",), ("reindex",), ("verify",)):
        result = cli(*command)
        assert result.exit_code == (0 if command == ("reindex",) else 1), result.output
    line = next(x for x in cli("verify").output.splitlines() if f"log entry {seq} " in x)
    assert f"log entry {seq} was rejected" in line and word in line, line


@pytest.mark.parametrize(
    ("op", "path", "value", "word"),
    CASES,
    ids=[f"{c[0]}-{'.'.join(map(str, c[1]))}-{type(c[2]).__name__}" for c in CASES],
)
def test_malformed_field_is_rejected_with_its_seq(
    damaged: tuple[Cli, artifacts.Store],
    tmp_path: Path,
    op: str,
    path: tuple[Any, ...],
    value: Any,
    word: str,
) -> None:
    cli, store = damaged
    seq = _write_next(store, mutate(op, path, value))
    with pytest.raises(E.EntryError, match=".*"):
        E.decode(seq, store.root.read(f"log/{seq:020d}.json"))
    _every_command_still_works(cli, tmp_path, seq, word)
    assert dict(artifacts.open_store(store.url).index.rejected())[seq]  # another reader agrees


def test_sizes_summed_over_entries_stay_within_sqlite(
    damaged: tuple[Cli, artifacts.Store], tmp_path: Path
) -> None:
    """Each entry is fine alone; the one that would take the store's total past 2^63-1 is refused."""
    cli, store = damaged
    first = _write_next(store, version_entry("huge1", a=2**62))
    second = _write_next(store, version_entry("huge2", a=2**62))
    store.sync()
    rejected = dict(store.index.rejected())
    assert first not in rejected and "add up to" in rejected[second]
    assert {a.name for a in store.artifacts()} == {"w", "huge1"}
    _every_command_still_works(cli, tmp_path, second, "add up to")


def test_writer_never_commits_what_readers_would_reject(tmp_path: Path) -> None:
    store = artifacts.open_store(tmp_path / "s")
    a = artifacts.Artifact(
        "w", type="dataset", metadata={"deep": json.loads("[" * 100 + "]" * 100)}
    )
    a.add_bytes("f", b"x")
    with pytest.raises(artifacts.InvalidValueError, match="nested deeper"):
        store.log_artifact(a)
    assert store.log.head() == 0


# -- property: random JSON at every decoder, then replayed --------------------------------------------
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=8)
    | st.sampled_from(["w", "p", "alice", "bob", RUN, D1, "finished", "best", "v1", "latest"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=12,
)


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    return out


@st.composite
def fuzzed_entries(draw: st.DrawFn) -> dict[str, Any]:
    op = draw(st.sampled_from(sorted(EXAMPLES)))
    body = copy.deepcopy(EXAMPLES[op])
    for _ in range(draw(st.integers(0, 3))):
        fields = [p for p in _paths(body) if p != ("op",)]
        path = draw(st.sampled_from([*fields, ("user",), ("ts",), ("extra",)]))
        target = body
        for key in path[:-1]:
            target = (
                target[key] if isinstance(target.get(key), dict) else target.setdefault(key, {})
            )
        target[path[-1]] = draw(json_values)
    return body


@settings(max_examples=250, deadline=None)
@given(st.lists(fuzzed_entries(), min_size=1, max_size=6))
def test_random_entries_decode_or_are_refused_and_replay(bodies: list[dict[str, Any]]) -> None:
    """Whatever JSON an entry holds, decoding raises only EntryError, the rules only our errors, and
    the index answers every query afterwards."""
    # in memory where the OS has it: deleting 250 fsync'd index files from a busy disk took 10 s
    with tempfile.TemporaryDirectory(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as d:
        path = Path(d) / "i.sqlite"
        shutil.copyfile(_empty_index(), path)  # a copy opens in 1 ms; a new schema takes 200
        _replay(Index(path, store_id="s", admins=["alice"]), bodies)


@functools.cache
def _empty_index() -> Path:
    """A new index file, made once per session and copied for each example."""
    path = Path(tempfile.mkdtemp(prefix="empty-index-")) / "i.sqlite"
    Index(path, store_id="s", admins=["alice"]).close()
    return path


def _replay(index: Index, bodies: list[dict[str, Any]]) -> None:
    try:
        rows = [raw(i, body) for i, body in enumerate(bodies, 1)]
        for r in rows:
            user = json.loads(r.data).get("user")
            try:
                entry = E.decode(r.seq, r.data)
            except E.EntryError:
                continue
            assert entry.user == user and isinstance(entry, E.OPERATIONS[entry.OP])
            assert E.decode(r.seq, E.encode(entry)) == entry
        rejected = dict(index.apply(rows))
        assert index.last_seq == len(rows)
        assert set(rejected) <= {r.seq for r in rows}
        index.artifacts(), index.runs(), index.usage("alice"), index.live_digests()
        for name in ("w",):
            for row in index.versions(name, include_deleted=True):
                index.files(row["id"])
    finally:
        index.close()
