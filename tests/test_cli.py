"""The `artifacts` command line: every command, its errors, its help, and the documented session."""

from __future__ import annotations

import doctest
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import artifacts
from artifacts import cliutil
from artifacts.cli import main
from artifacts.cliutil import format_size, parse_duration, parse_size

ROOT = Path(__file__).resolve().parent.parent


class Cli:
    """Runs the CLI in-process against one store; every result is checked to be free of tracebacks."""

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        self.url = url
        self.options = options or {}

    def __call__(
        self, *args: str, input: bytes | str | None = None, user: str | None = None
    ) -> Result:
        base = ["--store", self.url]
        if self.options:
            base += ["--storage-options", json.dumps(self.options)]
        if user:
            base += ["--user", user]
        result = CliRunner().invoke(main, [*base, *args], input=input)
        # an unexpected exception (a bug) would be captured here instead of a SystemExit
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
        assert "Traceback" not in result.output
        return result

    def ok(self, *args: str, **kw: Any) -> Result:
        result = self(*args, **kw)
        assert result.exit_code == 0, (args, result.output)
        return result

    def json(self, *args: str, **kw: Any) -> Any:
        return json.loads(self.ok(*args, "--json", **kw).stdout)

    def fails(self, *args: str, match: str = "", code: int = 1, **kw: Any) -> str:
        """Exit status ``code``; for 1, exactly one line ``error: ...`` on stderr, nothing on stdout."""
        result = self(*args, **kw)
        assert result.exit_code == code, (args, result.output)
        if code == 1:
            lines = result.stderr.splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
            assert re.search(match, lines[0]), lines[0]
            return lines[0]
        assert re.search(match, result.stderr), result.stderr
        return result.stderr

    def store(self) -> artifacts.Store:
        return artifacts.open_store(self.url, storage_options=self.options)


@pytest.fixture
def cli(local_backend: Any) -> Cli:
    c = Cli(local_backend.url)
    c.ok("init")
    return c


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    (d / "sub").mkdir(parents=True)
    (d / "train.csv").write_text("text,label\ngood,1\nbad,0\n")
    (d / "sub" / "test.csv").write_text("text,label\nok,1\n")
    return d


# -- values ------------------------------------------------------------------------------------------
def test_parse_size() -> None:
    assert parse_size("10GB") == 10 * 10**9
    assert parse_size("512MiB") == 512 * 2**20
    assert parse_size("1.5 TB") == 1_500_000_000_000
    assert parse_size("123") == parse_size("123B") == 123
    assert parse_size("2kib") == parse_size("2KiB") == 2048
    assert parse_size("1kB") == 1000
    assert parse_size("none") is None and parse_size("None") is None
    for bad in ["10G", "5M", "ten", "-1GB", "", "1 XB", "1.2.3GB", "GB", "1e", "1e+GB"]:
        with pytest.raises(cliutil.CliError):
            parse_size(bad)
    # scientific notation, exact (no float rounding), and far past 2^63 said as such
    assert parse_size("1.5e3MB") == 1_500_000_000 and parse_size("2e-3kB") == 2
    assert parse_size("0e999B") == 0 and parse_size("1e-99GB") == 0
    for huge in ["1e400GB", "1e999999B", "9.3e18B"]:
        with pytest.raises(cliutil.CliError, match="too large"):
            parse_size(huge)


def test_format_size_and_duration() -> None:
    assert format_size(0) == "0 B" and format_size(999) == "999 B"
    assert format_size(1000) == "1.0 kB" and format_size(1_234_567) == "1.2 MB"
    assert format_size(10**10) == "10.0 GB" and format_size(999_990) == "1.0 MB"
    assert format_size(None) == "-"
    assert parse_duration("24h") == 86400 and parse_duration("30m") == 1800
    assert (
        parse_duration("0") == 0 and parse_duration("90s") == 90 and parse_duration("2d") == 172800
    )
    for bad in ["", "h", "1y", "-1h", "soon"]:
        with pytest.raises(cliutil.CliError):
            parse_duration(bad)


