"""Live runs: W&B step rules, config and summary, scalars from NumPy and torch, tags and notes, reading
a live run from elsewhere, crashed runs, and the module-level W&B API (`artifacts.init` ...)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import artifacts
from tests.conftest import Backend


def open_(b: Backend, user: str | None = None) -> artifacts.Store:
    return artifacts.open_store(b.url, user=user, storage_options=b.storage_options)


@pytest.fixture
def store(memory_backend: Backend) -> artifacts.Store:
    return open_(memory_backend)


def test_step_rules_follow_wandb(store: artifacts.Store) -> None:
    with store.start_run(project="p") as run:
        run.log({"a": 1})  # step 0, closed
        run.log({"b": 2}, step=3)  # opens step 3
        run.log({"c": 3})  # joins step 3 and closes it
        run.log({"d": 4}, commit=False)  # step 4 stays open
        run.log({"d": 5, "e": 6})  # later value wins, closes step 4
        run.log({"f": 7}, step=np.int64(6))
        run.log({"g": 8}, step=6)  # same step merges
        with pytest.raises(artifacts.InvalidValueError, match="below the current step 6"):
            run.log({"h": 9}, step=5)
        for bad in (-1, 1.5, True, "3"):
            with pytest.raises(artifacts.InvalidValueError, match="step"):
                run.log({"h": 9}, step=bad)  # type: ignore[arg-type]
        assert run.step == 6
        live = run.history()
    expected = [
        {"a": 1, "_step": 0},
        {"b": 2, "c": 3, "_step": 3},
        {"d": 5, "e": 6, "_step": 4},
        {"f": 7, "g": 8, "_step": 6},
    ]
    assert live == expected
    assert store.run(run.id).history() == expected
    assert store.run(run.id).summary == {"a": 1, "b": 2, "c": 3, "d": 5, "e": 6, "f": 7, "g": 8}


def test_numpy_and_torch_scalars_are_plain_values(store: artifacts.Store) -> None:
    torch = pytest.importorskip("torch")
    with store.start_run(project="p") as run:
        run.log(
            {
                "f32": np.float32(0.5),
                "i64": np.int64(3),
                "b": np.bool_(True),
                "t": torch.tensor(2.5),
                "ti": torch.tensor(7),
                "nan": float("nan"),
                "nested": {"x": np.float64(1.0), "y": [torch.tensor(1.0)]},
            }
        )
        for bad in (np.zeros(3), torch.zeros(2), object()):
            with pytest.raises(artifacts.InvalidValueError, match="scalar|number"):
                run.log({"bad": bad})
        run.summary["best"] = np.float32(0.25)
    [row] = store.run(run.id).history()
    assert row == {
        "f32": 0.5,
        "i64": 3,
        "b": True,
        "t": 2.5,
        "ti": 7,
        "nan": None,
        "nested": {"x": 1.0, "y": [1.0]},
        "_step": 0,
    }
    assert type(row["i64"]) is int and store.run(run.id).summary["best"] == 0.25


def test_log_does_not_import_torch() -> None:
    code = textwrap.dedent(
        """
        import sys, numpy as np, artifacts
        s = artifacts.open_store("memory://no-torch")
        with s.start_run(project="p") as run:
            run.log({"x": 1.0, "y": np.float32(2)})
        assert "torch" not in sys.modules, "torch was imported"
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_config_changes_are_persisted(memory_backend: Backend) -> None:
    store = open_(memory_backend)
    import argparse

    run = store.start_run(project="p", config=argparse.Namespace(lr=0.1, layers=2))
    assert run.config.lr == 0.1 and run.config["layers"] == 2
    run.config.update({"batch": 32})
    run.config.dropout = np.float32(0.5)
    run.config["layers"] = 3
    run.flush()
    elsewhere = open_(memory_backend).run(run.id)
    assert elsewhere.config == {"lr": 0.1, "layers": 3, "batch": 32, "dropout": 0.5}
    run.finish()
    assert open_(memory_backend).run(run.id).config == elsewhere.config
    with pytest.raises(AttributeError):
        run.config.missing  # noqa: B018


