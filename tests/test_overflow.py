"""Numbers a user types that do not fit in 64 bits: one line naming the value, never a traceback.

SQLite stores integers in 64 bits, so a version, quota, limit or query literal past 2^63 used to escape
as ``OverflowError`` from deep inside a query (issue 11, item 2). The matrix below runs every command
that takes a ref or a number with values just past the edge, far past it, and longer than Python's
int-from-text limit (4300 digits), against a local and an S3 store; each must fail with exit status 1,
one ``error:`` line that quotes the bad value, and the store untouched.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import artifacts
from artifacts.bounds import INT64_MAX
from artifacts.cli import main
from artifacts.cliutil import CliError, parse_duration, parse_size
from artifacts.names import parse_ref
from artifacts.query import parse
from tests.conftest import Backend

BIG = "99999999999999999999"  # 10^20 - 1: past 2^63
EDGE = str(2**63)  # the first integer that does not fit
HUGE = "9" * 5000  # past Python's int-from-text limit too

BAD_REFS = [f"m:v{BIG}", f"m:v{EDGE}", f"m:v{HUGE}"]
#: ``(args, needle)``: ``{ref}`` is each of BAD_REFS; the needle is what the error line must quote.
REF_COMMANDS = [
    ("show {ref}", "too large"),
    ("ls {ref}", "too large"),
    ("rm {ref}", "too large"),
    ("get {ref} {dest}", "too large"),
    ("alias {ref} best", "too large"),
    ("alias --rm {ref}", "too large"),
    ("lineage {ref}", "too large"),
    ("lineage --down {ref}", "too large"),
    ("cat {ref} f", "too large"),
    ("diff {ref} m:v0", "too large"),
    ("diff m:v0 {ref}", "too large"),
    ("verify {ref}", "too large"),
    ("report {ref} -o {dest}.html", "too large"),
    ("put m2 {file} -t dataset -i {ref}", "too large"),
]
NUMBER_COMMANDS = [
    (f"quota --set {BIG}GB", "too large"),
    (f"quota --set {EDGE}", "too large"),
    ("quota --set 9223372036854775807.6", "too large"),
    (f"quota --set 1{'0' * 5000}B", "too large"),
    ("quota --set 1e400GB", "1e400GB"),
    ("quota --set 1e30GB", "1e30GB"),
    (f"quota alice --set {EDGE}", "too large"),
    (f"cache --max-size {BIG}GB", "too large"),
    (f"cache --max-size {EDGE}", "too large"),
    ("cache --max-size 1e400GB", "1e400GB"),
    (f"gc --grace {HUGE}w", "too long"),
    (f"gc --grace {BIG}w", "too long"),
    ("gc --grace 1e400", "1e400"),
    (f"lineage m --depth {BIG}", BIG),
    (f"lineage m --depth {EDGE}", EDGE),
    (f"runs --limit {BIG}", BIG),
    (f"runs --limit {EDGE}", EDGE),
    (f"runs --where config.lr<{BIG}", BIG),
    (f"runs --where config.lr>-{BIG}", BIG),
    (f"runs --where summary.acc={EDGE}", EDGE),
    ("runs --where config.lr<1e400", "1e400"),
    (f"runs --where config.lr<{HUGE}", "out of range"),
    (f"runs --where step<{EDGE} --group-by project", EDGE),
    (f"compute --where config.lr<{BIG}", BIG),
]


def _cursor(values: list[Any]) -> str:
    raw = json.dumps({"o": ["started_at"], "v": values}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _matrix() -> list[tuple[str, str]]:
    cases = [(a.replace("{ref}", ref), n) for a, n in REF_COMMANDS for ref in BAD_REFS]
    cases += NUMBER_COMMANDS
    cursor = _cursor(["2026-01-01T00:00:00", 2**64])
    cases.append((f"runs --order started_at --limit 1 --after {cursor}", "cursor"))
    return cases


MATRIX = _matrix()
S3_MATRIX = [(a.replace("{ref}", f"m:v{EDGE}"), n) for a, n in REF_COMMANDS] + NUMBER_COMMANDS[::6]


@pytest.fixture
def populated(shared_backend: Backend, tmp_path: Path) -> tuple[list[str], artifacts.Store]:
    store = artifacts.open_store(
        shared_backend.url, user="alice", storage_options=shared_backend.storage_options
    )
    with store.start_run(project="p", config={"lr": 0.1}) as run:
        a = artifacts.Artifact("m", type="model", metadata={"epoch": 1})
        a.add_bytes("f", b"weights")
        run.log_artifact(a, aliases=["best"])
        run.log({"acc": 0.5})
    base = ["--store", shared_backend.url, "--user", "alice"]
    if shared_backend.storage_options:
        base += ["--storage-options", json.dumps(shared_backend.storage_options)]
    return base, store


def _log(store: artifacts.Store) -> list[str]:
    return sorted(store.root.find("log"))


def test_every_command_refuses_numbers_past_64_bits_in_one_line(
    populated: tuple[list[str], artifacts.Store], tmp_path: Path
) -> None:
    base, store = populated
    before = _log(store)
    (tmp_path / "f").write_bytes(b"new data")
    runner = CliRunner()
    failures = []
    # S3 costs about a second per command (the store is opened each time): there every ref command
    # runs once, with the first integer past the edge, and a few of the numbers; locally all of it.
    matrix = S3_MATRIX if str(store.url).startswith("s3:") else MATRIX
    for i, (args, needle) in enumerate(matrix):
        args = args.replace("{dest}", str(tmp_path / f"d{i}")).replace("{file}", str(tmp_path / "f"))
        argv = [*base, *args.split(" ")]
        result = runner.invoke(main, argv)
        lines = result.stderr.strip().splitlines()
        ok = (
            result.exit_code == 1
            and (result.exception is None or isinstance(result.exception, SystemExit))
            and len(lines) == 1
            and lines[0].startswith("error: ")
            and needle in lines[0]
            and len(lines[0]) < 400  # a 5000-digit input is not echoed whole
            and "Traceback" not in result.output
        )
        if not ok:
            failures.append((args[:80], result.exit_code, repr(result.exception), lines[-3:]))
    assert not failures, f"{len(failures)} of {len(matrix)} cases: {failures}"
    assert _log(store) == before  # nothing committed by any of them
    assert not any((tmp_path / f"d{i}").exists() for i in range(len(matrix)))
    v = store.artifact("m:best")
    assert v.version == 0 and v.read_bytes("f") == b"weights"


def test_the_matrix_covers_every_command_that_takes_a_ref_or_a_number() -> None:
    """A new command that takes a REF or a number must join the matrix."""
    covered = {args.split(" ")[0] for args, _ in MATRIX}
    takes_ref_or_number = set()
    for name, cmd in main.commands.items():
        for p in cmd.params:
            metavar = (p.metavar or p.name or "").upper()
            kind = getattr(p.type, "name", "")
            if "REF" in metavar or kind in ("integer range", "integer") or p.name in (
                "set_", "size", "max_size", "grace", "where", "after"
            ):
                takes_ref_or_number.add(name)
    missing = takes_ref_or_number - covered - {"sync", "ui", "run"}  # sync: below; ui: a port
    assert not missing, f"commands with a ref or a number and no overflow case: {sorted(missing)}"


def test_sync_refuses_a_ref_past_64_bits(
    populated: tuple[list[str], artifacts.Store], tmp_path: Path
) -> None:
    base, store = populated
    dst = tmp_path / "dst"
    for ref in BAD_REFS:
        result = CliRunner().invoke(main, [*base, "sync", store.url, str(dst), ref])
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 1 and len(lines) == 1 and "too large" in lines[0], lines
    assert not (dst / "log").exists() or not list((dst / "log").iterdir())


# -- the API: the same numbers through Python ---------------------------------------------------------
def test_api_refuses_numbers_past_64_bits(shared_backend: Backend) -> None:
    store = artifacts.open_store(
        shared_backend.url, user="alice", storage_options=shared_backend.storage_options
    )
    a = artifacts.Artifact("m", type="model")
    a.add_bytes("f", b"w")
    store.log_artifact(a)
    before = _log(store)
    from artifacts.cache import DownloadCache

    calls = [
        (lambda: store.artifact(f"m:v{BIG}"), artifacts.InvalidNameError, "too large"),
        (lambda: store.artifact(f"m:v{HUGE}"), artifacts.InvalidNameError, "too large"),
        (lambda: store.artifact("m:v1e30"), artifacts.NotFoundError, "v1e30"),
        (lambda: store.set_alias(f"m:v{EDGE}", "best"), artifacts.InvalidNameError, "too large"),
        (lambda: store.delete_version(f"m:v{EDGE}"), artifacts.InvalidNameError, "too large"),
        (lambda: store.lineage(f"m:v{EDGE}"), artifacts.InvalidNameError, "too large"),
        (lambda: store.lineage("m", depth=2**64), artifacts.InvalidValueError, "depth"),
        (lambda: store.set_quota("alice", 10**30), artifacts.InvalidValueError, "quota"),
        (lambda: store.set_quota("alice", 2**63), artifacts.InvalidValueError, "quota"),
        (lambda: store.runs(limit=2**64), artifacts.QueryError, "limit"),
        (lambda: store.runs(where=f"config.x = {BIG}"), artifacts.QueryError, BIG),
        (lambda: store.versions("m", where=f"size > {EDGE}"), artifacts.QueryError, EDGE),
        (lambda: DownloadCache().set_max_size(2**64), artifacts.InvalidValueError, "cache size"),
    ]
    for call, error, needle in calls:
        with pytest.raises(error, match=needle) as e:
            call()
        assert "\n" not in str(e.value) and len(str(e.value)) < 400
    with store.start_run(project="p") as run, pytest.raises(artifacts.InvalidValueError, match="step"):
        run.log({"x": 1}, step=2**63)
    assert [p for p in _log(store) if p not in before] != []  # the run's own entries only
    assert store.set_quota("alice", INT64_MAX) is None and store.quota("alice") == INT64_MAX


# -- the class: any integer, any unit, at the parsers ------------------------------------------------
settings_ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
integers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=2**62, max_value=2**64),
    st.integers(min_value=0, max_value=10**400),
)


@settings_
@given(integers)
def test_any_version_number_parses_or_is_refused(n: int) -> None:
    try:
        ref = parse_ref(f"m:v{n}")
    except artifacts.InvalidNameError as e:
        assert n > INT64_MAX or n < 0, e
        assert "\n" not in str(e) and len(str(e)) < 400
    else:
        if ref.version is not None:
            assert ref.version == n and 0 <= n <= INT64_MAX
        else:  # 'v-5' is an alias name
            assert n < 0 and ref.alias == f"v{n}"


@settings_
@given(
    integers,
    st.sampled_from(["", "B", "kB", "MB", "GB", "TB", "PB", "EB", "KiB", "MiB", "GiB", "EiB"]),
    st.sampled_from(["", ".0", ".5", ".999999"]),
)
def test_any_size_parses_to_64_bits_or_is_refused(n: int, unit: str, frac: str) -> None:
    text = f"{abs(n)}{frac}{unit}"
    try:
        size = parse_size(text)
    except CliError as e:
        assert "too large" in e.format_message() and len(e.format_message()) < 400
        return
    assert size is not None and 0 <= size <= INT64_MAX


@settings_
@given(integers, st.sampled_from(["s", "m", "h", "d", "w", ""]))
def test_any_duration_is_finite_or_refused(n: int, unit: str) -> None:
    try:
        seconds = parse_duration(f"{abs(n)}{unit}")
    except CliError as e:
        assert "too long" in e.format_message()
        return
    assert 0 <= seconds < 1e15


@settings_
@given(integers, st.sampled_from(["<", "<=", "=", "!=", ">", ">="]))
def test_any_integer_in_a_query_compiles_or_is_refused(n: int, op: str) -> None:
    text = f"config.lr {op} {n}"
    try:
        parse(text)
    except artifacts.QueryError as e:
        assert not -(2**63) <= n <= INT64_MAX and "out of range" in str(e)
        return
    assert -(2**63) <= n <= INT64_MAX
