"""Packs, snapshots and the LIST-based reader: any mix of snapshot + packs + entries gives exactly the
index a full replay of ``log/`` gives, damaged or racing objects are warned about and skipped, and the
S3 request budget holds. Tiny pack and snapshot sizes (via the environment) keep it fast."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import artifacts
from artifacts import StoreWarning
from artifacts.catalog import snapshots as snaps
from artifacts.catalog.index import Index
from artifacts.catalog.log import RawEntry, log_path
from artifacts.catalog.packs import PackError, PackName, decode_pack, encode_pack
from tests._snapshots import checked_copy, rewrite_newest_snapshot
from tests.conftest import Backend

ROOT = Path(__file__).resolve().parent.parent


# -- helpers ---------------------------------------------------------------------------------------
def dump(conn: sqlite3.Connection) -> dict[str, list[tuple[Any, ...]]]:
    tables = [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    return {
        t: sorted(tuple(r) for r in conn.execute(f'SELECT * FROM "{t}"').fetchall()) for t in tables
    }


def replay_dump(store: artifacts.Store) -> dict[str, list[tuple[Any, ...]]]:
    """The reference: an index built from the ``log/`` entries alone, one by one (what main does)."""
    with tempfile.TemporaryDirectory() as tmp:
        index = Index(
            Path(tmp) / "ref.sqlite",
            store_id=store.info["id"],
            admins=[store.info["created_by"]],
        )
        seq, entries = 1, []
        while True:
            got = store.root.read_many([log_path(seq)])
            if not got:
                break
            entries.append(RawEntry(seq, got[log_path(seq)]))
            seq += 1
        index.apply(entries)
        out = dump(index._conn)
        index.close()
        return out


def answers(store: artifacts.Store) -> list[Any]:
    """What the public API says, beside the raw tables."""
    out: list[Any] = [[(a.name, a.versions, a.size) for a in store.artifacts()]]
    for a in store.artifacts():
        out.append([(v.ref, v.digest, v.aliases) for v in store.versions(a.name)])
    out.append(sorted((r.id, r.status) for r in store.runs()))
    return out


@contextmanager
def cold(b: Backend, monkeypatch: pytest.MonkeyPatch, tmp: Path) -> Iterator[tuple[Any, list[str]]]:
    """Open ``b`` onto an empty cache, collecting the StoreWarnings the open raises."""
    cache = Path(tempfile.mkdtemp(dir=tmp, prefix="cache-"))
    monkeypatch.setenv("ARTIFACTS_CACHE_DIR", str(cache))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store = artifacts.open_store(b.url, storage_options=b.storage_options)
        store.reader.background.wait(30)
    msgs = [str(w.message) for w in caught if issubclass(w.category, StoreWarning)]
    try:
        yield store, msgs
    finally:
        store.close()


def fill(store: artifacts.Store, rng: random.Random, n: int) -> None:
    """``n`` random operations through the public API (versions, aliases, deletes, runs)."""
    for _ in range(n):
        op = rng.choice("vvvarfd")
        name = rng.choice("ab")
        try:
            if op == "v":
                store.log_artifact(
                    artifacts.Artifact(name, "dataset").add_bytes("x", bytes([rng.randrange(6)]))
                )
            elif op == "a":
                store.set_alias(f"{name}:latest", rng.choice(["best", "prod"]))
            elif op == "d":
                store.delete_version(f"{name}:v{rng.randrange(3)}")
            elif op == "r":
                with store.start_run(project="p", config={"lr": rng.random()}) as run:
                    run.log({"loss": rng.random()})
            else:  # a malformed entry a careless writer left: rejected alike by every reader
                seq = store.index.last_seq + 1
                store.root.create_exclusive(log_path(seq), b'{"seq": %d, "garbage"' % seq)
                store.sync()
        except artifacts.ArtifactsError:
            pass


def small(
    monkeypatch: pytest.MonkeyPatch, pack: int = 3, every: int = 7, subs: tuple[int, ...] = ()
) -> None:
    monkeypatch.setenv("ARTIFACTS_PACK_SIZE", str(pack))
    monkeypatch.setenv("ARTIFACTS_SUB_PACKS", ",".join(map(str, subs)))
    monkeypatch.setenv("ARTIFACTS_SNAPSHOT_EVERY", str(every))


def build(b: Backend, monkeypatch: pytest.MonkeyPatch, n: int, seed: int = 0) -> artifacts.Store:
    store = artifacts.open_store(b.url, storage_options=b.storage_options)
    fill(store, random.Random(seed), n)
    store.reader.background.wait(30)
    return store


def scale_problems(report: Any) -> list[str]:
    """verify's lines about packs and snapshots (the random logs hold rejected entries on purpose)."""
    return [p for p in report.problems if "pack" in p or "snapshot" in p]


