"""verify and gc, corruption of every kind we can name, and a matrix of bad input.

Every corruption is detected by `Store.verify` with a line naming the blob digest or the log sequence
number, reads of unaffected versions keep working, and reading the damaged one raises
`IntegrityError` (or `NotFoundError` when the blob is gone). Every bad input raises an error of our
family and leaves the store exactly as it was (same log entries, same blobs).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

import artifacts
from artifacts import Artifact
from tests._workers import make_old
from tests.conftest import Backend, boto_client, make_bucket, s3_options


def open_(b: Backend, user: str | None = None) -> artifacts.Store:
    return artifacts.open_store(b.url, user=user, storage_options=b.storage_options)


def art(name: str, **files: bytes) -> Artifact:
    a = Artifact(name, "dataset")
    for path, data in files.items():
        a.add_bytes(path.replace("__", "/"), data)
    return a


def snapshot(store: artifacts.Store) -> tuple[list[str], list[str]]:
    """Every log entry and every blob in the store (not the local index, not tmp/)."""
    return sorted(store.root.find("log")), sorted(store.blobs.iter_digests())


def blob_rel(store: artifacts.Store, digest: str) -> str:
    return store.blobs.relpath(digest)


def entry(store: artifacts.Store, op: str, **payload: Any) -> tuple[int, bytes]:
    seq = store.index.last_seq + 1
    body = {"format": 1, "seq": seq, "op": op, "user": store.user, "ts": "2026-01-01T00:00:00"}
    return seq, json.dumps({**body, **payload}).encode()


# -- verify ------------------------------------------------------------------------------------------
def test_verify_clean_store_counts_everything(backend: Backend) -> None:
    store = open_(backend)
    with store.start_run(project="p") as run:
        run.log({"loss": 1.0})
        run.log_artifact(art("a", x=b"1", y=b"2"))
    store.log_artifact(art("b", x=b"1"))  # shares a blob with a
    report = store.verify()
    assert report.ok and report.problems == () and bool(report)
    # a's two files, b's none new, two manifests, one history
    assert report.blobs_checked == 5
    assert report.entries_checked == store.index.last_seq == 4
    assert store.verify(quick=True).ok
    one = store.verify("a:v0")
    assert one.ok and one.blobs_checked == 3


# -- corruption --------------------------------------------------------------------------------------
@pytest.fixture
def damaged(backend: Backend) -> dict[str, Any]:
    """A store with three versions and a run; each test damages one thing."""
    store = open_(backend)
    with store.start_run(project="p") as run:
        run.log({"loss": 0.5}, step=0)
        good = run.log_artifact(art("good", data=b"fine" * 100, other=b"also fine"))
    victim = store.log_artifact(art("victim", data=b"precious bytes" * 50, keep=b"untouched"))
    return {"store": store, "good": good, "victim": victim, "run": store.run(run.id)}


def _problems_about(report: artifacts.VerifyReport, needle: str) -> list[str]:
    return [p for p in report.problems if needle in p]


def _unaffected_still_read(store: artifacts.Store) -> None:
    good = store.artifact("good")
    assert good.read_bytes("data") == b"fine" * 100
    assert good.verify() == 2


@pytest.mark.parametrize("how", ["flip", "truncate", "delete"])
def test_damaged_blob_is_detected_and_named(
    damaged: dict[str, Any], how: str, tmp_path: Path
) -> None:
    store, victim = damaged["store"], damaged["victim"]
    digest = victim.file("data").digest
    rel = blob_rel(store, digest)
    data = store.root.read(rel)
    if how == "flip":
        store.root.write(rel, data[:100] + bytes([data[100] ^ 0x01]) + data[101:])
    elif how == "truncate":
        store.root.write(rel, data[:-7])
    else:
        store.root.delete(rel)

    report = store.verify()
    [problem] = report.problems
    assert digest in problem and "victim:v0/data" in problem
    assert ("missing" if how == "delete" else "corrupt") in problem
    quick = store.verify(quick=True)
    # a flipped byte needs the full re-hash, which set the blob aside: quick checks see that too
    assert _problems_about(quick, digest)
    assert store.verify("victim:v0").problems == report.problems
    assert store.verify("good:v0").ok

    error = artifacts.NotFoundError if how == "delete" else artifacts.IntegrityError
    v = store.artifact("victim")
    with pytest.raises(error, match=digest):
        v.read_bytes("data")
    with pytest.raises(error, match=digest):
        v.open("data").read()
    with pytest.raises(artifacts.IntegrityError, match="data"):
        v.verify()
    with pytest.raises(error):
        v.download(tmp_path / "out")
    assert not (tmp_path / "out" / "data").exists()  # nothing unverified lands at its final name
    assert v.read_bytes("keep") == b"untouched"
    _unaffected_still_read(store)


def test_damaged_manifest_and_history_blobs_are_named(damaged: dict[str, Any]) -> None:
    store, victim, run = damaged["store"], damaged["victim"], damaged["run"]
    store.root.write(blob_rel(store, victim.digest), b"{}")
    history = run._history_digest
    store.root.write(blob_rel(store, history), b'{"loss": 9}\n')
    report = store.verify()
    assert _problems_about(report, f"{victim.digest} (manifest of victim:v0) is corrupt")
    assert _problems_about(report, f"{history} (history of run {run.id}) is corrupt")
    assert len(report.problems) == 2
    with pytest.raises(artifacts.IntegrityError, match=history):
        store.run(run.id).history()
    assert store.artifact("victim").read_bytes("keep") == b"untouched"  # files come from the log
    _unaffected_still_read(store)


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b"[" * 50_000 + b"]" * 50_000, "not usable JSON"),
        (b'{"format": 1, "seq": 999, "op": "alias_set"}', "claims sequence 999"),
        (b'{"format": true, "op": "alias_set"}', "unknown log format True"),
        (b'{"format": 1, "seq": 1, "op": "x", "n": ' + b"9" * 5000 + b"}", "not usable JSON"),
    ],
    ids=[
        "garbage",
        "binary",
        "empty",
        "array",
        "deeply-nested",
        "wrong-seq",
        "bool-format",
        "huge-int",
    ],
)
def test_garbage_log_entry_is_named_and_skipped(
    damaged: dict[str, Any], data: bytes, reason: str
) -> None:
    store = damaged["store"]
    seq = store.index.last_seq + 1
    store.root.create_exclusive(f"log/{seq:020d}.json", data)
    after = store.log_artifact(art("good", data=b"newer"))  # writers carry on past it
    assert after.ref == "good:v1"
    report = store.verify()
    [problem] = report.problems
    assert problem.startswith(f"log entry {seq} was rejected") and reason in problem
    assert store.artifact("good:v0").read_bytes("data") == b"fine" * 100
    assert store.artifact("victim").read_bytes("data")
    fresh = store.index.rejected()
    assert [s for s, _ in fresh] == [seq]


def test_future_format_entry_is_named_and_blocks_gc(
    damaged: dict[str, Any], backend: Backend
) -> None:
    store = damaged["store"]
    blob = store.blobs.put_bytes(b"only a newer library knows this blob is referenced").digest
    seq, data = entry(store, "version_logged_v2", refs=[blob])
    store.root.create_exclusive(
        f"log/{seq:020d}.json", data.replace(b'"format": 1', b'"format": 2')
    )
    report = store.verify()
    [problem] = report.problems
    assert f"log entry {seq}" in problem and "format 2" in problem and "upgrade" in problem
    with pytest.raises(artifacts.ArtifactsError, match=f"entry {seq}.*format 2"):
        store.gc(grace_period=0)
    assert store.blobs.exists(blob)  # gc deleted nothing
    _unaffected_still_read(store)


def test_missing_log_entry_is_named_and_blocks_gc(
    damaged: dict[str, Any], backend: Backend, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    store = damaged["store"]
    gap = 2
    store.root.delete(f"log/{gap:020d}.json")
    assert f"log entry {gap} is missing" in " ".join(store.verify().problems)
    # a machine that never saw the entry stops at the gap, says so, and refuses to gc
    monkeypatch.setenv("ARTIFACTS_CACHE_DIR", str(tmp_path / "other"))
    before = snapshot(store)
    other = open_(backend)
    problems = other.verify().problems
    assert f"log entry {gap} is missing (a gap in the log)" in problems
    assert f"log entry {gap + 1} is not applied (it follows a gap)" in problems
    with pytest.raises(artifacts.ArtifactsError, match=f"entry {gap} is missing"):
        other.gc(grace_period=0)
    assert snapshot(other) == before  # it deleted nothing


def test_stray_object_in_log_is_named(damaged: dict[str, Any]) -> None:
    store = damaged["store"]
    store.root.write("log/notes.txt", b"hello")
    assert store.verify().problems == ("unexpected object log/notes.txt in the log",)


def test_entry_rotting_after_it_was_applied_is_named(damaged: dict[str, Any]) -> None:
    store = damaged["store"]
    rel = f"log/{store.index.last_seq:020d}.json"
    store.root.write(rel, store.root.read(rel)[:-3])  # bit rot on the disk under a replayed entry
    [problem] = store.verify().problems
    assert problem.startswith(
        f"log entry {store.index.last_seq} does not parse any more: not valid"
    )


# -- gc ----------------------------------------------------------------------------------------------
def test_gc_sweeps_only_unreferenced_blobs_older_than_grace(backend: Backend) -> None:
    store = open_(backend)
    with store.start_run(project="p") as run:
        run.log({"loss": 1.0})
        keep = run.log_artifact(art("d", shared=b"s" * 1000, own=b"kept"))
    gone = store.log_artifact(art("d", shared=b"s" * 1000, own=b"deleted soon"))
    orphan = store.blobs.put_bytes(b"uploaded by a commit that never happened").digest
    store.delete_version(gone.ref)
    doomed = {gone.file("own").digest, gone.digest, orphan}

    young = store.gc(grace_period=3600)  # everything is young: nothing goes
    assert young.deleted == () and young.bytes_freed == 0

    make_old(store, store.blobs.iter_digests(), 7200)
    grace = 3600.0
    before = snapshot(store)
    dry = store.gc(grace_period=grace, dry_run=True)
    assert set(dry.deleted) == doomed and dry.dry_run
    assert dry.bytes_freed == sum(store.blobs.size(d) for d in doomed)
    assert snapshot(store) == before  # a dry run changes nothing

    report = store.gc(grace_period=grace)
    assert set(report.deleted) == doomed and report.bytes_freed == dry.bytes_freed
    assert not any(store.blobs.exists(d) for d in doomed)
    assert store.verify().ok
    assert keep.read_bytes("shared") == b"s" * 1000 and keep.read_bytes("own") == b"kept"
    assert store.run(run.id).history() == [{"loss": 1.0, "_step": 0}]
    assert store.gc(grace_period=grace).deleted == ()


def test_gc_rejects_a_bad_grace_period(backend: Backend) -> None:
    store = open_(backend)
    for bad in (-1, "1h", None, True):
        with pytest.raises(artifacts.InvalidValueError):
            store.gc(grace_period=bad)  # type: ignore[arg-type]


def test_dedup_hit_on_an_orphan_while_gc_sweeps_it_loses_nothing(
    shared_backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hazard: gc has decided an old unreferenced blob (a deleted version's content) must go, and
    before it sweeps, another writer logs that same content again: its put finds the blob (no upload)
    and its commit refers to it. The put freshened the blob, and gc re-checks age as it sweeps."""
    store = open_(shared_backend)
    payload, file_payload = b"weights " * 500, b"vocabulary " * 300
    src = tmp_path / "vocab.txt"
    src.write_bytes(file_payload)
    old = store.log_artifact(art("m", w=payload).add_file(src, name="vocab"))
    store.log_artifact(art("m", w=b"something else"))
    store.delete_version(old.ref)
    reused = [old.file("w").digest, old.file("vocab").digest]
    make_old(store, reused, 7200)
    grace = 3600.0

    monkeypatch.setenv("ARTIFACTS_CACHE_DIR", str(tmp_path / "writer"))
    writer = open_(shared_backend)  # another machine
    assert writer.blobs.freshen_after <= grace  # S3 freshens blobs older than 1 h
    calls = []
    live_digests = store.index.live_digests

    def live_then_commit() -> set[str]:
        live = live_digests()
        calls.append(1)
        if len(calls) == 2:  # gc's last look at the log; the commit lands right after it
            writer.log_artifact(art("m2", w=payload).add_file(src, name="vocab"))
        return live

    monkeypatch.setattr(store.index, "live_digests", live_then_commit)
    report = store.gc(grace_period=grace)
    monkeypatch.undo()
    assert len(calls) >= 2  # (a remote gc looks once more before it empties its trash)
    assert set(reused) <= set(report.spared) and not set(reused) & set(report.deleted)
    store.sync()
    again = store.artifact("m2")
    assert again.read_bytes("w") == payload and again.read_bytes("vocab") == file_payload
    assert store.verify().ok


