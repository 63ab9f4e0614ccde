"""store.json's id is untrusted, two copies of a store never share an index, and an index built from
another log is rebuilt (issue 11, item 3).

The id once named the index file on every reader's machine unchecked (``../../x`` made readers create
and replace ``*.sqlite`` files outside their cache), and two copies of one store (``cp -r``, an S3 sync,
a restored backup) shared one index and answered with each other's versions.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import artifacts
from artifacts.catalog.identity import check_store_id
from tests.conftest import Backend

HOSTILE_IDS: list[Any] = [
    "../../../evil",
    "../escape",
    "/tmp/absolute",
    "a/b",
    "..",
    ".",
    "",
    "-rf",
    ".hidden",
    "a b",
    "tab\there",
    "nul\x00byte",
    "ünïcode",
    "x" * 65,
    "C:\\windows",
    "back\\slash",
    "name.sqlite",
    "id\n",
    5,
    None,
    ["list"],
    {"an": "object"},
    True,
]


def _open(b: Backend, user: str = "alice") -> artifacts.Store:
    return artifacts.open_store(b.url, user=user, storage_options=b.storage_options)


def _files_under(top: Path) -> set[str]:
    return {str(p.relative_to(top)) for p in top.rglob("*")}


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache dir two levels down, so that an id with '..' has somewhere to escape to."""
    cache = tmp_path / "home" / "cache"
    cache.mkdir(parents=True)
    monkeypatch.setenv("ARTIFACTS_CACHE_DIR", str(cache))
    return tmp_path


def test_hostile_store_ids_are_refused_and_create_nothing(
    shared_backend: Backend, sandbox: Path
) -> None:
    store = _open(shared_backend)
    good = json.loads(store.root.read("store.json"))
    store.close()
    shutil.rmtree(sandbox / "home" / "cache")
    (sandbox / "home" / "cache").mkdir()
    outside = sandbox / "home"
    before = _files_under(outside) - {"cache"}
    # the shape check is the same on every backend (the property test below covers the class); on
    # S3, where each open costs a new client, a third of the list shows that the same check runs
    for bad in HOSTILE_IDS if shared_backend.kind == "local" else HOSTILE_IDS[::3]:
        store.root.write("store.json", json.dumps({**good, "id": bad}).encode())
        with pytest.raises(artifacts.IntegrityError, match="invalid store id") as e:
            _open(shared_backend)
        assert "\n" not in str(e.value) and len(str(e.value)) < 400
        assert _files_under(outside) - {"cache"} == before, bad  # nothing written anywhere
        assert not list((sandbox / "home" / "cache").rglob("*.sqlite")), bad
    for field, bad in [("created_by", {"x": 1}), ("created_by", "a/b"), ("format", None)]:
        store.root.write("store.json", json.dumps({**good, field: bad}).encode())
        with pytest.raises(artifacts.IntegrityError):
            _open(shared_backend)
    store.root.write("store.json", json.dumps(good).encode())
    assert _open(shared_backend).artifacts() == []  # the real id opens again


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=80), st.from_regex(r"[A-Za-z0-9_./\\-]{0,70}", fullmatch=True)))
def test_any_store_id_is_accepted_as_a_plain_name_or_refused(value: str) -> None:
    """The class: every string either is refused or names one file directly in index/."""
    try:
        sid = check_store_id(value, "store.json")
    except artifacts.IntegrityError as e:
        assert "\n" not in str(e)
        return
    assert sid == value and 1 <= len(sid) <= 64
    cache = Path(tempfile.gettempdir()) / "cache"
    target = (cache / "index" / f"{sid}-0123456789abcdef.sqlite").resolve()
    assert target.parent == (cache / "index").resolve() and not sid.startswith((".", "-"))
    assert set(sid) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def test_hostile_id_through_the_cli_is_one_line(local_backend: Backend, sandbox: Path) -> None:
    from click.testing import CliRunner

    from artifacts.cli import main

    store = _open(local_backend)
    info = json.loads(store.root.read("store.json"))
    store.root.write("store.json", json.dumps({**info, "id": "../../../pwned"}).encode())
    result = CliRunner().invoke(main, ["--store", local_backend.url, "ls"])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1 and "invalid store id" in lines[0], lines
    assert not list(sandbox.rglob("pwned*"))


# -- two copies of one store ----------------------------------------------------------------------
def _v(name: str, data: bytes) -> artifacts.Artifact:
    a = artifacts.Artifact(name, type="dataset")
    a.add_bytes("x", data)
    return a


def _copy(src: artifacts.Store, dst: Backend) -> None:
    """The whole store, byte for byte, to another root: what cp -r or aws s3 sync does."""
    fs = src.root.fs
    for path in fs.find(src.root.path):
        rel = path[len(src.root.path) :].lstrip("/")
        dst_full = f"{dst.url.split('://', 1)[-1].rstrip('/')}/{rel}"
        if dst.kind == "local":
            Path(dst_full).parent.mkdir(parents=True, exist_ok=True)
            Path(dst_full).write_bytes(fs.cat_file(path))
        else:
            fs.pipe_file(dst_full, fs.cat_file(path))


def _second(b: Backend, tmp_path: Path, s3_endpoint: str | None) -> Backend:
    if b.kind == "local":
        return Backend("local", str(tmp_path / "copy"))
    return Backend("s3", b.url + "-copy", b.storage_options)