def objects(store: artifacts.Store, prefix: str) -> list[str]:
    return [f"{prefix}/{n}" for n in store.root.list_after(prefix)]


# -- packs alone -----------------------------------------------------------------------------------
def test_pack_bytes_are_the_entries_and_damage_is_named() -> None:
    entries = [RawEntry(s, b'{"seq":%d}' % s) for s in range(4, 7)]
    name = PackName(4, 6)
    data = encode_pack(entries)
    assert encode_pack(entries) == data  # deterministic: racing writers make the same object
    assert decode_pack(name, data) == entries
    for bad, what in [
        (data[:-1], "truncated"),
        (data[:-2] + b"X}", "corrupt"),
        (b"not a pack", "unparsable"),
        (data.replace(b'"first":4', b'"first":5'), "not its name"),
    ]:
        with pytest.raises(PackError, match="packs/00000000000000000004-00000000000000000006.pack"):
            decode_pack(name, bad)
        with pytest.raises(PackError, match=what):
            decode_pack(name, bad)
    shifted = encode_pack(
        [RawEntry(4 + i, e.data) for i, e in enumerate(entries[1:] + entries[:1])]
    )
    with pytest.raises(PackError, match="claims sequence"):
        decode_pack(name, shifted)


# -- the property: any mix answers as a full replay ------------------------------------------------
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 10**6),
    n=st.integers(1, 30),
    sizes=st.sampled_from([(1,), (2,), (3,), (4,), (5,), (4, 2), (6, 3), (6, 2, 1), (8, 4, 2)]),
    every=st.integers(1, 9),
    damage=st.lists(st.sampled_from(["del", "trunc", "flip"]), max_size=6),
)
def test_any_mix_of_snapshot_packs_and_entries_equals_full_replay(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    seed: int,
    n: int,
    sizes: tuple[int, ...],
    every: int,
    damage: list[str],
) -> None:
    """Packs of several sizes (sub-packs: the writer makes them all, overlapping) included."""
    small(monkeypatch, sizes[0], every, sizes[1:])
    monkeypatch.setenv("ARTIFACTS_CACHE_DIR", tempfile.mkdtemp(dir=tmp_path))
    b = Backend("local", tempfile.mkdtemp(dir=tmp_path))
    store = build(b, monkeypatch, n, seed)
    want, want_answers = replay_dump(store), answers(store)
    assert dump(store.index._conn) == want  # the writer's own index, built by commits and syncs
    store.close()
    rng = random.Random(seed)
    victims = (
        objects(store, "packs") + objects(store, "snapshots") + objects(store, "snapshot-data")
    )
    damaged = set()
    for how in damage:
        if not victims:
            break
        rel = victims.pop(rng.randrange(len(victims)))
        damaged.add(rel)
        path = Path(b.url) / rel
        if how == "del":
            path.unlink()
        elif how == "trunc":
            path.write_bytes(path.read_bytes()[: rng.randrange(max(1, path.stat().st_size))])
        else:
            data = bytearray(path.read_bytes())
            data[rng.randrange(len(data))] ^= 0x5A
            path.write_bytes(bytes(data))
    with cold(b, monkeypatch, tmp_path) as (again, msgs):
        assert dump(again.index._conn) == want
        assert answers(again) == want_answers
    for m in msgs:  # every warning names an object that was damaged (or one a damaged one names)
        assert any(d.rsplit("/", 1)[-1][:36] in m or d.split("/")[-1][:16] in m for d in damaged), m