def test_gc_killed_mid_sweep_puts_quarantined_blobs_back(local_backend: Backend) -> None:
    store = open_(local_backend)
    v = store.log_artifact(art("d", x=b"live bytes"))
    digest = v.file("x").digest
    # what a gc killed between its rename and its re-check leaves behind
    os.makedirs(store.root.local("tmp"), exist_ok=True)
    os.rename(store.blobs.local_path(digest), store.root.local(f"tmp/gc-{digest}-deadbeef"))
    assert "missing" in store.verify().problems[0]
    store.gc(grace_period=0)
    assert store.verify().ok and v.read_bytes("x") == b"live bytes"
    assert not any(n.startswith("gc-") for n in os.listdir(store.root.local("tmp")))


# -- bad input ---------------------------------------------------------------------------------------
BAD_NAMES = [
    "",
    "a/b",
    "a:b",
    "a b",
    " a",
    "a\t",
    "a\nb",
    "x" * 129,
    ".hidden",
    "-dash",
    "ünï",
    None,
]


@pytest.fixture
def used(backend: Backend) -> artifacts.Store:
    """A store with some content; bad input must leave it exactly as it is."""
    store = open_(backend)
    store.log_artifact(art("d", x=b"1"), aliases=["best"])
    return store


def _unchanged(store: artifacts.Store, before: tuple[list[str], list[str]]) -> None:
    assert snapshot(store) == before
    store.sync()
    assert store.index.rejected() == []


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_invalid_names_are_refused_everywhere(used: artifacts.Store, name: Any) -> None:
    before = snapshot(used)
    attempts = [
        lambda: Artifact(name, "dataset"),
        lambda: Artifact("d", name),
        lambda: used.artifact(name),
        lambda: used.artifact(f"d:{name}") if name else used.artifact("d:"),
        lambda: used.set_alias("d:v0", name),
        lambda: used.remove_alias("d", name),
        lambda: used.start_run(project=name),
        lambda: used.set_quota(name, 10),
        lambda: used.versions(name),
        lambda: used.delete_version(f"{name}:v0"),
        lambda: artifacts.open_store(used.url, user=name, storage_options={}),
    ]
    if name is None:  # the default user, and "d:None" / "None:v0" are well-formed refs
        del attempts[10], attempts[9], attempts[3]
    if name == "a:b":  # a well-formed ref (alias b of a), just not an artifact name
        del attempts[2]
    for i, attempt in enumerate(attempts):
        with pytest.raises(artifacts.InvalidNameError):
            attempt()
            pytest.fail(f"attempt {i} accepted {name!r}")
    _unchanged(used, before)


