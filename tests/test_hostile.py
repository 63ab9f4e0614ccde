"""Hostile input, refused with one line: trailing newlines in names, special files, a failed put that
must record nothing (issue 18 items 2, 3 and 6).

Each refusal is an `artifacts.ArtifactsError` (one line on the CLI) and leaves the store as it was.
"""

from __future__ import annotations

import json
import os
import socket
import stat
from pathlib import Path

import pytest

import artifacts
from artifacts import Artifact, ArtifactsError, InvalidNameError, InvalidPathError
from artifacts.names import check_alias, check_name, parse_ref
from storage import check_digest
from tests.conftest import Backend
from tests.test_cli import Cli


def open_(b: Backend, user: str | None = None) -> artifacts.Store:
    return artifacts.open_store(b.url, user=user, storage_options=b.storage_options)


def log_entries(store: artifacts.Store) -> list[str]:
    return sorted(store.root.find("log"))


# -- item 2: a trailing newline is not part of a valid name ------------------------------------------
@pytest.mark.parametrize("bad", ["new\n", "new\r", "\nnew", "ne\nw", "v0\n"])
def test_names_aliases_users_refuse_newlines(bad: str) -> None:
    for check in (check_name, check_alias, lambda s: check_name(s, "user name")):
        with pytest.raises(InvalidNameError):
            check(bad)
    with pytest.raises(InvalidNameError):
        parse_ref(f"m:{bad}")  # "m:v0\n" would otherwise resolve as m:v0
    with pytest.raises(InvalidNameError):
        parse_ref(bad)
    with pytest.raises(InvalidNameError):
        check_digest("0" * 64 + "\n")


def test_store_refuses_newline_names_everywhere(backend: Backend) -> None:
    store = open_(backend)
    store.log_artifact(Artifact("m", "dataset").add_bytes("x", b"1"))
    before = log_entries(store)
    with pytest.raises(InvalidNameError):
        Artifact("new\n", "dataset")
    with pytest.raises(InvalidNameError):
        Artifact("m", "dataset\n")
    with pytest.raises(InvalidNameError):
        store.set_alias("m:v0", "good\n")
    with pytest.raises(InvalidNameError):
        store.artifact("m:v0\n")
    with pytest.raises(InvalidNameError):
        store.start_run(project="p\n")
    with pytest.raises(ArtifactsError):
        store.start_run(project="p", tags=["t\n"])
    with pytest.raises(InvalidNameError):
        open_(backend, user="bob\n")
    with pytest.raises(InvalidNameError):
        store.set_quota("bob\n", 10)
    assert log_entries(store) == before


def test_replay_rejects_a_hand_written_newline_name(local_backend: Backend) -> None:
    store = open_(local_backend)
    store.log_artifact(Artifact("m", "dataset").add_bytes("x", b"1"))
    store.set_alias("m:v0", "good")
    path = Path(store.root.local("log/00000000000000000002.json"))
    body = json.loads(path.read_bytes())
    body["alias"] = "good\n"
    body.pop("prev", None)  # a hand-written entry, as an older library wrote them
    Path(store.root.local("log/00000000000000000003.json")).write_text(json.dumps({**body, "seq": 3}))
    fresh = open_(local_backend)
    fresh.reindex()
    assert [s for s, _ in fresh.index.rejected()] == [3]
    assert list(fresh.artifact("m:v0").aliases) == ["good"]


def test_cli_refuses_newline_names(local_backend: Backend, tmp_path: Path) -> None:
    cli = Cli(local_backend.url)
    f = tmp_path / "f"
    f.write_bytes(b"data")
    cli.ok("put", "m", str(f), "--type", "dataset")
    cli.fails("put", "new\n", str(f), "--type", "dataset", match="invalid artifact name")
    cli.fails("alias", "m:v0", "good\n", match="invalid alias")
    cli.fails("ls", user="bob\n", match="invalid user name")
    assert [a["name"] for a in cli.json("ls")] == ["m"]


# -- item 3: a failed `put --project/--input` records no run -----------------------------------------
@pytest.mark.parametrize(
    "case",
    ["bad alias", "reserved alias", "empty dir", "type mismatch", "missing input", "bad project"],
)
def test_failed_put_with_run_writes_nothing(
    case: str, backend: Backend, tmp_path: Path
) -> None:
    cli = Cli(backend.url, backend.storage_options)
    f = tmp_path / "f"
    f.write_bytes(b"data")
    (tmp_path / "empty").mkdir()
    cli.ok("put", "m", str(f), "--type", "dataset")
    store = open_(backend)
    before = log_entries(store)
    args = {
        "bad alias": ["m", str(f), "--project", "p", "--alias", "a b"],
        "reserved alias": ["m", str(f), "--project", "p", "--alias", "v3"],
        "empty dir": ["m", str(tmp_path / "empty"), "--project", "p"],
        "type mismatch": ["m", str(f), "--type", "model", "--project", "p"],
        "missing input": ["m", str(f), "--project", "p", "--input", "nope:v0"],
        "bad project": ["m", str(f), "--project", "bad name"],
    }[case]
    cli.fails("put", *args)
    assert log_entries(store) == before
    store.sync()
    assert store.runs() == []
    # and the same put with good input does record its run
    cli.ok("put", "m", str(f), "--project", "p", "--alias", "best")
    assert [r.status for r in open_(backend).runs()] == ["finished"]