# -- init and put ------------------------------------------------------------------------------------
def test_commands_need_an_existing_store(local_backend: Any) -> None:
    cli = Cli(local_backend.url)
    cli.fails("ls", match="no store at .*artifacts init")
    assert not os.path.exists(local_backend.url)  # nothing was created by the failed command
    assert "created store" in cli.ok("init").stdout
    assert "already exists" in cli.ok("init").stdout
    assert cli.json("ls") == []


def test_put_ls_show(cli: Cli, data: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    r = cli.ok(
        "put",
        "reviews",
        str(data),
        str(tmp_path / "notes.txt"),
        "--type",
        "dataset",
        "-a",
        "raw",
        "-a",
        "best",
        "-m",
        "source=rt",
        "-m",
        "rows=3",
        "-m",
        'tags=["a"]',
        "-d",
        "movie reviews",
    )
    assert r.stdout == "logged reviews:v0 (3 files, 45 B); aliases: best, raw\n"
    (art,) = cli.json("ls")
    assert art | {"updated_at": None} == {
        "name": "reviews",
        "type": "dataset",
        "versions": 1,
        "size": 45,
        "updated_at": None,
    }
    (v,) = cli.json("ls", "reviews")
    assert v["ref"] == "reviews:v0" and v["latest"] and v["aliases"] == ["best", "raw"]
    assert v["metadata"] == {"source": "rt", "rows": 3, "tags": ["a"]}  # values parsed as JSON
    files = cli.json("ls", "reviews:raw")
    assert [f["path"] for f in files] == ["notes.txt", "sub/test.csv", "train.csv"]
    shown = cli.json("show", "reviews:best")
    assert shown["description"] == "movie reviews" and shown["produced_by"] is None
    assert [f["path"] for f in shown["files"]] == ["notes.txt", "sub/test.csv", "train.csv"]
    assert shown["files"][0]["size"] == 5 and len(shown["files"][0]["digest"]) == 64

    table = cli.ok("ls").stdout.splitlines()
    assert table[0].split() == ["NAME", "TYPE", "VERSIONS", "SIZE", "UPDATED"]
    assert table[1].split()[:5] == ["reviews", "dataset", "1", "45", "B"]
    versions = cli.ok("ls", "reviews").stdout
    assert "reviews:v0" in versions and "latest, best, raw" in versions and "alice" in versions
    human = cli.ok("show", "reviews").stdout
    for text in [
        "reviews:v0 (dataset)",
        "45 B in 3 files",
        "movie reviews",
        '"source": "rt"',
        "logged outside a run",
        "sub/test.csv",
    ]:
        assert text in human

    # the same content again: no new version, and the type is known now
    assert "unchanged" in cli.ok("put", "reviews", str(data), str(tmp_path / "notes.txt")).stdout
    assert cli.ok("-q", "put", "reviews", str(data)).stdout == "reviews:v1\n"
    assert [v["ref"] for v in cli.json("ls", "reviews")] == ["reviews:v0", "reviews:v1"]


def test_put_errors(cli: Cli, data: Path, tmp_path: Path) -> None:
    cli.fails("put", "reviews", str(data), match="new artifact: give its type with --type")
    cli.fails(
        "put", "reviews", str(tmp_path / "missing.csv"), "-t", "dataset", match="no such file"
    )
    cli.fails("put", "bad name", str(data), "-t", "dataset", match="invalid artifact name")
    cli.fails("put", "reviews", str(data), "-t", "dataset", "-a", "latest", match="reserved")
    cli.fails(
        "put", "reviews", str(data), "-t", "dataset", "-m", "novalue", code=2, match="KEY=VALUE"
    )
    cli.fails("put", "reviews", code=2, match="Missing argument")
    cli.ok("put", "reviews", str(data), "-t", "dataset")
    cli.fails("put", "reviews", str(data / "train.csv"), "-t", "model", match="has type 'dataset'")
    cli.fails("put", "vocab", str(data), "-t", "vocabulary", "-i", "reviewz", match="'reviewz'")
    assert cli.json("runs") == []  # the typo was caught before a run was recorded
    assert len(cli.json("ls", "reviews")) == 1


# -- get and cat -------------------------------------------------------------------------------------
def test_get(cli: Cli, data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cli.ok("put", "reviews", str(data), "-t", "dataset")
    monkeypatch.chdir(tmp_path)
    assert cli.ok("get", "reviews").stdout == "reviews:v0 -> reviews-v0 (2 files, 40 B)\n"
    assert (tmp_path / "reviews-v0" / "sub" / "test.csv").read_text() == "text,label\nok,1\n"
    assert cli.ok("-q", "get", "reviews:latest", "out").stdout == "out\n"
    assert (tmp_path / "out" / "train.csv").read_bytes() == (data / "train.csv").read_bytes()
    assert cli.ok("get", "reviews", "out").exit_code == 0  # already holds exactly these files

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep me")
    cli.fails("get", "reviews", str(busy), match="exists and is not empty.*--force")
    assert sorted(p.name for p in busy.iterdir()) == ["mine.txt"]
    cli.ok("get", "reviews", str(busy), "--force")
    assert (busy / "mine.txt").read_text() == "keep me" and (busy / "train.csv").exists()

    (tmp_path / "afile").write_text("x")
    cli.fails("get", "reviews", str(tmp_path / "afile"), code=2, match="is a file")
    cli.fails("get", "reviews:v7", str(tmp_path / "new"), match="reviews:v7 not found")
    assert not (tmp_path / "new").exists()


def test_get_never_writes_outside_dest(cli: Cli, data: Path, tmp_path: Path) -> None:
    """A symlink inside DEST must not let a manifest path ("sub/test.csv") land outside DEST."""
    cli.ok("put", "reviews", str(data), "-t", "dataset")
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "sub").symlink_to(outside, target_is_directory=True)
    for force in ([], ["--force"]):
        cli.fails("get", "reviews", str(dest), *force, match="outside")
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in dest.iterdir()) == ["sub"]
    # a symlink in a file's own place, leading outside, is refused too (a link inside DEST is not)
    (dest / "sub").unlink()
    (dest / "sub").mkdir()
    victim = outside / "victim.csv"
    victim.write_text("text,label\nok,1\n")  # the same bytes: a get would keep it as "held"
    (dest / "sub" / "test.csv").symlink_to(victim)
    cli.fails("get", "reviews", str(dest), "--force", match="outside")
    (dest / "sub" / "test.csv").unlink()
    (dest / "sub" / "test.csv").symlink_to(dest / "train.csv")
    cli.ok("get", "reviews", str(dest), "--force")
    assert (dest / "sub" / "test.csv").read_text() == "text,label\nok,1\n"
    assert victim.read_text() == "text,label\nok,1\n"