@pytest.mark.parametrize(
    "path",
    ["../x", "/etc/passwd", "a/../../x", "a/./b", "a//b", "a/", "C:/x", "a\\..\\x", "a\x00b", ".."],
    ids=repr,
)
def test_path_traversal_is_refused_on_add(used: artifacts.Store, path: str, tmp_path: Path) -> None:
    before = snapshot(used)
    src = tmp_path / "f.bin"
    src.write_bytes(b"x")
    with pytest.raises(artifacts.InvalidPathError):
        Artifact("d", "dataset").add_bytes(path, b"x")
    with pytest.raises(artifacts.InvalidPathError):
        Artifact("d", "dataset").add_file(src, name=path)
    if ".." in path or "\\" in path or "./" in path or ":" in path:  # (a leading '/' is stripped)
        with pytest.raises(artifacts.InvalidPathError):
            Artifact("d", "dataset").add_dir(tmp_path, prefix=path)
    _unchanged(used, before)


def test_path_traversal_in_a_foreign_manifest_is_never_restored(
    used: artifacts.Store, tmp_path: Path
) -> None:
    """A hand-written entry whose manifest escapes the destination is rejected on replay: no reader
    ever sees the version, so nothing can be downloaded outside its destination."""
    digest = used.blobs.put_bytes(b"evil").digest
    files = {"../../evil.sh": {"digest": digest, "size": 4}}
    from artifacts.manifest import canonical_json
    from storage import hash_bytes

    manifest = {"format": 1, "files": files}
    seq, data = entry(
        used,
        "version_logged",
        name="evil",
        type="dataset",
        aliases=[],
        digest=hash_bytes(canonical_json(manifest)),
        manifest=manifest,
        metadata={},
    )
    used.root.create_exclusive(f"log/{seq:020d}.json", data)
    with pytest.raises(artifacts.NotFoundError):
        used.artifact("evil")
    [problem] = used.verify().problems
    assert f"log entry {seq} was rejected" in problem and "../../evil.sh" in problem
    assert not (tmp_path.parent / "evil.sh").exists()