def test_precheck_refuses_what_log_artifact_would(local_backend: Backend) -> None:
    store = open_(local_backend)
    store.log_artifact(Artifact("m", "dataset").add_bytes("x", b"1"))
    with pytest.raises(ArtifactsError, match="has type 'dataset'"):
        store.precheck(Artifact("m", "model").add_bytes("x", b"2"))
    with pytest.raises(ArtifactsError, match="empty"):
        store.precheck(Artifact("n", "model"))
    with pytest.raises(InvalidNameError):
        store.precheck(Artifact("n", "model").add_bytes("x", b"2"), aliases=["latest"])
    store.set_quota(store.user, 1)
    with pytest.raises(artifacts.QuotaExceededError):
        store.precheck(Artifact("n", "model").add_bytes("x", b"22"))
    store.precheck(Artifact("m", "dataset").add_bytes("x", b"1"))  # nothing new: fits


# -- item 6: special files are refused before anything reads them -----------------------------------
def _special_files(tmp_path: Path) -> dict[str, Path]:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    sock_path = tmp_path / "sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(sock_path))
    s.close()
    return {"FIFO": fifo, "socket": sock_path, "character device": Path("/dev/zero")}


def test_add_file_refuses_special_files(tmp_path: Path) -> None:
    for kind, path in _special_files(tmp_path).items():
        with pytest.raises(InvalidPathError, match=kind):
            Artifact("z", "dataset").add_file(path)
        with pytest.raises(ArtifactsError, match=kind):
            Artifact("z", "model").add_safetensors(path)


def test_add_dir_refuses_special_files_and_links_to_them(tmp_path: Path) -> None:
    for kind, special in _special_files(tmp_path).items():
        top = tmp_path / f"dir-{kind.split()[0]}"
        top.mkdir()
        (top / "ok").write_bytes(b"fine")
        if special.parent == Path("/dev"):
            (top / "dev").symlink_to(special)  # a link out of the tree is refused as such
            match = "outside"
        else:
            os.rename(special, top / "special")
            match = kind
        with pytest.raises(InvalidPathError, match=match):
            Artifact("z", "dataset").add_dir(top)
    inside = tmp_path / "inside"
    (inside / "sub").mkdir(parents=True)
    os.mkfifo(inside / "sub" / "fifo")
    (inside / "link").symlink_to("sub/fifo")  # sorted first: the link is met before the FIFO
    with pytest.raises(InvalidPathError, match="FIFO"):
        Artifact("z", "dataset").add_dir(inside)


def test_add_dir_refuses_a_symlink_loop(tmp_path: Path) -> None:
    top = tmp_path / "loop"
    top.mkdir()
    (top / "f").write_bytes(b"x")
    (top / "a").symlink_to("b")
    (top / "b").symlink_to("a")
    with pytest.raises(InvalidPathError, match="symlink loop"):
        Artifact("z", "dataset").add_dir(top)
    (top / "a").unlink()
    (top / "b").unlink()
    (top / "self").symlink_to("../loop")  # a link to the tree itself is reached as itself
    assert [s.path for s in Artifact("z", "dataset").add_dir(top)] == ["f"]


def test_cli_put_of_special_files_is_one_line_and_never_hangs(
    local_backend: Backend, tmp_path: Path
) -> None:
    cli = Cli(local_backend.url)
    cli.ok("init")
    for kind, path in _special_files(tmp_path).items():
        cli.fails("put", "z", str(path), "--type", "dataset", match=kind)
    assert cli.json("ls") == []


def test_read_small_refuses_a_fifo_swapped_in_after_the_walk(tmp_path: Path) -> None:
    """The window between the walk's stat and the read: the open does not block on a FIFO."""
    from storage.batch import read_small
    from storage.statcache import stat_key

    f = tmp_path / "f"
    f.write_bytes(b"data")
    key = stat_key(os.stat(f))
    f.unlink()
    os.mkfifo(f)
    assert stat.S_ISFIFO(os.stat(f).st_mode)
    with pytest.raises(InvalidPathError, match="regular file"):
        read_small(str(f), key)


