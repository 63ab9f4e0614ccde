"""Reproduce a logged metric from the store alone: walk its lineage, rebuild, re-evaluate, compare.

    python examples/reproduce.py <evaluate run id>       # its test metric
    python examples/reproduce.py gru-sentiment:best      # the test metric of the latest evaluation of
                                                         # that checkpoint, else its logged val metric
    python examples/reproduce.py <id> --store s3://bucket/prefix

From the target it follows the lineage: evaluate run -> checkpoint it consumed -> the train run that
produced the checkpoint -> the dataset and vocabulary that run consumed, and that run's config. It
rebuilds the model from the checkpoint (no pickle), re-evaluates on the same split, prints the logged and
the reproduced numbers side by side, and exits 1 if any differs (exact comparison: same data, same
weights, same deterministic kernels give the same bits).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import gru_common as g  # noqa: E402

import artifacts  # noqa: E402


@dataclass
class Report:
    target: str
    checkpoint: str
    dataset: str
    vocabulary: str
    train_run: str
    split: str
    logged: dict[str, Any]
    reproduced: dict[str, Any] = field(default_factory=dict)

    @property
    def matches(self) -> bool:
        return bool(self.reproduced) and all(
            self.reproduced.get(k) == v for k, v in self.logged.items()
        )

    def table(self) -> str:
        lines = [f"{'metric':<16}{'logged':<24}{'reproduced':<24}"]
        for k, v in self.logged.items():
            r = self.reproduced.get(k)
            lines.append(f"{k:<16}{v!r:<24}{r!r:<24}{'same' if r == v else 'DIFFERENT'}")
        return "\n".join(lines)


def _one(nodes: list[Any], what: str, where: str) -> Any:
    if len(nodes) != 1:
        raise SystemExit(
            f"{where}: expected one {what} in the lineage, found {[n.id for n in nodes]}"
        )
    return nodes[0]


def _inputs(lineage: artifacts.Lineage, run_node: str) -> list[Any]:
    ids = {e.source for e in lineage.edges if e.kind == "consumed" and e.target == run_node}
    return [n for n in lineage.nodes if n.id in ids]


def _producer(lineage: artifacts.Lineage, version_node: str) -> Any:
    """The run that produced a version (a train run first, when several logged the same content)."""
    ids = [e.source for e in lineage.edges if e.kind == "produced" and e.target == version_node]
    runs = [lineage.node(i) for i in dict.fromkeys(ids)]
    if not runs:
        raise SystemExit(f"{version_node} was not produced by a run: its inputs are unknown")
    return ([r for r in runs if r.attrs.get("job_type") == "train"] or runs)[0]


def plan(store: artifacts.Store, target: str) -> Report:
    """Find what to rebuild and the logged numbers to compare with, by walking the lineage."""
    run_id = target[4:] if target.startswith("run/") else None
    if run_id is None and ":" not in target:
        try:
            run_id = store.run(target).id
        except artifacts.NotFoundError:
            run_id = None
    if run_id is not None:
        lineage = store.lineage(f"run/{run_id}", "upstream")
        root = lineage.node(f"run/{run_id}")
        summary = root.attrs["summary"]
        if "test_acc" not in summary:
            raise SystemExit(
                f"run {run_id} logged no test_acc: give an evaluate run or a model ref"
            )
        models = [n for n in _inputs(lineage, root.id) if n.attrs["type"] == "model"]
        ckpt = _one(models, "checkpoint", root.id)
        split = root.attrs["config"].get("split", "test")
        logged = {f"{split}_{k}": summary[f"{split}_{k}"] for k in ("acc", "loss", "correct")}
    else:
        version = store.artifact(target)
        evals = [
            r
            for r in version.consumed_by()
            if r.job_type == "evaluate" and r.status == "finished" and "test_acc" in r.summary
        ]
        if evals:  # the latest evaluation of this checkpoint
            return plan(store, sorted(evals, key=lambda r: r.started_at)[-1].id)
        lineage = store.lineage(version.ref, "upstream")
        ckpt = lineage.node(version.ref)
        meta = version.metadata
        if "val_acc" not in meta:
            raise SystemExit(f"{version.ref} records no val_acc and no evaluation used it")
        split = "val"
        logged = {f"val_{k}": meta[f"val_{k}"] for k in ("acc", "loss", "correct")}
    train = _producer(lineage, ckpt.id)
    inputs = _inputs(lineage, train.id)
    dataset = _one([n for n in inputs if n.attrs["type"] == "dataset"], "dataset", train.id)
    vocab = _one([n for n in inputs if n.attrs["type"] == "vocabulary"], "vocabulary", train.id)
    return Report(target, ckpt.id, dataset.id, vocab.id, train.attrs["run_id"], split, logged)


def reproduce(store: artifacts.Store, target: str, *, quiet: bool = False) -> Report:
    report = plan(store, target)
    config = store.run(report.train_run).config
    g.set_seed(config["seed"], config.get("threads", 1))
    res = g.evaluate_checkpoint(
        store.artifact(report.checkpoint),
        store.artifact(report.dataset),
        store.artifact(report.vocabulary),
        split=report.split,
        max_len=config["max_len"],
        batch_size=config["eval_batch_size"],
    )
    report.reproduced = {f"{report.split}_{k}": res[k] for k in ("acc", "loss", "correct")}
    if not quiet:
        print(
            f"reproducing {target}: checkpoint {report.checkpoint}, trained by run "
            f"{report.train_run} on {report.dataset} with {report.vocabulary}, {report.split} split"
        )
        print(f"config: {json.dumps(config, sort_keys=True)}")
        print(report.table())
        print("reproduced exactly" if report.matches else "NOT REPRODUCED: the numbers differ")
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "target", help="an evaluate run id (or run/<id>), or a model ref such as name:best"
    )
    g.add_store_args(p)
    args = p.parse_args(argv)
    store = g.open_store_from_args(args)
    return 0 if reproduce(store, args.target).matches else 1


if __name__ == "__main__":
    sys.exit(main())