def test_symlinks_out_of_an_added_directory_are_refused(
    used: artifacts.Store, tmp_path: Path
) -> None:
    before = snapshot(used)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"private key")
    top = tmp_path / "top"
    (top / "sub").mkdir(parents=True)
    (top / "sub" / "ok.txt").write_bytes(b"fine")
    (top / "inner-link").symlink_to(top / "sub" / "ok.txt")  # inside: allowed
    assert {s.path for s in Artifact("d", "dataset").add_dir(top)} == {"inner-link", "sub/ok.txt"}

    (top / "file-link").symlink_to(outside / "secret")
    with pytest.raises(artifacts.InvalidPathError, match="outside"):
        Artifact("d", "dataset").add_dir(top)
    (top / "file-link").unlink()
    (top / "dir-link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(artifacts.InvalidPathError, match="outside"):
        Artifact("d", "dataset").add_dir(top)
    (top / "dir-link").unlink()
    (top / "sub" / "up").symlink_to("../..", target_is_directory=True)  # a loop out of top
    with pytest.raises(artifacts.InvalidPathError, match="outside"):
        Artifact("d", "dataset").add_dir(top)
    _unchanged(used, before)


def test_huge_or_unserializable_metadata_is_refused(used: artifacts.Store) -> None:
    before = snapshot(used)
    deep: list[Any] = []
    cur = deep
    for _ in range(100_000):
        cur.append([])
        cur = cur[0]
    big = "x" * (2 << 20)
    attempts = [
        lambda: Artifact("d", "dataset", metadata={"x": big}),
        lambda: Artifact("d", "dataset", metadata={"x": deep}),
        lambda: Artifact("d", "dataset", metadata={"x": object()}),
        lambda: Artifact("d", "dataset", metadata={(1, 2): 3}),
        lambda: Artifact("d", "dataset", description=big),
        lambda: Artifact("d", "dataset", description=7),
        lambda: Artifact("d", "dataset").add_bytes("x", b"1", meta={"big": big}),
        lambda: Artifact("d", "dataset").add_json("x", {1, 2}),
        lambda: used.start_run(project="p", config={"x": big}),
        lambda: used.start_run(project="p", config={"x": deep}),
    ]
    for attempt in attempts:
        with pytest.raises(artifacts.InvalidValueError):
            attempt()
    _unchanged(used, before)
    with used.start_run(project="p") as run:  # a run's metrics: refused, and the run goes on
        for bad in ({"x": big}, {"x": deep}, {"x": object()}, {"_private": 1}, [1]):
            with pytest.raises(artifacts.InvalidValueError):
                run.log(bad)
        run.log({"ok": 1})
    assert used.run(run.id).history() == [{"ok": 1, "_step": 0}]


def test_non_utf8_file_names_are_refused_with_a_clear_error(
    used: artifacts.Store, tmp_path: Path
) -> None:
    before = snapshot(used)
    top = tmp_path / "data"
    top.mkdir()
    raw = os.fsencode(top) + b"/caf\xe9.csv"  # latin-1 bytes: not UTF-8
    with open(raw, "wb") as f:
        f.write(b"a,b\n")
    with pytest.raises(artifacts.InvalidPathError, match="UTF-8"):
        Artifact("d", "dataset").add_dir(top)
    with pytest.raises(artifacts.InvalidPathError, match="UTF-8"):
        Artifact("d", "dataset").add_file(raw)
    with pytest.raises(artifacts.InvalidPathError, match="UTF-8"):
        Artifact("d", "dataset").add_file(os.fsdecode(raw))
    with pytest.raises(artifacts.InvalidPathError, match="UTF-8"):
        Artifact("d", "dataset").add_bytes(os.fsdecode(b"caf\xe9.csv"), b"x")
    _unchanged(used, before)
    # the same file under a name given explicitly is fine, from a bytes or a str path
    v = used.log_artifact(Artifact("csv", "dataset").add_file(raw, name="cafe.csv"))
    assert v.read_bytes("cafe.csv") == b"a,b\n"


def test_unknown_scheme_and_missing_bucket(s3_endpoint: str) -> None:
    with pytest.raises(artifacts.BackendError, match="scheme"):
        artifacts.open_store("ftp://host/store")
    with pytest.raises(artifacts.BackendError, match="bucket"):
        artifacts.open_store("s3://no-such-bucket-here/x", storage_options=s3_options(s3_endpoint))


def test_s3_endpoint_refusing_connections_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARTIFACTS_S3_TIMEOUT", "2")  # retried for 2 s (see tests/test_dark_s3.py)
    options = {
        "key": "k",
        "secret": "s",
        "client_kwargs": {"endpoint_url": "http://127.0.0.1:9", "region_name": "us-east-1"},
        "config_kwargs": {"connect_timeout": 1, "retries": {"max_attempts": 1}},
        "skip_instance_cache": True,
    }
    start = time.monotonic()
    with pytest.raises(artifacts.BackendError, match="127.0.0.1:9"):
        artifacts.open_store("s3://bucket/store", storage_options=options)
    assert time.monotonic() - start < 10


def test_wrong_s3_credentials_are_refused_and_change_nothing(s3_endpoint: str) -> None:
    """moto accepts any key until told to authenticate (POST /moto-api/reset-auth with 0 free calls);
    then it checks keys and signatures against its IAM users. (Its signature check also refuses some
    good listings, with '/' in the query, so the store is re-read after authentication is off again.)"""
    import requests

    bucket = make_bucket(s3_endpoint)
    url = f"s3://{bucket}/store"
    store = artifacts.open_store(url, storage_options=s3_options(s3_endpoint))
    store.log_artifact(art("d", x=b"precious"))
    before = snapshot(store)
    iam = boto_client(s3_endpoint, "iam")
    iam.create_user(UserName="ci")
    policy = iam.create_policy(
        PolicyName="all",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
            }
        ),
    )["Policy"]["Arn"]
    iam.attach_user_policy(UserName="ci", PolicyArn=policy)
    key = iam.create_access_key(UserName="ci")["AccessKey"]
    good = {**s3_options(s3_endpoint), "key": key["AccessKeyId"], "secret": key["SecretAccessKey"]}
    requests.post(f"{s3_endpoint}/moto-api/reset-auth", data=b"0", timeout=10)
    try:
        for bad in ({"key": "AKIAWRONGWRONGWRONG", "secret": "nope"}, {"secret": "wrong secret"}):
            options = {**good, **bad}
            with pytest.raises(artifacts.BackendError, match="credentials") as e:
                artifacts.open_store(url, storage_options=options)
            assert "Traceback" not in str(e.value) and "\n" not in str(e.value)
    finally:
        requests.post(f"{s3_endpoint}/moto-api/reset-auth", data=b"inf", timeout=10)
    again = artifacts.open_store(url, storage_options=s3_options(s3_endpoint))
    assert snapshot(again) == before
    assert again.artifact("d").read_bytes("x") == b"precious"


