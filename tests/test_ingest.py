"""The batched ingest of many local files (storage.batch) and what the catalog does with it."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import artifacts
import storage.batch as batch_mod
from artifacts import Artifact
from storage import StatCache
from storage.statcache import stat_key
from tests.conftest import Backend
from tests.test_storage import CountingCallback, b3, open_store


def _tree(top: Path, n: int, dirs: int = 3, size: int = 700, old: bool = True) -> list[Path]:
    paths = []
    then = time.time() - 60
    for i in range(n):
        p = top / f"d{i % dirs}" / f"f{i:03d}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(bytes([i % 251]) * (size + i))
        if old:
            os.utime(p, (then, then))
        paths.append(p)
    return paths


def test_stat_cache_bulk_lookup_and_store(tmp_path: Path) -> None:
    cache = StatCache(tmp_path / "stat.sqlite")
    paths = _tree(tmp_path / "a", 5) + _tree(tmp_path / "b", 2)  # two trees: no common directory
    keys = {str(p): stat_key(os.stat(p)) for p in paths}
    cache.store_many((p, k, f"{i:064x}") for i, (p, k) in enumerate(keys.items()))
    assert cache.lookup_many(keys.items()) == {p: f"{i:064x}" for i, p in enumerate(keys)}
    one_tree = {p: k for p, k in keys.items() if "/a/" in p}  # one directory: the range scan
    assert set(cache.lookup_many(one_tree.items())) == set(one_tree)
    changed = str(paths[0])
    k = keys[changed]
    stale = {changed: (k[0], k[1] + 1, k[2], k[3]), str(paths[1]): keys[str(paths[1])]}
    assert cache.lookup_many(stale.items()) == {str(paths[1]): "0" * 63 + "1"}
    fresh = tmp_path / "fresh.bin"
    fresh.write_bytes(b"x")  # written just now: inside the racy window, never remembered
    cache.store_many([(str(fresh), stat_key(os.stat(fresh)), "f" * 64)])
    bad = os.fsdecode(b"/nonutf8-\xff")  # not storable in SQLite text: skipped, not an error
    cache.store_many([(bad, (1, 1, 1, 1), "e" * 64)])
    assert cache.lookup_many([(str(fresh), stat_key(os.stat(fresh))), (bad, (1, 1, 1, 1))]) == {}


def test_put_files_is_one_batch(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = StatCache(tmp_path / "stat.sqlite")
    store = open_store(backend, stat_cache=cache)
    paths = _tree(tmp_path / "in", 150)  # more than one slice of the pool
    big = tmp_path / "in" / "big.bin"
    big.write_bytes(os.urandom(batch_mod.SMALL_MAX + 10))  # streamed, not read whole
    paths.append(big)
    lookups: list[int] = []
    real_lookup = cache.lookup_many

    def counting_lookup(items: Any) -> dict[str, str]:
        items = list(items)
        lookups.append(len(items))
        return real_lookup(items)

    monkeypatch.setattr(cache, "lookup_many", counting_lookup)
    cb = CountingCallback()
    first = store.put_files(paths, callback=cb)
    assert [r.digest for r in first] == [b3(p.read_bytes()) for p in paths]
    assert cb.size == cb.total == sum(p.stat().st_size for p in paths)
    assert all(r.written for r in first)
    assert lookups == [len(paths)]  # one query for all of them

    # Unchanged: nothing is read, every digest comes from the stat cache.
    def no_read(*a: Any, **k: Any) -> Any:
        raise AssertionError("an unchanged file was read")

    with monkeypatch.context() as m:
        m.setattr(batch_mod, "read_small", no_read)
        again = store.put_files(paths)
    assert [(r.digest, r.written) for r in again] == [(r.digest, False) for r in first]

    # One file changed (same size, new mtime): only it is read again.
    paths[7].write_bytes(b"Z" * paths[7].stat().st_size)
    os.utime(paths[7], (time.time() - 30, time.time() - 30))
    read: list[str] = []
    real_read = batch_mod.read_small
    with monkeypatch.context() as m:
        m.setattr(batch_mod, "read_small", lambda p, k: read.append(p) or real_read(p, k))
        third = store.put_files(paths)
    assert read == [str(paths[7])]
    assert third[7].digest == b3(paths[7].read_bytes()) and third[7].written


def test_put_files_error_in_a_worker_surfaces(backend: Backend, tmp_path: Path) -> None:
    store = open_store(backend)
    paths = _tree(tmp_path / "in", 100)
    keys = [stat_key(os.stat(p)) for p in paths]
    paths[80].unlink()  # vanishes between the walk and the put
    with pytest.raises(artifacts.NotFoundError) as e:
        store.put_files([str(p) for p in paths], keys=keys)
    assert str(paths[80]) in str(e.value)


def test_unchanged_reput_writes_no_log_entry(backend: Backend, tmp_path: Path) -> None:
    store = artifacts.open_store(backend.url, storage_options=backend.storage_options)
    _tree(tmp_path / "data", 20)
    v0 = store.log_artifact(Artifact("ds", "dataset").add_dir(tmp_path / "data"))
    head = store.index.last_seq
    again = store.log_artifact(Artifact("ds", "dataset").add_dir(tmp_path / "data"))
    assert (again.version, again.digest) == (v0.version, v0.digest)
    assert store.index.last_seq == head  # nothing to record: no entry
    tagged = store.log_artifact(Artifact("ds", "dataset").add_dir(tmp_path / "data"), ["best"])
    assert tagged.version == 0 and "best" in tagged.aliases and store.index.last_seq == head + 1
    with pytest.raises(artifacts.ArtifactsError, match="type"):  # still refused, not skipped
        store.log_artifact(Artifact("ds", "model").add_dir(tmp_path / "data"))
    with store.start_run(project="p") as run:  # a run to record as producer: an entry
        run.log_artifact(Artifact("ds", "dataset").add_dir(tmp_path / "data"))
    assert store.index.last_seq > head + 1
    assert [v.ref for v in run.outputs()] == ["ds:v0"]


def test_quota_hashes_each_buffer_once(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = artifacts.open_store(backend.url, storage_options=backend.storage_options)
    store.set_quota(store.user, 10**6)
    import artifacts.store as store_mod
    import storage._localput as local_mod
    import storage._remoteput as remote_mod
    import storage.blobs as blobs_mod

    calls: list[int] = []
    for mod in (store_mod, blobs_mod, local_mod, remote_mod):
        real = mod.hash_bytes
        monkeypatch.setattr(mod, "hash_bytes", lambda d, real=real: calls.append(len(d)) or real(d))
    art = Artifact("m", "model").add_bytes("a", b"a" * 1000).add_bytes("b", b"b" * 2000)
    _tree(tmp_path / "files", 4)
    art.add_dir(tmp_path / "files", prefix="files")
    v = store.log_artifact(art)
    assert sorted(n for n in calls if n in (1000, 2000)) == [1000, 2000]  # once each
    assert store.usage() == v.size
    with pytest.raises(artifacts.QuotaExceededError):
        store.log_artifact(Artifact("m2", "model").add_bytes("c", b"c" * 10**6))


def test_stale_walk_stat_is_read_again_and_the_real_state_remembered(tmp_path: Path) -> None:
    cache = StatCache(tmp_path / "stat.sqlite")
    store = open_store(Backend("local", str(tmp_path / "store")), stat_cache=cache)
    (p,) = _tree(tmp_path / "in", 1)
    real = stat_key(os.stat(p))
    stale = (real[0], real[1] - 10**9, real[2], real[3])  # what a walk saw before a later save
    (r,) = store.put_files([str(p)], keys=[stale])
    assert r.digest == b3(p.read_bytes())
    assert cache.lookup_many([(str(p), real)]) == {str(p): r.digest}
    assert cache.lookup_many([(str(p), stale)]) == {}


# -- the unchanged re-put (issue 16 item 1) ----------------------------------------------------------
def _no(what: str) -> Any:
    def fail(*a: Any, **k: Any) -> Any:
        raise AssertionError(f"an unchanged re-put {what}")

    return fail


def test_unchanged_reput_reads_stores_and_freshens_nothing(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = artifacts.open_store(backend.url, storage_options=backend.storage_options)
    _tree(tmp_path / "data", 70)
    odd = tmp_path / "data" / "d0-x" / "f.bin"  # the walk gives d0/... first; sorted, d0-x/ is first
    odd.parent.mkdir()
    odd.write_bytes(b"odd")
    os.utime(odd, (time.time() - 60, time.time() - 60))
    v0 = store.log_artifact(Artifact("ds", "dataset").add_dir(tmp_path / "data"))
    with monkeypatch.context() as m:
        m.setattr(store.blobs, "_freshen", _no("freshened a blob"))
        m.setattr(store.blobs, "put_files", _no("stored files"))
        m.setattr(store.blobs, "put_bytes", _no("stored a manifest"))
        m.setattr(batch_mod, "read_small", _no("read a file"))
        again = store.log_artifact(Artifact("ds", "dataset").add_dir(tmp_path / "data"))
    assert (again.version, again.digest) == (v0.version, v0.digest)

    # one file changed: the full put, which stores it and makes a new version
    changed = tmp_path / "data" / "d1" / "f004.bin"
    changed.write_bytes(b"new content")
    v1 = store.log_artifact(Artifact("ds", "dataset").add_dir(tmp_path / "data"))
    assert v1.version == 1 and v1.read_bytes("d1/f004.bin") == b"new content"
    # the same files under another name, or with in-memory extras: not this path, still no re-upload
    other = store.log_artifact(Artifact("ds2", "dataset").add_dir(tmp_path / "data"))
    assert other.digest == v1.digest
    mixed = Artifact("ds", "dataset").add_dir(tmp_path / "data").add_bytes("extra", b"x")
    assert store.log_artifact(mixed).version == 2


def test_unchanged_reput_stores_again_a_blob_set_aside_as_corrupt(local_backend: Backend, tmp_path: Path) -> None:
    """`verify` sets a damaged blob aside; putting the same content again must repair it, even when
    the put is an unchanged re-put of the latest version (the README's promise)."""
    store = artifacts.open_store(local_backend.url)
    paths = _tree(tmp_path / "data", 5)
    v0 = store.log_artifact(Artifact("ds", "dataset").add_dir(tmp_path / "data"))
    digest = v0.file("d0/f000.bin").digest
    blob = store.blobs.local_path(digest)
    os.chmod(blob, 0o644)
    with open(blob, "r+b") as f:
        f.write(b"\xff")  # same size, one byte off: only a full verify sees it
    assert not store.verify().ok  # sets it aside under corrupt/
    again = store.log_artifact(Artifact("ds", "dataset").add_dir(tmp_path / "data"))
    assert again.version == v0.version
    assert store.artifact("ds:v0").read_bytes("d0/f000.bin") == paths[0].read_bytes()
    assert store.verify().ok


def test_walk_checks_names_the_fast_path_does_not_cover(tmp_path: Path) -> None:
    """Plain ASCII names skip the full path check; anything else still gets it, in a plain or an
    odd directory alike, with the same refusals as before."""
    top = tmp_path / "t"
    (top / "plain").mkdir(parents=True)
    (top / "plain" / "a.bin").write_bytes(b"a")
    (top / "café").mkdir()
    (top / "café" / "b.bin").write_bytes(b"b")  # plain name, non-ASCII (NFC) directory
    (top / "plain" / "ünï.txt").write_bytes(b"c")
    art = Artifact("t", "dataset").add_dir(top, prefix="p/q")
    assert sorted(s.path for s in art) == ["p/q/café/b.bin", "p/q/plain/a.bin", "p/q/plain/ünï.txt"]
    assert all(s.key == stat_key(os.stat(s.source)) for s in art if s.source)

    nfd = tmp_path / "nfd"
    (nfd / "cafe\u0301").mkdir(parents=True)  # NFD directory name: refused whatever its files are
    (nfd / "cafe\u0301" / "x.bin").write_bytes(b"x")
    with pytest.raises(artifacts.InvalidPathError, match="NFC"):
        Artifact("n", "dataset").add_dir(nfd)
    back = tmp_path / "back"
    back.mkdir()
    (back / "a\\b").write_bytes(b"x")  # a backslash: refused as before
    with pytest.raises(artifacts.InvalidPathError):
        Artifact("b", "dataset").add_dir(back)
    with pytest.raises(artifacts.InvalidPathError):  # a bad prefix, even over plain names
        Artifact("p", "dataset").add_dir(top / "plain", prefix="../up")

    art = Artifact("d", "dataset").add_file(top / "plain" / "a.bin", name="x/a.bin")
    (top / "x").mkdir()
    (top / "x" / "a.bin").write_bytes(b"dup")
    (top / "x" / "b.bin").write_bytes(b"b")
    with pytest.raises(artifacts.InvalidPathError, match="already added"):
        art.add_dir(top / "x", prefix="x")
    assert [s.path for s in art] == ["x/a.bin"]  # all or nothing: b.bin was not staged either


def test_walked_staged_equals_a_constructed_one(tmp_path: Path) -> None:
    import dataclasses

    from artifacts.artifact import Staged

    made = Staged("a/b", 3, source="/x/a/b", key=(3, 1, 2, 4))
    walked = Staged.walked("a/b", 3, "/x/a/b", (3, 1, 2, 4))
    assert walked == made and walked.meta == {}
    assert dataclasses.replace(walked, path="c") == Staged("c", 3, source="/x/a/b", key=(3, 1, 2, 4))
    with pytest.raises(dataclasses.FrozenInstanceError):
        walked.path = "z"  # type: ignore[misc]
    with pytest.raises(TypeError):
        walked.meta["k"] = 1  # type: ignore[index]  # the shared empty meta is read-only


def test_stat_cache_range_scan_finds_exactly_the_files_below_the_common_directory(tmp_path: Path) -> None:
    """The common directory comes from the least and greatest path; names that sort around '/'
    ('a-b', 'a.b', 'a0') must neither be missed nor confuse the range."""
    cache = StatCache(tmp_path / "stat.sqlite")
    names = ["a/x", "a/y/z", "a-b/x", "a.b/x", "a0/x", "a/b-c/x"]
    for n in names:
        (tmp_path / "t" / n).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "t" / n).write_bytes(n.encode())
        os.utime(tmp_path / "t" / n, (time.time() - 60, time.time() - 60))
    keys = {str(tmp_path / "t" / n): stat_key(os.stat(tmp_path / "t" / n)) for n in names}
    cache.store_many((p, k, b3(p.encode())) for p, k in keys.items())
    for subset in (keys, {p: k for p, k in keys.items() if "/t/a/" in p}):
        assert cache.lookup_many(subset.items()) == {p: b3(p.encode()) for p in subset}