# -- damaged, stale and missing objects, local and S3 ----------------------------------------------
def test_damaged_and_stale_objects_are_named_and_skipped(
    shared_backend: Backend, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    small(monkeypatch, pack=4, every=8)
    store = build(shared_backend, monkeypatch, 26)
    want = replay_dump(store)
    root = store.root
    descs = snaps.all_snapshots(root)
    assert len(descs) >= 2, descs
    newest = snaps.read_descriptor(root, descs[0])
    # the newest snapshot's data is corrupt; a newer descriptor is garbage; one for another schema
    root.write(newest.data_path, b"\x00" * 64)
    root.create_exclusive(f"snapshots/{newest.seq + 1:020d}-{'0' * 16}.json", b"{not json")
    # a pack after the second snapshot is truncated
    second = snaps.read_descriptor(root, descs[1])
    packs = [p for p in objects(store, "packs") if int(p[6:26]) > second.seq]
    assert packs
    root.write(packs[0], root.read(packs[0])[:-3])
    store.close()
    with cold(shared_backend, monkeypatch, tmp_path) as (again, msgs):
        assert dump(again.index._conn) == want
        text = "\n".join(msgs)
        assert newest.path in text and "corrupt" in text
        assert f"{newest.seq + 1:020d}" in text and "unparsable" in text
        assert packs[0] in text and "truncated" in text
        problems = "\n".join(again.verify().problems)
        assert newest.path in problems and packs[0] in problems
    # the hint points at a snapshot that is gone: a slower listing, same answers, no crash
    for rel in objects(store, "snapshots"):
        if rel != "snapshots/hint.json":
            root.delete(rel)
    root.write("snapshots/hint.json", b'{"seq": 999999}')
    with cold(shared_backend, monkeypatch, tmp_path) as (again, msgs):
        assert dump(again.index._conn) == want


def test_gc_replaces_a_damaged_pack_by_the_one_its_entries_make(
    shared_backend: Backend, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    small(monkeypatch, pack=4, every=0)
    store = build(shared_backend, monkeypatch, 14)
    want = replay_dump(store)
    root = store.root
    packs = objects(store, "packs")
    assert len(packs) >= 2, packs
    good = {p: root.read(p) for p in packs}
    root.write(packs[0], good[packs[0]][:-3])  # truncated
    root.write(packs[1], good[packs[1]].replace(b'"', b"'", 1))  # garbled
    assert store.gc(grace_period=3600).packs_repaired == ()  # younger than the grace period
    time.sleep(1.2)  # older than the grace period of 0, as the store's clock sees it
    dry = store.gc(grace_period=0, dry_run=True)
    assert sorted(dry.packs_repaired) == sorted(packs[:2]) and root.read(packs[1]) != good[packs[1]]
    report = store.gc(grace_period=0)
    assert sorted(report.packs_repaired) == sorted(packs[:2])
    assert {p: root.read(p) for p in packs} == good  # the same bytes any writer would make
    assert not scale_problems(store.verify())
    store.close()
    with cold(shared_backend, monkeypatch, tmp_path) as (again, msgs):
        assert dump(again.index._conn) == want
        assert not [m for m in msgs if "pack" in m], msgs


# -- sub-packs: the tail after the last full pack ----------------------------------------------------
def commits(store: artifacts.Store, n: int) -> None:
    for i in range(n):
        store.log_artifact(artifacts.Artifact(f"d{i % 3}", "dataset").add_bytes("x", b"%d" % i))
    store.reader.background.wait(30)


@contextmanager
def reads(store: artifacts.Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The objects read through the store's kind of Root (found ones), in order."""
    cls, got = type(store.root), []
    read_many, read = cls.read_many, cls.read

    def many(self: Any, rels: list[str], limit: int | None = None) -> dict[str, bytes]:
        out = read_many(self, rels, limit)
        got.extend(r for r in rels if r in out)
        return out

    def one(self: Any, rel: str, limit: int | None = None) -> bytes:
        data = read(self, rel, limit)
        got.append(rel)
        return data

    with monkeypatch.context() as m:
        m.setattr(cls, "read_many", many)
        m.setattr(cls, "read", one)
        yield got


def pack_name(first: int, size: int) -> str:
    return PackName(first, first + size - 1).path


def test_a_cold_open_reads_the_tail_as_the_fewest_sub_packs(
    shared_backend: Backend, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """27-entry packs with sub-packs of 9 and 3, one commit at a time (so the writer made every
    sub-pack too): 2 x 27 + 2 x 9 + 2 x 3 + 2 entries open as those 8 objects, largest first."""
    small(monkeypatch, pack=27, every=0, subs=(9, 3))
    store = artifacts.open_store(shared_backend.url, storage_options=shared_backend.storage_options)
    commits(store, 80)
    want = replay_dump(store)
    made = objects(store, "packs")
    assert pack_name(1, 9) in made and pack_name(55, 3) in made  # covered ones are there too
    assert pack_name(19, 9) not in made  # crossing 27 makes the 27-pack alone
    store.close()
    with reads(store, monkeypatch) as opened, cold(shared_backend, monkeypatch, tmp_path) as (s, msgs):
        assert not msgs and dump(s.index._conn) == want
        got = list(opened)
        del opened[:]
        commits(s, 1)  # entry 81 completes 55-81: made from what the open read, no entry fetched
        assert not [r for r in opened if r.startswith("log/")], opened
        assert pack_name(55, 27) in objects(s, "packs")
    packs = [pack_name(1, 27), pack_name(28, 27), pack_name(55, 9), pack_name(64, 9)]
    packs += [pack_name(73, 3), pack_name(76, 3)]
    assert [r for r in got if r.startswith("packs/")] == packs
    assert [r for r in got if r.startswith("log/")] == [log_path(79), log_path(80)]
    assert len(got) <= len(packs) + 2 + 2, got  # and store.json (+ a cache marker)
    assert sorted(objects(store, "packs")) == sorted([*made, pack_name(55, 27)])  # and no other


def test_a_damaged_pack_is_read_from_the_smaller_packs_inside_it(
    shared_backend: Backend, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    small(monkeypatch, pack=8, every=0, subs=(4, 2))
    store = artifacts.open_store(shared_backend.url, storage_options=shared_backend.storage_options)
    commits(store, 22)
    want = replay_dump(store)
    root = store.root
    store.close()
    big, mid, tail = pack_name(9, 8), pack_name(9, 4), pack_name(21, 2)
    # 9-16 truncated: read from the packs inside it, 9-12 (damaged: its 2-pack 9-10 and entries 11,
    # 12 instead) and 13-14, then 15-16 (no pack: crossing 16 made the 8-pack alone) from entries
    root.write(big, root.read(big)[:-3])
    root.write(mid, root.read(mid).replace(b'"', b"'", 1))
    root.write(tail, root.read(tail)[:-1])  # a damaged sub-pack falls back to its entries
    with reads(store, monkeypatch) as opened, cold(shared_backend, monkeypatch, tmp_path) as (s, msgs):
        assert dump(s.index._conn) == want
        got = list(opened)
        problems = scale_problems(s.verify())
    assert [next(n for n in (big, mid, tail) if n in m) for m in msgs] == [big, mid, tail], msgs
    assert "from smaller packs and entries" in msgs[1] and msgs[2].endswith("from entries")
    assert [r for r in got if r.startswith("packs/")] == [
        pack_name(1, 8), big, pack_name(17, 4), tail,
        mid, pack_name(13, 2), pack_name(9, 2),
    ]  # fmt: skip
    assert [r for r in got if r.startswith("log/")] == [log_path(s) for s in (11, 12, 15, 16, 21, 22)]
    assert all(any(n in p for p in problems) for n in (big, mid, tail)), problems


def test_gc_drops_sub_packs_a_larger_good_pack_covers_after_the_grace_period(
    shared_backend: Backend, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    small(monkeypatch, pack=8, every=0, subs=(4, 2))
    store = build(shared_backend, monkeypatch, 0)
    commits(store, 20)
    want = replay_dump(store)
    root = store.root
    covered = [pack_name(f, n) for f, n in [(1, 2), (1, 4), (5, 2), (9, 2), (9, 4), (13, 2)]]
    covered.append(pack_name(17, 2))
    kept = [pack_name(1, 8), pack_name(9, 8), pack_name(17, 4)]
    assert sorted(objects(store, "packs")) == sorted(covered + kept)
    assert not scale_problems(store.verify())  # sub-packs are checked as packs are
    report = store.gc(grace_period=3600)
    assert report.packs_dropped == () and len(objects(store, "packs")) == len(covered + kept)
    root.write(kept[1], root.read(kept[1])[:-3])  # a damaged pack covers nothing
    time.sleep(1.2)  # older than the grace period of 0, as the store's clock sees it
    dry = store.gc(grace_period=0, dry_run=True)
    spared = [pack_name(9, 4), pack_name(13, 2)]  # 9-10: the good 9-12 covers it
    assert sorted(dry.packs_dropped) == sorted(set(covered) - set(spared))
    assert len(objects(store, "packs")) == len(covered + kept)
    report = store.gc(grace_period=0)
    assert report.packs_repaired == (kept[1],)
    assert sorted(report.packs_dropped) == sorted(dry.packs_dropped)
    assert sorted(objects(store, "packs")) == sorted(kept + spared)
    time.sleep(1.2)  # the repaired pack is young: its sub-packs go once it is old too
    assert sorted(store.gc(grace_period=0).packs_dropped) == sorted(spared)
    assert sorted(objects(store, "packs")) == sorted(kept)
    assert not scale_problems(store.verify())
    store.close()
    with cold(shared_backend, monkeypatch, tmp_path) as (again, msgs):
        assert not msgs and dump(again.index._conn) == want


def test_pack_sizes_derive_from_the_pack_size() -> None:
    from artifacts.catalog.tail import ScaleConfig

    assert ScaleConfig().pack_sizes == (1000, 100, 10)
    assert ScaleConfig(pack_size=100).pack_sizes == (100, 10)
    assert ScaleConfig(pack_size=3).pack_sizes == (3,)
    assert ScaleConfig(pack_size=250).pack_sizes == (250, 25)
    assert ScaleConfig(pack_size=0).pack_sizes == ()
    assert ScaleConfig(pack_size=12, sub_packs=(5, 4, 2)).pack_sizes == (12, 4, 2)


def test_snapshot_for_another_schema_is_skipped_with_a_warning(
    local_backend: Backend, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    small(monkeypatch, pack=0, every=5)
    store = build(local_backend, monkeypatch, 12)
    want = replay_dump(store)
    desc = snaps.read_descriptor(store.root, snaps.list_snapshots(store.root)[0])
    fake = snaps.Snapshot(**{**desc.to_dict(), "index_format": 999, "seq": desc.seq + 1})
    store.root.create_exclusive(fake.path, fake.to_json().encode())
    store.close()
    with cold(local_backend, monkeypatch, tmp_path) as (again, msgs):
        assert dump(again.index._conn) == want
        assert any(fake.path in m and "index format 999" in m for m in msgs), msgs
        assert not scale_problems(again.verify())  # stale (an upgrade), not damage


def test_replay_compare_catches_a_snapshot_that_lies(
    local_backend: Backend, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A snapshot whose checks all pass but whose content is wrong is found by verify(snapshots=True)."""
    small(monkeypatch, pack=0, every=6)
    store = build(local_backend, monkeypatch, 8)
    store.close()
    rewrite_newest_snapshot(store.root, lambda c: c.execute("UPDATE artifacts SET type='model'"))
    with cold(local_backend, monkeypatch, tmp_path) as (again, _):
        assert not scale_problems(again.verify())
        problems = again.verify(snapshots=True).problems
        assert any("differs from a replay" in p and "artifacts" in p for p in problems), problems


def test_a_snapshot_loads_page_for_page_and_only_into_an_empty_index(
    local_backend: Backend, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The cold open makes the index a copy of the checked file (SQLite's backup, not row by row): a
    connection another process holds on the index sees the loaded state, the index stays in WAL mode,
    and an index that moved meanwhile is left alone."""
    small(monkeypatch, pack=0, every=6)
    store = build(local_backend, monkeypatch, 8)
    store.close()
    desc = snaps.read_descriptor(store.root, snaps.list_snapshots(store.root)[0])
    with tempfile.TemporaryDirectory() as tmp:
        path = checked_copy(store.root, desc, tmp)
        src = sqlite3.connect(path)
        want = dump(src)
        src.close()
        index = Index(
            Path(tmp) / "index.sqlite", store_id=desc.store_id, admins=[store.info["created_by"]]
        )
        other = sqlite3.connect(index.path, isolation_level=None)  # another process's view
        assert other.execute("SELECT COUNT(*) FROM versions").fetchone()[0] == 0
        assert snaps.load_snapshot(index._conn, path, desc.path)
        assert dump(index._conn) == want and dump(other) == want
        assert index.last_seq == desc.seq
        assert index._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        index.apply([RawEntry(desc.seq + 1, store.root.read(log_path(desc.seq + 1)))])
        moved = dump(index._conn)
        assert not snaps.load_snapshot(index._conn, path, desc.path)  # not empty any more
        assert dump(other) == moved
        other.close()
        index.close()


def test_a_snapshot_the_index_cannot_copy_is_skipped_with_a_warning(
    shared_backend: Backend, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A snapshot whose checks pass but whose pages SQLite will not copy into the index (another page
    size) is named, and the open goes on with an older one, packs and the log."""
    small(monkeypatch, pack=3, every=6)
    store = build(shared_backend, monkeypatch, 14)
    want = replay_dump(store)
    store.close()

    def bigger_pages(conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA page_size=8192")
        conn.execute("VACUUM")

    desc, bigger = rewrite_newest_snapshot(store.root, bigger_pages)
    assert bigger.digest != desc.digest
    with cold(shared_backend, monkeypatch, tmp_path) as (again, msgs):
        assert dump(again.index._conn) == want
        assert any(bigger.path in m and "cannot be copied" in m for m in msgs), msgs


def test_gc_keeps_the_newest_usable_snapshot_and_removes_older_ones_after_grace(
    local_backend: Backend, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    small(monkeypatch, pack=3, every=4)
    store = build(local_backend, monkeypatch, 14)
    root = store.root
    names = snaps.all_snapshots(root)
    assert len(names) >= 3
    orphan = "snapshot-data/" + "e" * 64 + ".sqlite.z"
    root.write(orphan, b"left by a writer killed before its descriptor")
    assert store.gc(3600).snapshots_removed == ()  # all young
    for rel in objects(store, "snapshots") + objects(store, "snapshot-data"):
        os.utime(Path(local_backend.url) / rel, (time.time() - 7200, time.time() - 7200))
    removed = set(store.gc(3600).snapshots_removed)
    keep = snaps.read_descriptor(root, names[0])
    assert orphan in removed and set(names[1:]) <= removed
    assert names[0] not in removed and keep.data_path not in removed
    want = replay_dump(store)
    store.close()
    with cold(local_backend, monkeypatch, tmp_path) as (again, msgs):
        assert not msgs and dump(again.index._conn) == want


# -- races and kills -------------------------------------------------------------------------------
_OPENER = """
import os, sys, time
import artifacts
s = artifacts.open_store(sys.argv[1])
while time.time() < float(sys.argv[2]):
    time.sleep(0.001)
s.sync()
s.close(wait=60)
"""


def test_two_readers_racing_make_the_same_packs_and_snapshots(
    local_backend: Backend, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A store written without packs (as main writes it) gets them from two new readers at once."""
    small(monkeypatch, pack=0, every=0)
    store = build(local_backend, monkeypatch, 20)
    want = replay_dump(store)
    head = store.index.last_seq
    store.close()
    assert not objects(store, "packs") and not objects(store, "snapshots")
    start = time.time() + 2
    procs = []
    for i in range(2):
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "ARTIFACTS_CACHE_DIR": str(tmp_path / f"c{i}"),
        }
        env.update(ARTIFACTS_PACK_SIZE="4", ARTIFACTS_SUB_PACKS="2", ARTIFACTS_SNAPSHOT_EVERY="8")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", _OPENER, local_backend.url, str(start)], env=env
            )
        )
    assert [p.wait(60) for p in procs] == [0, 0]
    assert len(objects(store, "packs")) == head // 4 + head % 4 // 2  # and the tail's sub-pack
    assert snaps.list_snapshots(store.root)
    with cold(local_backend, monkeypatch, tmp_path) as (again, msgs):
        assert not msgs and dump(again.index._conn) == want
        assert not scale_problems(again.verify(snapshots=True))


_MAKER = """
import os, shutil, sys
import artifacts
cache = os.environ["ARTIFACTS_CACHE_DIR"]
while True:  # drop every pack and snapshot (as a hasty operator might), then make them all again
    shutil.rmtree(cache, ignore_errors=True)
    s = artifacts.open_store(sys.argv[1])
    s.reader.background.wait()  # (deleting under a snapshot being written is gc's grace period's job)
    for prefix in ("snapshots", "packs", "snapshot-data"):
        for name in s.root.list_after(prefix):
            s.root.delete(f"{prefix}/{name}")
    s.reindex()
    s.close(wait=60)
"""


def test_sigkill_while_making_packs_and_snapshots_leaves_the_store_usable(
    shared_backend: Backend, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    small(monkeypatch, pack=0, every=0)
    store = build(shared_backend, monkeypatch, 40)
    want = replay_dump(store)
    store.close()
    rng = random.Random(7)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ARTIFACTS_CACHE_DIR": str(tmp_path / "k")}
    env.update(ARTIFACTS_PACK_SIZE="2", ARTIFACTS_SNAPSHOT_EVERY="3")
    opts = repr(shared_backend.storage_options)
    code = _MAKER.replace(
        "artifacts.open_store(sys.argv[1])",
        f"artifacts.open_store(sys.argv[1], storage_options={opts})",
    )
    for _ in range(4):
        p = subprocess.Popen([sys.executable, "-c", code, shared_backend.url], env=env)
        time.sleep(rng.uniform(1.0, 3.0))
        os.kill(p.pid, signal.SIGKILL)
        p.wait(10)
        assert p.returncode == -signal.SIGKILL
        with cold(shared_backend, monkeypatch, tmp_path) as (again, msgs):
            assert not msgs, msgs  # no half-made object is ever visible
            assert dump(again.index._conn) == want
    with cold(shared_backend, monkeypatch, tmp_path) as (again, _):
        assert not scale_problems(again.verify())


# -- the S3 request economy ------------------------------------------------------------------------
class Requests(logging.Handler):
    """moto's server logs one werkzeug line per HTTP request: count those naming our bucket."""

    def __init__(self, bucket: str) -> None:
        super().__init__()
        self.bucket, self.lines = bucket, []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if f"/{self.bucket}" in msg:
            self.lines.append(msg.split('"')[1] if '"' in msg else msg)

    @contextmanager
    def count(self) -> Iterator[list[str]]:
        self.lines = []
        got: list[str] = []
        yield got
        got.extend(self.lines)


def test_s3_request_budget(
    s3_backend: Backend, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    small(monkeypatch, pack=5, every=20)
    b = s3_backend
    store = build(b, monkeypatch, 30)
    log = logging.getLogger("werkzeug")
    counter = Requests(b.url.split("/")[2])
    log.addHandler(counter)
    old_level = log.level
    log.setLevel(logging.INFO)
    try:
        entries = store.index.last_seq
        with counter.count() as warm:
            artifacts.open_store(b.url, storage_options=b.storage_options).close()
        assert len(warm) <= 2, warm
        cmd = ["artifacts", "--store", b.url, "--storage-options", json.dumps(b.storage_options)]
        env = {**os.environ, "PYTHONPATH": os.getcwd()}
        with counter.count() as cli_warm:  # the command line opens no differently
            subprocess.run([*cmd, "ls"], env=env, check=True, capture_output=True)
        assert len(cli_warm) <= 2, "\n".join(cli_warm)
        with counter.count() as commit:
            store.log_artifact(artifacts.Artifact("c", "dataset").add_bytes("x", b"new"))
        blob_puts = [r for r in commit if r.startswith("PUT") and "/blobs/" in r]
        assert len(commit) - len(blob_puts) <= 3, commit
        store.close()
        monkeypatch.setenv("ARTIFACTS_CACHE_DIR", str(tmp_path / "fresh"))
        with counter.count() as cold_open:
            s = artifacts.open_store(b.url, storage_options=b.storage_options)
        probes = [r for r in cold_open if r.startswith("HEAD")]
        assert not probes, cold_open  # no directory checks for plain keys
        assert len(cold_open) <= 10 + (entries + 1) // 5, cold_open
        assert len(cold_open) < entries // 2  # far fewer than one GET per entry
        s.close()
    finally:
        log.removeHandler(counter)
        log.setLevel(old_level)