# -- a few of the same through the command line (the CLI's own suite has the rest) -------------------
def _cli(*args: str) -> Any:
    from click.testing import CliRunner

    from artifacts.cli import main

    return CliRunner().invoke(main, list(args))


def _one_line_error(result: Any, needle: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], lines
    assert "Traceback" not in result.output


def test_cli_reports_corruption_and_bad_input_in_one_line(local_backend: Backend) -> None:
    store = open_(local_backend)
    v = store.log_artifact(art("d", x=b"bytes to rot"))
    digest = v.file("x").digest
    base = ("--store", local_backend.url)
    assert _cli(*base, "verify").exit_code == 0
    store.root.write(blob_rel(store, digest), b"bytes to r0t")
    result = _cli(*base, "verify")
    assert result.exit_code == 1 and digest in result.stdout and "corrupt" in result.stdout
    _one_line_error(result, "1 problem")
    before = snapshot(store)
    _one_line_error(_cli(*base, "verify", "bad name"), "bad name")
    _one_line_error(_cli(*base, "--user", "a/b", "ls"), "a/b")
    seq, data = entry(store, "version_logged")
    store.root.create_exclusive(
        f"log/{seq:020d}.json", data.replace(b'"format": 1', b'"format": 9')
    )
    _one_line_error(_cli(*base, "gc", "--grace", "0"), "format 9")
    assert snapshot(store)[1] == before[1]  # gc refused: every blob is still there