def test_two_copies_of_one_store_never_share_an_index(
    shared_backend: Backend, tmp_path: Path
) -> None:
    a = _open(shared_backend)
    a.log_artifact(_v("d", b"shared history"))
    copy = _second(shared_backend, tmp_path, None)
    _copy(a, copy)
    b = _open(copy)
    assert b.info["id"] == a.info["id"]  # a true copy: same id
    assert b.index.path != a.index.path
    b.log_artifact(_v("d", b"only in the copy"))
    a.log_artifact(_v("other", b"only in the original"))
    a.close()
    b.close()
    for _ in range(2):  # fresh opens, from the caches the first ones left
        a, b = _open(shared_backend), _open(copy)
        assert [v.ref for v in a.versions("d")] == ["d:v0"]
        assert a.artifact("other").read_bytes("x") == b"only in the original"
        assert [v.ref for v in b.versions("d")] == ["d:v0", "d:v1"]
        assert b.artifact("d").read_bytes("x") == b"only in the copy"
        with pytest.raises(artifacts.NotFoundError):
            b.artifact("other")
        assert not a.verify().problems and not b.verify().problems
        a.close()
        b.close()


def test_two_spellings_of_one_local_root_share_one_index(local_backend: Backend) -> None:
    store = _open(local_backend)
    link = Path(local_backend.url).parent / "alias-of-store"
    os.symlink(local_backend.url, link)
    other = artifacts.open_store(str(link) + "/", user="alice")
    assert other.index.path == store.index.path


# -- a different log under the same root -------------------------------------------------------------
def _restore(store: artifacts.Store, backup: dict[str, bytes]) -> None:
    """Put the root back to ``backup`` (rel path -> bytes), deleting what came after it."""
    fs, top = store.root.fs, store.root.path
    for path in fs.find(top):
        rel = path[len(top) :].lstrip("/")
        if rel not in backup:
            fs.rm_file(path)
    for rel, data in backup.items():
        store.root.write(rel, data)


def _backup(store: artifacts.Store) -> dict[str, bytes]:
    fs, top = store.root.fs, store.root.path
    return {path[len(top) :].lstrip("/"): fs.cat_file(path) for path in fs.find(top)}


def backup_seqs(backup: dict[str, bytes]) -> list[str]:
    return [rel for rel in backup if rel.startswith("log/")]


def test_a_backup_restored_under_an_index_is_detected_and_rebuilt(
    shared_backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _open(shared_backend)
    store.log_artifact(_v("d", b"v0"))
    backup = _backup(store)
    store.log_artifact(_v("d", b"v1 (lost with the restore)"))
    store.log_artifact(_v("e", b"e0 (lost with the restore)"))
    head = store.index.last_seq
    store.close()

    # 1. the backup restored, then another machine commits as many entries as this index has: a log
    #    of the same length with other bytes at every new seq. On disk the open reads the last entry
    #    applied and sees other bytes; on S3 the open's one LIST shows only that it exists, so there
    #    the mismatch is seen when the next entry (naming its predecessor's digest) arrives.
    listed = store.root.prefers_listing
    head += 1 if listed else 0
    _restore(store, backup)
    mine = os.environ["ARTIFACTS_CACHE_DIR"]
    monkeypatch.setenv("ARTIFACTS_CACHE_DIR", str(tmp_path / "other-machine"))
    other = _open(shared_backend, user="bob")
    while other.index.last_seq < head:
        other.log_artifact(_v("f", f"bob {other.index.last_seq}".encode()))
    other.close()
    monkeypatch.setenv("ARTIFACTS_CACHE_DIR", mine)
    with pytest.warns(artifacts.StoreWarning, match="different log"):
        again = _open(shared_backend)
    assert again.index.last_seq == head
    assert [v.ref for v in again.versions("d")] == ["d:v0"]
    assert len(again.versions("f")) == head - len(backup_seqs(backup))
    assert again.artifact("f").read_bytes("x").startswith(b"bob ")
    with pytest.raises(artifacts.NotFoundError):
        again.artifact("e")
    assert not again.verify().problems
    again.close()

    # 2. the backup restored again: the log is now shorter than the index
    _restore(store, backup)
    with pytest.warns(artifacts.StoreWarning, match="different log"):
        again = _open(shared_backend)
    assert [v.ref for v in again.versions("d")] == ["d:v0"]
    for gone in ("e", "f"):
        with pytest.raises(artifacts.NotFoundError):
            again.artifact(gone)
    assert again.log_artifact(_v("d", b"after the restore")).ref == "d:v1"
    assert not again.verify().problems


def test_an_unchanged_log_costs_no_rebuild(shared_backend: Backend) -> None:
    store = _open(shared_backend)
    for i in range(3):
        store.log_artifact(_v("d", bytes([i])))
    path, seq = store.index.path, store.index.last_seq
    store.close()
    mtime = path.stat().st_mtime_ns
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "different log" warning
        again = _open(shared_backend)
    assert again.index.last_seq == seq and again.index.path == path
    assert path.stat().st_mtime_ns == mtime or again.index.last_digest(seq) is not None


def test_a_cache_from_before_the_id_checks_is_never_read(
    local_backend: Backend, sandbox: Path
) -> None:
    """Old caches were ``index/<id>.sqlite``: one left there (here: another store's, the worst case)
    must not answer for this store."""
    other = artifacts.open_store(str(sandbox / "other"), user="alice")
    other.log_artifact(_v("not-mine", b"x"))
    other.close()
    store = _open(local_backend)
    sid = store.info["id"]
    store.close()
    cache = Path(os.environ["ARTIFACTS_CACHE_DIR"]) / "index"
    for p in cache.glob(f"{sid}-*"):
        p.unlink()
    old = cache / f"{sid}.sqlite"
    shutil.copy(other.index.path, old)
    again = _open(local_backend)
    assert again.artifacts() == []
    assert old.exists()  # left alone: another process of an older library may still use it
