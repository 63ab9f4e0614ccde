"""A small store shaped like the GRU example, with hostile content, for the UI tests (route and browser).

prepare -> dataset -> vocab -> vocabulary -> train (x2, group "baseline") -> checkpoints -> evaluate,
plus a failed run and one still running. The prepare run's config holds a script tag and the dataset
holds a file whose name is an HTML injection: every page must show them as text.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import artifacts

XSS_CONFIG = "<script>alert(1)</script>"
XSS_FILE = '"><img src=x onerror=alert(document.domain)>.html'
TENSORS = {"embedding.weight": (16, 4), "gru.weight": (12, 4), "fc.weight": (2, 4), "fc.bias": (2,)}


@dataclass
class Demo:
    store: artifacts.Store
    runs: dict[str, str] = field(default_factory=dict)  # role -> run id
    live: Any = None  # the running Run, kept active


def _checkpoint(epoch: int, frozen: np.random.Generator, seed: int) -> artifacts.Artifact:
    art = artifacts.Artifact("gru", type="model", metadata={"epoch": epoch})
    rng = np.random.default_rng(seed)
    for name, shape in TENSORS.items():
        source = frozen if name == "embedding.weight" else rng
        data = np.ascontiguousarray(source.standard_normal(shape, dtype=np.float32))
        art.add_bytes(
            f"model/{name}", data.tobytes(), meta={"dtype": "float32", "shape": list(shape)}
        )
    art.add_json("checkpoint.json", {"epoch": epoch})
    return art


def build(url: str, *, steps: int = 40) -> Demo:
    store = artifacts.open_store(url)
    demo = Demo(store)
    with store.start_run(
        project="gru-sentiment", job_type="prepare", config={"source": XSS_CONFIG, "rows": 3}
    ) as run:
        ds = artifacts.Artifact("reviews", type="dataset", metadata={"note": "<b>bold?</b>"})
        ds.add_bytes("train.csv", b"text,label\ngreat film,1\ndull,0\n<i>x</i>,1\n")
        ds.add_bytes("README.txt", b"line one\n<script>alert('preview')</script>\n")
        ds.add_bytes("split.json", json.dumps({"train": [0, 1], "val": [2]}).encode())
        ds.add_bytes(XSS_FILE, b"<html><script>alert(2)</script></html>")
        ds.add_bytes("blob.bin", bytes(range(256)))
        dataset = run.log_artifact(ds)
        run.log({"rows": 3})
    demo.runs["prepare"] = run.id
    with store.start_run(project="gru-sentiment", job_type="vocab", config={"min_freq": 1}) as run:
        run.use_artifact(dataset.ref)
        voc = artifacts.Artifact("vocab", type="vocabulary")
        voc.add_json("vocab.json", {"dull": 2, "film": 1, "great": 0})
        vocab = run.log_artifact(voc)
        run.log({"vocab_size": 3})
    demo.runs["vocab"] = run.id
    frozen = np.random.default_rng(7)
    frozen_state = frozen.bit_generator.state
    best_ref = None
    for k, lr in enumerate((1e-3, 3e-3)):
        with store.start_run(
            project="gru-sentiment",
            job_type="train",
            group="baseline",
            config={"lr": lr, "hidden": 8, "dataset": dataset.ref},
        ) as run:
            run.use_artifact(dataset.ref)
            run.use_artifact(vocab.ref)
            best = -1.0
            for step in range(steps):
                acc = 0.5 + 0.4 * (1 - math.exp(-step / (8 + 4 * k)))
                run.log(
                    {"val_acc": acc, "train_loss": 1 / (1 + step), "val_loss": 0.9 - acc / 2},
                    step=step,
                )
                if k == 0 and step % max(1, steps // 5) == 0:
                    frozen.bit_generator.state = frozen_state
                    aliases = ["best"] if acc > best else []
                    best = max(best, acc)
                    v = run.log_artifact(_checkpoint(step, frozen, step), aliases=aliases)
                    best_ref = v.ref if aliases else best_ref
        demo.runs[f"train{k}"] = run.id
    with store.start_run(
        project="gru-sentiment", job_type="evaluate", config={"split": "test"}
    ) as run:
        run.use_artifact("gru:best")
        run.log({"test_acc": 0.81})
    demo.runs["evaluate"] = run.id
    try:
        with store.start_run(project="other", job_type="train", config={"lr": 0.1}) as run:
            run.log({"val_acc": 0.1}, step=0)
            raise RuntimeError("diverged")
    except RuntimeError:
        pass
    demo.runs["failed"] = run.id
    live = store.start_run(project="other", job_type="train", config={"lr": 0.01})
    live.log({"val_acc": 0.2}, step=0)
    demo.live = live
    demo.runs["live"] = live.id
    assert best_ref is not None
    return demo