def test_cat(cli: Cli, tmp_path: Path) -> None:
    payload = bytes(range(256)) * 10
    (tmp_path / "blob.bin").write_bytes(payload)
    cli.ok("put", "bin", str(tmp_path / "blob.bin"), "-t", "dataset")
    assert cli.ok("cat", "bin:v0", "blob.bin").stdout_bytes == payload
    cli.fails("cat", "bin", "nope.bin", match="has no file 'nope.bin'")
    cli.fails("cat", "nope", "x", match="no artifact named 'nope'")
    cli.fails("cat", "bin", code=2, match="Missing argument")


# -- alias and rm ------------------------------------------------------------------------------------
def test_alias_and_rm(cli: Cli, data: Path) -> None:
    cli.ok("put", "reviews", str(data), "-t", "dataset")
    cli.ok("put", "reviews", str(data / "train.csv"))
    assert cli.ok("alias", "reviews:v0", "best").stdout == "reviews:best -> reviews:v0\n"
    assert cli.ok("alias", "reviews", "best").stdout == "reviews:best -> reviews:v1\n"  # moved
    assert cli.json("show", "reviews:best")["ref"] == "reviews:v1"
    assert cli.ok("alias", "--rm", "reviews:best").stdout == "removed alias reviews:best\n"
    cli.fails("show", "reviews:best", match="no version of 'reviews' has alias 'best'")
    cli.fails("alias", "--rm", "reviews:best", match="has alias 'best'")
    cli.fails("alias", "reviews:v0", "latest", match="reserved")
    cli.fails("alias", "reviews:v0", code=2, match="missing ALIAS")
    cli.fails("alias", "--rm", "reviews", code=2, match="NAME:ALIAS")
    cli.fails("alias", "--rm", "reviews:v0", code=2, match="NAME:ALIAS")
    cli.fails("alias", "--rm", "reviews:x", "y", code=2, match="only NAME:ALIAS")

    cli.fails("rm", "reviews", match="rm needs a version, e.g. reviews:v0")
    assert cli.ok("rm", "reviews:v0").stdout.startswith("deleted reviews:v0 (40 B;")
    cli.fails("show", "reviews:v0", match="was deleted")
    cli.fails("rm", "reviews:v0", match="was deleted")
    assert [v["ref"] for v in cli.json("ls", "reviews")] == ["reviews:v1"]
    cli.ok("alias", "reviews:v1", "prod")
    cli.fails(
        "rm", "reviews:prod", user="bob", match="was created by alice; only they or a store admin"
    )
    cli.ok("rm", "reviews:prod")
    cli.fails("show", "reviews", match="all its versions were deleted")


