"""The GRU sentiment classifier, trained by a script written for Weights & Biases.

    python examples/train_gru_wandb.py                 # a small config, under a minute on one core
    python examples/train_gru_wandb.py --epochs 1 --max-reviews 300 --synthetic

The code below uses W&B's API only (``wandb.init``, ``wandb.config``, ``wandb.log``, ``wandb.run.summary``,
``wandb.Artifact``, ``wandb.log_artifact``, ``run.use_artifact(...).download()``, ``wandb.watch``,
``wandb.finish``). Its one change from the W&B original is the import line: with ``import wandb`` it
runs on W&B, with ``import artifacts as wandb`` on a store (``$ARTIFACTS_STORE``, else ./.artifacts).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gru_common as g  # noqa: E402
import torch  # noqa: E402

import artifacts as wandb  # noqa: E402


class Vocab:
    """Token ids by frequency in the training split; 0 is padding, 1 unknown."""

    pad_index, unk_index = 0, 1

    def __init__(self, texts: list[str], min_freq: int) -> None:
        counts = Counter(t for text in texts for t in g.tokenize(text))
        kept = sorted(
            (t for t, n in counts.items() if n >= min_freq), key=lambda t: (-counts[t], t)
        )
        self.ids = {t: i + 2 for i, t in enumerate(kept)}

    def __len__(self) -> int:
        return len(self.ids) + 2

    def encode(self, tokens: list[str]) -> list[int]:
        return [self.ids.get(t, self.unk_index) for t in tokens]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--learning-rate", type=float, default=2e-3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--embed-dim", type=int, default=32)
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--max-len", type=int, default=50)
    p.add_argument("--max-reviews", type=int, default=1500)
    p.add_argument("--min-freq", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--synthetic", action="store_true", help="generated data instead of the corpus")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    run = wandb.init(
        project="gru-sentiment-wandb",
        config=args,
        job_type="train",
        tags=["gru", "wandb-port"],
        notes="the W&B version of examples/train_gru.py",
    )
    config = wandb.config
    g.set_seed(config.seed)

    # the data, logged as a dataset artifact, then used back through the artifact (as W&B users do)
    corpus = None if config.synthetic else g.corpus_path()
    raw = corpus.read_bytes() if corpus is not None else g.synthetic_corpus(seed=config.seed)
    split = g.make_split(g.read_corpus(raw), max_reviews=config.max_reviews)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "reviews.csv.bz2").write_bytes(raw)
        (Path(tmp) / "split.json").write_text(json.dumps(split))
        data = wandb.Artifact(
            "reviews-wandb", type="dataset", metadata={"synthetic": corpus is None}
        )
        data.add_dir(tmp)
        wandb.log_artifact(data)
    data_dir = Path(run.use_artifact("reviews-wandb:latest").download())
    rows = g.read_corpus((data_dir / "reviews.csv.bz2").read_bytes())
    split = json.loads((data_dir / "split.json").read_text())

    vocab = Vocab([rows[i]["text"] for i in split["train"]], config.min_freq)
    train = g.encode_split(rows, split["train"], vocab, config.max_len)
    val = g.encode_split(rows, split["val"], vocab, config.max_len)
    model = g.GRUClassifier(
        len(vocab), config.embed_dim, config.hidden, pad_index=0, dropout=config.dropout
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    wandb.watch(model, log_freq=1)

    best = -1.0
    with tempfile.TemporaryDirectory() as out:
        for epoch in range(config.epochs):
            loss = g.train_epoch(
                model,
                train,
                optimizer,
                batch_size=config.batch_size,
                pad_index=0,
                seed=config.seed,
                epoch=epoch,
            )
            wandb.log({"train_loss": loss}, step=epoch)
            metrics = g.evaluate(model, val, batch_size=256, pad_index=0)
            wandb.log({"val_loss": metrics["loss"], "val_acc": metrics["acc"]})  # same step
            print(f"epoch {epoch}  train_loss {loss:.4f}  val_acc {metrics['acc']:.4f}")
            if metrics["acc"] > best:
                best = metrics["acc"]
                wandb.run.summary["best_val_acc"] = best
                wandb.run.summary["best_epoch"] = epoch
                torch.save(model.state_dict(), Path(out) / "model.pt")
        model_art = wandb.Artifact(
            "gru-wandb", type="model", metadata={"vocab_size": len(vocab), "val_acc": best}
        )
        model_art.add_dir(out)
        wandb.log_artifact(model_art, aliases=["best"])
    run_id = run.id
    wandb.finish()
    return run_id


if __name__ == "__main__":
    print(main())