def test_tags_notes_and_rename_are_in_the_log(backend: Backend) -> None:
    store = open_(backend)
    with store.start_run(project="p", name="first", tags=["a", "b"], notes="try 1") as run:
        run.tags = [*run.tags, "c"]
    rec = open_(backend).run(run.id)
    assert (rec.tags, rec.notes, rec.name) == (["a", "b", "c"], "try 1", "first")
    rec.name, rec.notes = "renamed", "it worked"
    store.update_run(run.id, tags=["final"])
    store.reindex()  # everything comes back from the log
    again = store.run(run.id)
    assert (again.tags, again.notes, again.name) == (["final"], "it worked", "renamed")
    for bad in ({"tags": "a"}, {"tags": [""]}, {"tags": [1]}, {"notes": 3}, {"name": ""}):
        with pytest.raises(artifacts.InvalidValueError):
            store.update_run(run.id, **bad)  # type: ignore[arg-type]
    with pytest.raises(artifacts.PermissionDeniedError):
        open_(backend, user="bob").update_run(run.id, tags=["mine"])


def test_exceptions_end_runs_failed_or_killed(store: artifacts.Store) -> None:
    with pytest.raises(KeyboardInterrupt), store.start_run(project="p") as killed:
        raise KeyboardInterrupt
    with pytest.raises(SystemExit), store.start_run(project="p") as exited:
        sys.exit(0)
    run = store.start_run(project="p")
    run.finish(exit_code=2)
    assert [store.run(r.id).status for r in (killed, exited, run)] == [
        "killed",
        "finished",
        "failed",
    ]