# -- runs and lineage --------------------------------------------------------------------------------
def test_runs_run_and_lineage(cli: Cli, data: Path, tmp_path: Path) -> None:
    with cli.store() as store:
        with store.start_run(project="nlp", job_type="prepare", config={"seed": 1}) as run:
            art = artifacts.Artifact("reviews", type="dataset")
            art.add_dir(data)
            run.log_artifact(art)
            run.log({"rows": 2})
        prepare = run.id
    (tmp_path / "vocab.json").write_text('{"good": 0}')
    cli.ok(
        "put",
        "vocab",
        str(tmp_path / "vocab.json"),
        "-t",
        "vocabulary",
        "-i",
        "reviews",
        "--project",
        "nlp",
    )
    runs = cli.json("runs")
    assert [r["job_type"] for r in runs] == ["prepare", "put"]
    assert runs[0]["summary"] == {"rows": 2} and runs[1]["status"] == "finished"
    assert cli.json("runs", "--project", "other") == []
    put_run = runs[1]["id"]
    table = cli.ok("runs", "-p", "nlp").stdout.splitlines()
    assert table[0].split() == ["ID", "PROJECT", "GROUP", "JOB", "NAME", "STATUS", "USER", "STARTED"]
    assert len(table) == 3

    r = cli.json("run", prepare)
    assert r["config"] == {"seed": 1} and r["outputs"] == ["reviews:v0"] and r["inputs"] == []
    assert cli.json("run", put_run)["inputs"] == ["reviews:v0"]
    human = cli.ok("run", prepare).stdout
    for text in ["prepare", "project nlp", "seed: 1", "rows: 2", "reviews:v0"]:
        assert text in human
    cli.fails("run", "0123456789ab", match="run 0123456789ab not found")
    assert cli.json("show", "vocab")["produced_by"] == put_run
    assert cli.json("show", "reviews")["consumed_by"] == [put_run]

    tree = cli.ok("lineage", "vocab").stdout
    assert tree.splitlines()[0] == "vocab:v0"
    assert f"produced by put {put_run}" in tree and "consumed reviews:v0" in tree
    assert f"produced by prepare {prepare}" in tree
    down = cli.ok("lineage", "reviews", "--down").stdout
    assert f"consumed by put {put_run}" in down and "produced vocab:v0" in down
    both = cli.ok("lineage", "reviews", "--both").stdout
    assert f"produced by prepare {prepare}" in both and "produced vocab:v0" in both
    g = cli.json("lineage", "vocab:latest")
    assert g["root"] == "vocab:v0" and {n["id"] for n in g["nodes"]} == {
        "vocab:v0",
        f"run/{put_run}",
        "reviews:v0",
        f"run/{prepare}",
    }
    assert cli.json("lineage", "vocab", "--depth", "0")["nodes"] == [
        n for n in g["nodes"] if n["id"] == "vocab:v0"
    ]
    assert json.loads(cli.ok("lineage", "vocab", "-f", "json").stdout) == g
    assert cli.ok("lineage", "vocab", "--format", "dot").stdout.startswith("digraph lineage {")
    assert cli.ok("lineage", "vocab", "--format", "mermaid").stdout.startswith("flowchart LR")
    run_tree = cli.ok("lineage", f"run/{put_run}", "--down").stdout
    assert "produced vocab:v0" in run_tree
    cli.fails("lineage", "vocab", "--format", "png", code=2, match="Invalid value")
    cli.fails("lineage", "vocab", "--depth", "-1", code=2, match="Invalid value")
    cli.fails("lineage", "nope:v3", match="no artifact named 'nope'")


