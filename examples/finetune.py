"""Fine-tune ``gru-sentiment:best`` with the embedding frozen, and show what per-tensor storage saves.

    python examples/finetune.py                     # after train_gru.py, same store
    python examples/finetune.py --from gru-sentiment:v3 --epochs 3 --store s3://bucket/prefix

Each epoch logs a checkpoint (model + optimizer + RNG states). The frozen embedding is the same tensor
in every checkpoint, so it is stored once (it already was, by the training run): the store grows by the
tensors that changed, not by whole checkpoint files. The script prints, per checkpoint, its full size
(what ``torch.save`` would write again), the bytes the store actually had to add, and the bytes of the
tensors that changed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import gru_common as g  # noqa: E402
import torch  # noqa: E402

import artifacts  # noqa: E402
from artifacts.torch import restore_model  # noqa: E402
from artifacts.vocab import load_vocabulary  # noqa: E402
from storage import hash_bytes  # noqa: E402


def changed_tensor_bytes(store: artifacts.Store, art: artifacts.Artifact) -> int:
    """Bytes of the tensors of ``art`` that the store does not hold yet (from digests, before upload)."""
    seen: set[str] = set()
    total = 0
    for s in art:
        if "dtype" not in s.meta or s.data is None:
            continue
        digest = hash_bytes(s.data)
        if digest not in seen and not store.blobs.exists(digest):
            total += s.size
        seen.add(digest)
    return total


def stored_bytes(store: artifacts.Store) -> int:
    """Total bytes of all blobs in the store (what it costs on disk or in the bucket)."""
    return sum(b.size for b in store.blobs.iter_blobs())


def _mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB"


def finetune(
    store: artifacts.Store,
    base_ref: str = "gru-sentiment:best",
    *,
    epochs: int = 2,
    lr: float = 5e-4,
    name: str | None = None,
) -> dict[str, Any]:
    base = store.artifact(base_ref)
    train_run, dataset, vocabulary = g.producer_inputs(base)
    cfg = dict(train_run.config)
    name = name or f"{base.name}-finetune"
    config = {
        "base": base.ref,
        "frozen": ["embedding"],
        "epochs": epochs,
        "lr": lr,
        **{
            k: cfg.get(k)
            for k in ("seed", "threads", "batch_size", "eval_batch_size", "max_len", "clip")
        },
    }
    g.set_seed(cfg["seed"], cfg.get("threads", 1))
    totals = {"full": 0, "new": 0, "changed_tensors": 0}
    with store.start_run(project=cfg["project"], job_type="finetune", config=config) as run:
        base = run.use_artifact(base.ref)
        rows, split = g.load_dataset(run.use_artifact(dataset.ref))
        vocab = load_vocabulary(run.use_artifact(vocabulary.ref))
        model = g.build_model(dict(base.metadata["arch"]))
        restore_model(model, base, "model/")
        model.embedding.weight.requires_grad_(False)
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(trainable, lr=lr)
        train_data = g.encode_split(rows, split["train"], vocab, cfg["max_len"])
        val_data = g.encode_split(rows, split["val"], vocab, cfg["max_len"])
        print(
            f"finetune  {run.id}  from {base.ref}, embedding frozen ({_mib(base.size)} checkpoint)"
        )
        print(f"{'checkpoint':<30}{'full size':>12}{'stored':>12}{'changed tensors':>18}")
        for epoch in range(epochs):
            t0 = time.perf_counter()
            ckpt, _, val = g.train_checkpoint(
                run,
                model,
                optimizer,
                train_data,
                val_data,
                cfg,
                name=name,
                epoch=epoch,
                seed=cfg["seed"] + 1,
                pad_index=vocab.pad_index,
                metadata={"arch": dict(base.metadata["arch"]), "base": base.ref},
            )
            changed = changed_tensor_bytes(store, ckpt)
            before = stored_bytes(store)
            version = run.log_artifact(ckpt)
            added = stored_bytes(store) - before  # tensors, JSON entries and the manifest
            totals["full"] += version.size
            totals["new"] += added
            totals["changed_tensors"] += changed
            print(
                f"{version.ref:<30}{_mib(version.size):>12}{_mib(added):>12}{_mib(changed):>18}"
                f"   val_acc {val['acc']:.4f} ({time.perf_counter() - t0:.1f}s)"
            )
        run.summary.update({"bytes_full": totals["full"], "bytes_stored": totals["new"]})
    saved = totals["full"] - totals["new"]
    print(
        f"{epochs} checkpoints: {_mib(totals['full'])} as whole files, {_mib(totals['new'])} stored "
        f"({_mib(saved)} saved, {saved / max(totals['full'], 1):.0%}); stored / changed tensors = "
        f"{totals['new'] / max(totals['changed_tensors'], 1):.3f}"
    )
    return {"run": run.id, **totals}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--from", dest="base", default="gru-sentiment:best", help="checkpoint to start from"
    )
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--name", default=None, help="artifact name (default <base name>-finetune)")
    g.add_store_args(p)
    args = p.parse_args(argv)
    store = g.open_store_from_args(args)
    return finetune(store, args.base, epochs=args.epochs, lr=args.lr, name=args.name)


if __name__ == "__main__":
    main()