def test_cli_unreachable_endpoint_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """One error line, after the retry lines that said what was retried (see test_dark_s3.py)."""
    monkeypatch.setenv("ARTIFACTS_S3_TIMEOUT", "2")
    options = json.dumps(
        {
            "key": "k",
            "secret": "s",
            "skip_instance_cache": True,
            "client_kwargs": {"endpoint_url": "http://127.0.0.1:9", "region_name": "us-east-1"},
            "config_kwargs": {"connect_timeout": 1, "retries": {"max_attempts": 1}},
        }
    )
    result = _cli("--store", "s3://bucket/x", "--storage-options", options, "ls")
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    *retries, last = result.stderr.strip().splitlines()
    assert last.startswith("error: cannot reach http://127.0.0.1:9 within 2s"), last
    assert retries and all(r.startswith("artifacts: S3 GET ") for r in retries), retries


def test_damaged_local_caches_are_rebuilt_not_fatal(local_backend: Backend, tmp_path: Path) -> None:
    """The index and the stat cache are caches: garbage in either must cost a rebuild, not an error."""
    store = open_(local_backend)
    src = tmp_path / "f.bin"
    src.write_bytes(b"content")
    os.utime(src, (1_000_000, 1_000_000))
    store.log_artifact(art("d", x=b"1").add_file(src, name="f"), aliases=["best"])
    index, stat = store.index.path, store.blobs.stat_cache.path
    store.close()
    for path in (index, stat):
        for suffix in ("-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        path.write_bytes(b"this is not a database" * 100)
    again = open_(local_backend)
    assert again.artifact("d:best").read_bytes("f") == b"content"
    v = again.log_artifact(art("d", x=b"2").add_file(src, name="f"))
    assert v.ref == "d:v1" and again.verify().ok