# -- quotas and maintenance --------------------------------------------------------------------------
def test_quota_and_usage(cli: Cli, data: Path, tmp_path: Path) -> None:
    assert cli.ok("quota").stdout == "alice: 0 B used, no quota\n"
    cli.ok("put", "reviews", str(data), "-t", "dataset")
    assert cli.ok("quota", "--set", "10GB").stdout == (
        "alice: 40 B used of 10.0 GB (0%), 10.0 GB available\n"
    )
    assert cli.json("usage") == {
        "user": "alice",
        "usage": 40,
        "quota": 10**10,
        "available": 10**10 - 40,
    }
    cli.ok("quota", "bob", "--set", "512MiB")
    assert cli.json("usage", "bob")["quota"] == 512 * 2**20
    assert cli.ok("usage", "bob").stdout.startswith("bob: 0 B used of 536.9 MB (0%)")
    for bad in ["10G", "ten", "-5GB", ""]:
        cli.fails("quota", "--set", bad, match="size")
    assert cli.json("usage")["quota"] == 10**10  # unchanged by the bad attempts
    cli.fails("quota", "--set", "1GB", user="bob", match="only store admins may set quotas")

    cli.ok("quota", "--set", "60B")
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 100)
    cli.fails("put", "big", str(big), "-t", "dataset", match="quota exceeded for user 'alice'")
    cli.fails("ls", "big", match="no artifact named 'big'")
    cli.ok("quota", "--set", "none")
    assert cli.json("usage")["quota"] is None


def test_admin(cli: Cli) -> None:
    assert cli.ok("admin").stdout == "admins: alice\n"
    cli.fails("admin", "carol", user="bob", match="only store admins may add admins")
    assert cli.ok("admin", "bob").stdout == "admins: alice, bob\n"
    cli.ok("quota", "carol", "--set", "1GB", user="bob")  # bob may now set quotas
    cli.fails("admin", "not a name", match="invalid user name")


def test_verify_gc_reindex(cli: Cli, data: Path, tmp_path: Path) -> None:
    cli.ok("put", "reviews", str(data), "-t", "dataset")
    (tmp_path / "other.txt").write_text("other content")
    cli.ok("put", "other", str(tmp_path / "other.txt"), "-t", "dataset")
    assert cli.ok("verify").stdout.startswith("ok: checked ")
    assert cli.ok("verify", "--quick").stdout.rstrip().endswith("(quick)")
    assert cli.ok("verify", "reviews:v0").stdout == "ok: checked 3 blobs\n"

    cli.ok("rm", "other:v0")
    assert cli.ok("gc", "--dry-run").stdout.startswith("would delete 0 blobs")  # 24h grace
    assert cli.ok("gc", "-n", "--grace", "0").stdout.startswith("would delete 2 blobs (")
    assert cli.ok("gc", "--grace", "0s").stdout.startswith("deleted 2 blobs (")
    assert cli.ok("gc", "--grace", "0").stdout.startswith("deleted 0 blobs")
    cli.fails("gc", "--grace", "soon", match="invalid duration 'soon'")
    assert cli.ok("reindex").stdout.startswith(f"rebuilt the index of {cli.url} from ")
    assert [a["name"] for a in cli.json("ls")] == ["other", "reviews"]

    with cli.store() as store:
        digest = store.artifact("reviews").file("train.csv").digest
        blob = store.blobs.local_path(digest)
    os.chmod(blob, 0o644)
    blob.write_bytes(b"tampered")
    result = cli("verify")
    assert result.exit_code == 1
    assert f"blob {digest}" in result.stdout and "corrupt" in result.stdout
    assert (
        result.stderr.startswith("error: 1 problem found") and len(result.stderr.splitlines()) == 1
    )
    cli.fails("verify", "reviews", match="1 problem found")
    cli.fails("cat", "reviews", "train.csv", match="is corrupt")
    cli.fails("get", "reviews", str(tmp_path / "restore"), match="is corrupt")
    assert not (tmp_path / "restore" / "train.csv").exists()