_segment = st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.lists(_segment, min_size=1, max_size=3).map("/".join),
        st.tuples(
            st.text("0123456789abcdef", min_size=64, max_size=64),
            st.integers(0, 2**63 - 1),
            st.sampled_from([{}, {}, {"dtype": "F32", "shape": [2, 3]}]),
        ),
        max_size=8,
    )
)
def test_plain_manifest_encoding_is_canonical_json_byte_for_byte(files: dict[str, Any]) -> None:
    """The fast encoding names versions: one byte off and an unchanged re-put would look changed
    (or, worse, two encoders would disagree about a version's identity). Any path characters (JSON
    escapes, non-ASCII, quotes), any size; an entry with extras falls back to the general encoder."""
    from artifacts.manifest import FileEntry, Manifest, canonical_json, encode_plain

    m = Manifest.build([FileEntry(p, d, n, meta) for p, (d, n, meta) in files.items()])
    general = canonical_json(m.to_json())
    assert m.encode() == general
    plain = encode_plain((e.path, e.digest, e.size, e.meta) for e in m.entries)
    assert plain == (None if any(e.meta for e in m.entries) else general)
    unsorted = [(e.path, e.digest, e.size, e.meta) for e in reversed(m.entries)]
    if len(unsorted) > 1:
        assert encode_plain(unsorted) is None  # not what Manifest.build gives: the caller falls back
