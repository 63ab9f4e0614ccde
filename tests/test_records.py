"""One description of a run and of a version: ``to_dict`` is what the CLI, lineage and the UI show."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

import artifacts
from artifacts.cli import main


def _cli_json(url: str, *args: str) -> object:
    result = CliRunner().invoke(main, ["--store", url, *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_cli_lineage_and_ui_describe_with_to_dict(tmp_path: Path) -> None:
    url = str(tmp_path / "store")
    store = artifacts.open_store(url, user="ada")
    data = artifacts.Artifact("corpus", type="dataset", metadata={"rows": 3})
    data.add_json("rows.json", [1, 2, 3])
    with store.start_run(project="p", name="prep", config={"seed": 1}, notes="first") as run:
        run.log({"loss": 0.5})
        v = run.log_artifact(data, aliases=["best"])
    run = store.run(run.id)
    v = store.artifact("corpus:best")

    d = v.to_dict()
    assert d["ref"] == "corpus:v0" and d["aliases"] == ["best"] and d["metadata"] == {"rows": 3}
    assert json.loads(v.to_json()) == d
    r = run.to_dict()
    assert r["status"] == "finished" and r["notes"] == "first" and r["summary"] == {"loss": 0.5}
    assert json.loads(run.to_json()) == r

    shown = _cli_json(url, "show", "corpus:best")
    assert isinstance(shown, dict)
    assert {k: shown[k] for k in d} == d and shown["latest"] is True
    listed = _cli_json(url, "run", run.id)
    assert isinstance(listed, dict)
    assert {k: listed[k] for k in r} == r

    nodes = {n.id: n.attrs for n in store.lineage("corpus:v0", direction="upstream").nodes}
    assert {k: v for k, v in nodes["corpus:v0"].items() if k != "deleted"} == d
    run_attrs = nodes[f"run/{run.id}"]
    assert run_attrs["run_id"] == run.id
    assert {k: run_attrs[k] for k in r if k != "id"} == {k: r[k] for k in r if k != "id"}

    from artifacts.ui import views

    assert views.version_view(store, v)["v"] == d
    store.close()