def test_live_run_is_readable_elsewhere_then_crashed(
    local_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_(local_backend)
    run = store.start_run(project="p", flush_interval=0.05)
    for i in range(3):
        run.log({"i": i})
    run.log({"i": 3}, step=3)  # open, flushed as it is
    run.flush()
    other = open_(local_backend).run(run.id)
    assert other.status == "running" and other.heartbeat is not None
    assert other.history() == [{"i": i, "_step": i} for i in range(4)]
    assert other.summary == {"i": 3}
    with pytest.raises(artifacts.InvalidStateError, match="alive"):
        open_(local_backend, user="bob").close_run(run.id)
    # the process "dies": its flusher stops and nothing more is written
    assert run._live is not None
    run._live._stopped = True
    run._live._wake.set()
    run._live._thread.join()
    monkeypatch.setenv("ARTIFACTS_CRASH_TIMEOUT", "0.2")
    time.sleep(0.3)
    assert open_(local_backend).run(run.id).status == "crashed"
    closed = open_(local_backend, user="bob").close_run(run.id)  # anyone may mark it crashed
    assert closed.status == "crashed" and closed.history() == other.history()
    with pytest.raises(artifacts.InvalidStateError):
        run.finish()  # the late owner is refused: the run was closed for good
    assert open_(local_backend).verify().ok


def test_close_run_with_force_and_cli_mark(local_backend: Backend, tmp_path: Path) -> None:
    store = open_(local_backend)
    run = store.start_run(project="p", flush_interval=60)
    run.log({"x": 1})
    run.flush()
    env = {**os.environ, "ARTIFACTS_STORE": local_backend.url}
    refused = subprocess.run(
        ["artifacts", "run", run.id, "--mark", "crashed"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert refused.returncode == 1 and "alive" in refused.stderr
    assert "Traceback" not in refused.stderr
    done = subprocess.run(
        ["artifacts", "run", run.id, "--mark", "crashed", "--force"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert "1 history rows kept" in done.stdout
    assert store.run(run.id).status == "crashed"
    assert store.run(run.id).history() == [{"x": 1, "_step": 0}]


def test_flush_rows_triggers_a_flush(local_backend: Backend) -> None:
    store = open_(local_backend)
    with store.start_run(project="p", flush_interval=3600, flush_rows=10) as run:
        for i in range(25):
            run.log({"i": i})
        deadline = time.monotonic() + 10
        while run._live is not None and len(run._live.lines) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(open_(local_backend).run(run.id).history()) >= 20
    with pytest.raises(artifacts.InvalidValueError):
        store.start_run(project="p", flush_interval=0)
    with pytest.raises(artifacts.InvalidValueError):
        store.start_run(project="p", flush_rows=0)


def test_old_index_is_rebuilt_with_the_new_columns(local_backend: Backend) -> None:
    store = open_(local_backend)
    with store.start_run(project="p", tags=["t"]) as run:
        run.log({"x": 1})
    path = store.index.path
    store.close()
    with sqlite3.connect(path) as db:  # what the code before tags and live history wrote
        db.execute("ALTER TABLE runs DROP COLUMN tags")
        db.execute("ALTER TABLE runs DROP COLUMN chunks")
        db.execute("UPDATE meta SET value='3' WHERE key='format'")
    again = open_(local_backend).run(run.id)
    assert again.tags == ["t"] and again.history() == [{"x": 1, "_step": 0}]


# -- the module-level W&B API ------------------------------------------------------------------------
def test_module_api_mirrors_wandb(local_backend: Backend, tmp_path: Path) -> None:
    assert artifacts.run is None
    with pytest.raises(artifacts.InvalidStateError, match="init"):
        artifacts.log({"x": 1})
    config = artifacts.config  # taken before init, as W&B scripts do
    run = artifacts.init(
        project="p",
        config={"learning_rate": 0.01},
        tags=["w"],
        notes="n",
        url=local_backend.url,
        flush_interval=0.05,
    )
    try:
        assert artifacts.run is run and artifacts.init(project="p") is run  # no reinit
        assert config.learning_rate == 0.01 and config["learning_rate"] == 0.01
        config.update({"epochs": 2})
        artifacts.log({"loss": 1.0}, step=0)
        artifacts.log({"acc": 0.5})
        artifacts.summary["best"] = 0.5
        assert "best" in artifacts.summary and artifacts.run.summary["best"] == 0.5
        data = tmp_path / "data"
        data.mkdir()
        (data / "a.txt").write_text("a")
        v = artifacts.log_artifact(
            artifacts.Artifact("data", type="dataset").add_dir(data), aliases=["x"]
        )
        assert artifacts.use_artifact("data:latest").ref == v.ref
        second = artifacts.init(project="p", url=local_backend.url, reinit=True)
        assert second is not run and artifacts.run is second
    finally:
        artifacts.finish()
    assert artifacts.run is None
    store = open_(local_backend)
    first = store.run(run.id)
    assert first.status == "finished" and first.tags == ["w"] and first.notes == "n"
    assert first.config == {"learning_rate": 0.01, "epochs": 2}
    assert first.history() == [{"loss": 1.0, "acc": 0.5, "_step": 0}]
    assert first.summary["best"] == 0.5 and [o.ref for o in first.outputs()] == [v.ref]
    assert store.run(second.id).status == "finished"


@pytest.mark.parametrize(
    ("ending", "status", "code"),
    [
        ("raise ValueError('boom')", "failed", 1),
        ("raise KeyboardInterrupt", "killed", None),
        ("import sys; sys.exit(3)", "finished", 3),
        ("pass", "finished", 0),
    ],
)
def test_init_scripts_end_with_the_right_status(
    local_backend: Backend, tmp_path: Path, ending: str, status: str, code: int | None
) -> None:
    script = tmp_path / "train.py"
    script.write_text(
        "import artifacts as wandb\n"
        "run = wandb.init(project='p')\n"
        "print(run.id, flush=True)\n"
        "wandb.log({'x': 1})\n" + ending + "\n"
    )
    env = {**os.environ, "ARTIFACTS_STORE": local_backend.url}
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, check=False
    )
    if code is not None:
        assert out.returncode == code, out.stderr  # the script's exit code is unchanged
    else:
        assert out.returncode != 0 and "KeyboardInterrupt" in out.stderr
    run = open_(local_backend).run(out.stdout.split()[0])
    assert run.status == status and run.history() == [{"x": 1, "_step": 0}]


def test_new_default_store_is_announced(tmp_path: Path) -> None:
    code = "import artifacts; artifacts.open_store(); artifacts.open_store()"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("created a new store at") == 1
    assert str(tmp_path / ".artifacts") in out.stderr
    cli = subprocess.run(
        ["artifacts", "put", "x", str(tmp_path / ".artifacts" / "store.json"), "--type", "t"],
        cwd=tmp_path / ".artifacts",
        capture_output=True,
        text=True,
        env=env,
    )
    assert cli.returncode == 0, cli.stderr
    assert "created a new store at" in cli.stderr


def test_wandb_training_script_runs_unchanged(local_backend: Backend, tmp_path: Path) -> None:
    """examples/train_gru_wandb.py is W&B code; only its import line names this library."""
    import ast

    script = Path(__file__).resolve().parent.parent / "examples" / "train_gru_wandb.py"
    tree = ast.parse(script.read_text())
    imports = [
        (a.name, a.asname)
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for a in node.names
        if a.name.startswith("artifacts")
    ]
    assert imports == [("artifacts", "wandb")]
    assert not any(
        isinstance(n, ast.ImportFrom) and "artifacts" in (n.module or "") for n in ast.walk(tree)
    )
    assert not any(isinstance(n, ast.Name) and n.id == "artifacts" for n in ast.walk(tree))
    out = subprocess.run(
        [sys.executable, str(script), "--epochs", "2", "--max-reviews", "300", "--hidden", "8"]
        + ["--embed-dim", "8", "--synthetic"],
        capture_output=True,
        text=True,
        env={**os.environ, "ARTIFACTS_STORE": local_backend.url},
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    store = open_(local_backend)
    run = store.run(out.stdout.split()[-1])
    assert run.status == "finished" and run.job_type == "train"
    assert run.tags == ["gru", "wandb-port"] and run.config["learning_rate"] == 2e-3
    history = run.history()
    assert [h["_step"] for h in history] == [0, 1]
    for h in history:  # train_loss and val_* logged in two calls land on one step
        assert {"train_loss", "val_loss", "val_acc", "gradients/global_norm"} <= set(h)
    assert run.summary["best_val_acc"] == max(h["val_acc"] for h in history)
    assert [v.ref for v in run.inputs()] == ["reviews-wandb:v0"]
    outputs = {v.ref: v for v in run.outputs()}
    assert set(outputs) == {"reviews-wandb:v0", "gru-wandb:v0"}
    assert outputs["gru-wandb:v0"].aliases == ("best",)
    assert [f.path for f in outputs["gru-wandb:v0"].files()] == ["model.pt"]


def test_json_lines_is_as_strict_as_one_parse_per_line() -> None:
    import json

    from hypothesis import given
    from hypothesis import strategies as st

    from artifacts.chunks import json_lines

    assert json_lines(b'{"a":1}\n\n  [1,2] \n"x"\n') == [{"a": 1}, [1, 2], "x"]
    # lines that only parse when joined with their neighbours, or hold two values, are refused
    for bad in ('{"x":"}\n"}\n{"a":1},{"b":2}', '{"a":[1\n2]}', '{"a":1}}', "nope", '{"a":1} 2'):
        with pytest.raises(ValueError):
            json_lines(bad)

    values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
        lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(), kids, max_size=3),
        max_leaves=8,
    )

    @given(st.lists(values, max_size=6))
    def same_as_per_line(rows: list[object]) -> None:
        text = "\n".join(json.dumps(r) for r in rows)
        assert json_lines(text) == [json.loads(line) for line in text.splitlines()]

    same_as_per_line()