# -- progress, help, global options ------------------------------------------------------------------
def test_progress_bar_follows_the_bytes(
    cli: Cli, data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bars: list[Any] = []

    class Recording(cliutil.TqdmCallback):
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, **kw)
            bars.append(self)

    monkeypatch.setattr(cliutil, "TqdmCallback", Recording)
    monkeypatch.setattr(cliutil.Progress, "wanted", staticmethod(lambda quiet: not quiet))
    cli.ok("put", "reviews", str(data), "-t", "dataset")
    cli.ok("get", "reviews", str(tmp_path / "out"))
    assert [(b.size, b.value) for b in bars] == [(40, 40), (40, 40)]
    cli.ok("-q", "get", "reviews", str(tmp_path / "out2"))
    assert len(bars) == 2  # --quiet: no bar
    monkeypatch.undo()
    assert not cliutil.Progress.wanted(False)  # stderr is not a terminal under pytest


def test_every_command_has_help_and_is_documented() -> None:
    doc = cli_doc()
    assert main.help and main.commands
    for name, command in main.commands.items():
        assert command.help and command.get_short_help_str(), name
        for param in command.params:
            if param.param_type_name == "option":
                assert param.help, f"{name} {param.name}"
        result = CliRunner().invoke(main, [name, "--help"])
        assert result.exit_code == 0 and result.stdout.startswith(f"Usage: main {name} ")
        assert re.search(rf"`artifacts {name}\b", doc), f"`artifacts {name}` is not documented"
    top = CliRunner().invoke(main, ["--help"])
    assert top.exit_code == 0 and all(n in top.stdout for n in main.commands)
    assert CliRunner().invoke(main, ["--version"]).stdout.strip().endswith(artifacts.__version__)


def test_global_option_errors(local_backend: Any) -> None:
    cli = Cli(local_backend.url)
    result = CliRunner().invoke(main, ["--storage-options", "{nope", "ls"])
    assert result.exit_code == 1 and result.stderr.startswith("error: --storage-options is not")
    result = CliRunner().invoke(main, ["--store", "ftp://x/y", "init"])
    assert result.exit_code == 1 and "unsupported store URL scheme 'ftp'" in result.stderr
    cli.fails("nosuchcommand", code=2, match="No such command")
    cli.fails("ls", "--nosuchoption", code=2, match="No such option")


