"""Does PoF do what the paper says? Every post-training method on the same checkpoint, same budget.

Pre-trains a model (or takes --checkpoint), post-trains it with every --method for the same epochs
and learning rate over several seeds, and prints one table: test error and loss (mean +- std over
seeds), the exact last-layer Hessian's top eigenvalue and trace on the whole training set (the
closed form of docs/method.md), and wall time. Results also go to OUT/results.json.

    python benchmarks/compare_methods.py --dataset digits --model cnn-small --pretrain-epochs 30 \\
        --epochs 10 --seeds 0 1 2 --out /tmp/compare-digits
    python benchmarks/compare_methods.py --dataset imagefolder:/tmp/cifar10-jpeg \\
        --model cnn-small --pretrain-epochs 20 --epochs 2 --seeds 0 1 2 --out /tmp/compare-cifar
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from pof.config import METHODS, PostTrainConfig, PretrainConfig
from pof.curvature.lastlayer import features_and_probs, last_layer_hessian
from pof.data.batches import Batches
from pof.data.load import load_dataset
from pof.models.loading import load_checkpoint
from pof.training.evaluation import evaluate
from pof.training.posttrain import post_train
from pof.training.pretrain import pretrain


def measure(path, dataset) -> dict:
    model, _ = load_checkpoint(path, dataset=dataset)
    test = Batches(dataset.x_test, dataset.y_test, dataset.mean, dataset.std, 1000, shuffle=False)
    train = Batches(
        dataset.x_train, dataset.y_train, dataset.mean, dataset.std, 1000, shuffle=False
    )
    ev = evaluate(model, test, dataset.num_classes)
    h = last_layer_hessian(*features_and_probs(model, train), top_k=1)
    return {
        "test_error": 1 - ev["acc"],
        "test_loss": ev["loss"],
        "lambda_max": h.top_eigenvalues[0],
        "trace": h.trace,
    }


def fmt(values, scale=1.0, digits=4) -> str:
    values = [v * scale for v in values]
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--model", default="cnn-small")
    ap.add_argument("--checkpoint", help="post-train this checkpoint instead of pre-training one")
    ap.add_argument("--pretrain-epochs", type=int, default=30)
    ap.add_argument("--pretrain-lr", type=float, default=0.05)
    ap.add_argument("--epochs", type=int, default=10, help="post-training epochs")
    ap.add_argument(
        "--lr",
        type=float,
        default=None,
        help="post-training rate (default: the schedule, continued)",
    )
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = Path(args.out)
    dataset = load_dataset(args.dataset, args.data_root)
    print(f"{dataset.describe()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    ckpt = (
        Path(args.checkpoint)
        if args.checkpoint
        else out / "pretrain" / "checkpoints" / "final.safetensors"
    )
    if not ckpt.exists():
        t0 = time.time()
        pretrain(
            PretrainConfig(
                model=args.model,
                dataset=args.dataset,
                data_root=args.data_root,
                epochs=args.pretrain_epochs,
                lr=args.pretrain_lr,
            ),
            out / "pretrain",
            dataset=dataset,
        )
        took = time.time() - t0
        print(f"pre-trained {args.model} for {args.pretrain_epochs} epochs in {took:.0f} s")
    results = {"pretrained": [measure(ckpt, dataset)]}
    for method in args.methods:
        for seed in args.seeds:
            run_dir = out / f"{method}-seed{seed}"
            cfg = PostTrainConfig(
                checkpoint=str(ckpt),
                dataset=args.dataset,
                data_root=args.data_root,
                method=method,
                epochs=args.epochs,
                lr=args.lr,
                batch_size=args.batch_size,
                seed=seed,
            )
            t0 = time.time()
            run = post_train(cfg, run_dir, overwrite=True)
            row = measure(run.checkpoint("final"), dataset)
            row["time_s"] = time.time() - t0
            row["lr"] = run.config()["lr"]
            results.setdefault(method, []).append(row)
            print(
                f"{method:<17} seed {seed}: test error {row['test_error']:.4f}, "
                f"loss {row['test_loss']:.4f}, lambda_max {row['lambda_max']:.4f}, "
                f"trace {row['trace']:.4f}, {row['time_s']:.0f} s",
                flush=True,
            )
    (out / "results.json").write_text(json.dumps(results, indent=1))
    lr = results[args.methods[0]][0]["lr"]
    print(
        f"\n{args.model} on {dataset.name}; post-training {args.epochs} epochs at lr {lr:g}, "
        f"seeds {args.seeds}; last-layer Hessian exact on all {len(dataset.x_train)} training "
        f"images\n"
    )
    print("| method | test error % | test loss | last-layer λ_max | last-layer trace | time s |")
    print("|---|---|---|---|---|---|")
    for method, rows in results.items():
        col = lambda k, rows=rows, **kw: fmt([r[k] for r in rows], **kw)
        t = fmt([r["time_s"] for r in rows], digits=0) if "time_s" in rows[0] else "-"
        print(
            f"| {method} | {col('test_error', scale=100, digits=2)} | {col('test_loss')} | "
            f"{col('lambda_max')} | {col('trace')} | {t} |"
        )


if __name__ == "__main__":
    main()