# -- item 1: a manifest path 1,500 levels deep ------------------------------------------------------
def test_deep_manifest_path_is_refused_in_one_line(backend: Backend, tmp_path: Path) -> None:
    import dataclasses

    deep = "/".join(["a"] * 1500) + "/f"
    with pytest.raises(InvalidPathError, match="1501 levels deep"):
        Artifact("deep", "dataset").add_bytes(deep, b"x")
    art = Artifact("deep", "dataset").add_bytes("f", b"x")
    art._staged = {deep: dataclasses.replace(art._staged["f"], path=deep)}  # a foreign writer's
    store = open_(backend)
    v = store.log_artifact(art)
    with pytest.raises(InvalidPathError, match="levels deep"):
        v.download(tmp_path / "out")
    assert not (tmp_path / "out").exists()
    cli = Cli(backend.url, backend.storage_options)
    cli.fails("get", "deep:v0", str(tmp_path / "out2"), match="levels deep")
    assert v.read_bytes(deep) == b"x"  # reading it needs no directories


# -- item 1: an index whose middle pages are garbled rebuilds itself --------------------------------
def _garble_middle(index_path: Path) -> None:
    import sqlite3

    c = sqlite3.connect(index_path)
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size, count = c.execute("PRAGMA page_size").fetchone()[0], c.execute("PRAGMA page_count").fetchone()[0]
    # the schema's own pages are left alone: a garbled schema is not an index with damaged pages
    # but no index at all, which the open replaces without a word (`Index.__init__`)
    schema = {r[0] for r in c.execute("SELECT pageno FROM dbstat WHERE name = 'sqlite_schema'")}
    c.close()
    with open(index_path, "r+b") as f:
        for page in range(count // 3, 2 * count // 3):
            if page + 1 in schema:  # dbstat counts pages from 1
                continue
            f.seek(page * size)
            f.write(bytes([0x5A]) * size)


def test_cli_rebuilds_an_index_with_garbled_pages(shared_backend: Backend) -> None:
    store = open_(shared_backend)
    for i in range(40):  # pages enough to garble a third of them
        store.log_artifact(
            Artifact(f"a{i % 10}", "dataset", metadata={"pad": "x" * 1500}).add_bytes("f", b"%d" % i)
        )
    path = Path(store.catalog.index.path)
    store.close()
    cli = Cli(shared_backend.url, shared_backend.storage_options)
    for args in (("ls", "a1"), ("ls",), ("alias", "a1:v0", "best")):
        _garble_middle(path)
        with pytest.warns(artifacts.StoreWarning, match="damaged"):
            result = cli.ok(*args)
        assert "malformed" not in result.stdout
    assert [v["version"] for v in cli.json("ls", "a1")] == list(range(4))
    assert list(open_(shared_backend).artifact("a1:v0").aliases) == ["best"]


def test_ui_server_rebuilds_an_index_garbled_while_it_runs(tmp_path: Path) -> None:
    """A long-running `artifacts ui` heals as the CLI does: the page is served, from the rebuilt index."""
    from starlette.testclient import TestClient

    from artifacts.ui import create_app

    store = artifacts.open_store(str(tmp_path / "store"))
    for i in range(40):
        store.log_artifact(
            Artifact(f"a{i % 10}", "dataset", metadata={"pad": "x" * 1500}).add_bytes("f", b"%d" % i)
        )
    client = TestClient(create_app(store, sync_every=0), raise_server_exceptions=False)
    assert client.get("/artifacts/a1").status_code == 200
    for _ in range(2):
        _garble_middle(Path(store.catalog.index.path))
        with pytest.warns(artifacts.StoreWarning, match="damaged"):
            page = client.get("/artifacts/a1")
        assert page.status_code == 200, page.text[:300]
        assert "a1:v3" in page.text or "v3" in page.text


# -- item 1: an endpoint dying mid-put leaves one line, not hundreds of asyncio reports --------------
_ORPHANS = """
import asyncio, gc, sys
if sys.argv[1] == "cli":
    from artifacts.cliutil import quiet_orphan_tasks
    quiet_orphan_tasks()

async def upload_part():
    raise ConnectionError("Connection refused by the endpoint")

async def main():
    for _ in range(50):  # what s3fs leaves behind when the endpoint dies: tasks nobody awaits
        asyncio.ensure_future(upload_part())
    await asyncio.sleep(0.05)

asyncio.run(main())
gc.collect()
"""


def test_cli_silences_orphan_upload_tasks() -> None:
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    plain = subprocess.run(
        [sys.executable, "-c", _ORPHANS, "library"], capture_output=True, text=True, env=env
    )
    assert plain.stderr.count("exception was never retrieved") == 50  # the noise is real
    cli = subprocess.run(
        [sys.executable, "-c", _ORPHANS, "cli"], capture_output=True, text=True, env=env, timeout=60
    )
    assert cli.returncode == 0 and "never retrieved" not in cli.stderr, cli.stderr