def test_store_from_environment(local_backend: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARTIFACTS_STORE", local_backend.url)
    monkeypatch.setenv("ARTIFACTS_USER", "carol")
    runner = CliRunner()
    assert "(admin: carol)" in runner.invoke(main, ["init"]).stdout
    assert runner.invoke(main, ["--user", "dave", "quota"]).stdout == "dave: 0 B used, no quota\n"


@pytest.mark.s3
def test_s3_store(s3_backend: Any, data: Path, tmp_path: Path) -> None:
    cli = Cli(s3_backend.url, s3_backend.storage_options)
    cli.fails("ls", match="no store at s3://")
    cli.ok("init")
    cli.ok("put", "reviews", str(data), "-t", "dataset", "-a", "best")
    assert [v["ref"] for v in cli.json("ls", "reviews")] == ["reviews:v0"]
    cli.ok("get", "reviews:best", str(tmp_path / "out"))
    assert (tmp_path / "out" / "sub" / "test.csv").read_text() == "text,label\nok,1\n"
    assert cli.ok("cat", "reviews", "train.csv").stdout == "text,label\ngood,1\nbad,0\n"
    assert cli.ok("verify").stdout.startswith("ok:")
    missing = Cli(
        s3_backend.url.replace("s3://", "s3://no-such-bucket-"), s3_backend.storage_options
    )
    missing.fails("ls", match="bucket .* does not exist|no-such-bucket")


# -- real processes ----------------------------------------------------------------------------------
def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env["ARTIFACTS_USER"] = "alice"
    env.pop("ARTIFACTS_STORE", None)
    return env


def test_subprocess_exit_statuses(tmp_path: Path) -> None:
    """As a real process: one-line errors with status 1, usage errors with 2 (the documented session
    below runs the successful commands as processes too)."""

    def run(*args: str, exe: tuple[str, ...] = (sys.executable, "-m", "artifacts.cli")) -> Any:
        return subprocess.run(
            [*exe, *args],
            cwd=tmp_path,
            env=_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=120,
        )

    p = run("ls")
    assert (p.returncode, p.stdout) == (1, "")
    assert p.stderr.startswith("error: no store at ./.artifacts") and p.stderr.count("\n") == 1
    assert run("init").returncode == 0 and (tmp_path / ".artifacts" / "store.json").exists()
    p = run("quota", "--set", "10 parsecs")
    assert (
        p.returncode == 1
        and p.stderr.startswith("error: invalid size")
        and p.stderr.count("\n") == 1
    )
    p = run("lineage", "reviews", "--format", "nope")
    assert p.returncode == 2 and "Usage: artifacts lineage" in p.stderr
    with artifacts.open_store(tmp_path / ".artifacts") as store:  # big enough to fill a pipe
        store.log_artifact(artifacts.Artifact("big", "dataset").add_bytes("x", b"x" * (4 << 20)))
    cat = subprocess.Popen(
        [sys.executable, "-m", "artifacts.cli", "cat", "big", "x"],
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert cat.stdout.read(10) == b"x" * 10
    cat.stdout.close()  # `artifacts cat big x | head -c 10`
    assert cat.wait(timeout=120) == 141 and cat.stderr.read() == b""  # quiet, as `git` does
    script = shutil.which("artifacts")
    assert script is not None, (
        "the console script `artifacts` is installed by the README's pip install"
    )
    p = run("show", "reviews:v9", exe=(script,))
    assert p.returncode == 1 and p.stderr.startswith("error: ") and p.stderr.count("\n") == 1


def cli_doc() -> str:
    """The README's "## Command line" section."""
    readme = (ROOT / "README.md").read_text()
    assert "\n## Command line\n" in readme
    return readme.split("\n## Command line\n", 1)[1].split("\n## ", 1)[0]


def test_documented_session_runs_as_shown(tmp_path: Path) -> None:
    """The doc's terminal session, run verbatim in an empty directory; `#` lines are its output."""
    block = re.search(r"```bash\n(.*?)```", cli_doc(), re.S).group(1)
    steps: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("#"):
            steps[-1][1].append(line[2:] if line.startswith("# ") else line[1:])
        elif line.strip():
            steps.append((line, []))
    assert any(c.startswith("artifacts lineage") for c, _ in steps)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "artifacts"  # the working tree's CLI, whatever is installed
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m artifacts.cli "$@"\n')
    shim.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    script = "set -e\n" + "".join(f"echo '@@@ {i}'\n{cmd}\n" for i, (cmd, _) in enumerate(steps))
    env = _env(tmp_path)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    p = subprocess.run(
        ["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=300
    )
    assert p.returncode == 0, p.stdout + p.stderr
    outputs = p.stdout.split("@@@ ")[1:]
    assert len(outputs) == len(steps)
    checker = doctest.OutputChecker()
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    for (cmd, want), got in zip(steps, outputs, strict=True):
        got = got.split("\n", 1)[1]
        if want:
            want_text = "\n".join(want) + "\n"
            assert checker.check_output(want_text, got, flags), (
                f"{cmd}\nwant:\n{want_text}got:\n{got}"
            )


@pytest.mark.parametrize(
    "args",
    [
        ["x", "{missing}", "-t", "dataset"],
        ["bad name!", "{file}", "-t", "dataset"],
        ["x", "{file}"],  # a new artifact with no type
        ["x", "/dev/null", "-t", "dataset"],
        ["x", "{file}", "-t", "dataset", "-a", "bad alias!"],
        ["x", "{file}", "-t", "dataset", "-i", "y:v0"],
        ["x", "{file}", "-t", "dataset", "--project", "bad project!"],
    ],
)
def test_a_failed_put_creates_no_store(tmp_path: Path, args: list[str]) -> None:
    """Bad input to a put into a new store is refused before the store is created."""
    (tmp_path / "f.txt").write_text("hello")
    url = tmp_path / "new-store"
    cli = Cli(str(url))
    filled = [a.format(file=tmp_path / "f.txt", missing=tmp_path / "nope") for a in args]
    cli.fails("put", *filled)
    assert not url.exists()
    cli.ok("put", "x", str(tmp_path / "f.txt"), "-t", "dataset")  # good input creates it
    assert (url / "store.json").exists()
