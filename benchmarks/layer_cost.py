"""What the per-layer report (`python -m analysis layers`) costs, measured side by side in one run.

For the bundled digits cnn-small and a freshly initialized resnet20 (random 32x32 inputs: no
dataset can be downloaded here):

1. the report with its default options, its Hessian-vector products and seconds by purpose, against
   one whole-network top eigenvalue (same operator, same data, same tolerance) computed alone;
2. that no block's number is computed twice: the report's one Hutchinson pass gives every block's
   trace, against a pass per block with its own probes (probes zero outside the block), with the
   products of each counted where the operator makes them.

    python benchmarks/layer_cost.py [--samples 1000] [--resnet-samples 128] [--separate-probes 20 5]
                                    [--models cnn-small resnet20]

Seconds depend on what else the 2 cores run (the load average is printed before each model);
products do not.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from analysis.measures.hessian import (
    BlockOperator,
    HessianOperator,
    hutchinson_trace,
    layer_groups,
    rademacher,
    top_eigenvalues,
)
from analysis.measures.layers import MAX_STEPS, PROBES, TOL, layer_report

CALLS = {"n": 0}
_hvp = HessianOperator.hvp


def _counted_hvp(self, v):
    """Every product the operator makes, counted here, independently of the report's own
    bookkeeping."""
    CALLS["n"] += 1
    return _hvp(self, v)


HessianOperator.hvp = _counted_hvp


def measure(fn):
    CALLS["n"] = 0
    t0 = time.perf_counter()
    out = fn()
    return out, CALLS["n"], time.perf_counter() - t0


def digits_cnn(samples: int):
    from analysis.reports import EvalData

    data = EvalData(
        str(Path(__file__).resolve().parents[1] / "assets" / "digits-cnn-small-sgd.safetensors"),
        "digits",
        "train",
        samples,
    )
    return data.model, data.batches(1000), "classifier", f"digits train, {len(data.y)} images"


def random_resnet20(samples: int):
    from pof.models.networks import build_model

    torch.manual_seed(0)
    model = build_model("resnet20", (3, 32, 32), 10).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(samples, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (samples,), generator=g)
    return (
        model,
        [(x, y)],
        "classifier",
        f"{samples} random 32x32 inputs, random labels, at initialization",
    )


def whole_top(model, batches):
    op = HessianOperator(model, batches)
    try:
        return top_eigenvalues(op, 1, tol=TOL, max_steps=MAX_STEPS)
    finally:
        op.close()


def separate_block_traces(model, batches, probes: int):
    """Each block's trace from probes of its own: Rademacher on the block, zero elsewhere."""
    op = HessianOperator(model, batches)
    try:
        out = {}
        for name, _, idx in layer_groups(model, op.names):
            block, gen = BlockOperator(op, idx), torch.Generator().manual_seed(0)
            samples = []
            for _ in range(probes):
                v = rademacher(block.dim, gen, block.params[0])
                samples.append(float(v @ block.matvec(v)))
            out[name] = (
                float(np.mean(samples)),
                float(np.std(samples, ddof=1) / math.sqrt(probes)),
            )
        return out
    finally:
        op.close()


def shared_pass(model, batches, probes: int):
    op = HessianOperator(model, batches)
    try:
        return hutchinson_trace(op, probes, per_layer=True)
    finally:
        op.close()


def warm_up(model, batches):
    """One uncounted product first, so allocator and thread-pool start-up are charged to neither
    side."""
    op = HessianOperator(model, batches)
    op.hvp([torch.zeros_like(p) for p in op.params])
    op.close()


def bench(title, model, batches, classifier, data, separate_probes):
    print(
        f"\n(load average before {title.split(',')[0]}: {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} cores)"
    )
    warm_up(model, batches)
    top, top_n, top_s = measure(lambda: whole_top(model, batches))
    report, rep_n, rep_s = measure(lambda: layer_report(model, batches, classifier=classifier))
    h, s = report.hvp, report.seconds
    blocks = len(report.rows)
    print(f"\n### {title}: {report.whole.parameters} parameters, {blocks} blocks; {data}\n")
    print(
        f"Defaults: {PROBES} probes, tol {TOL:g}, at most {MAX_STEPS} Lanczos steps per "
        "eigenvalue; "
        f"{rep_s / rep_n * 1000:.0f} ms per product in the report.\n"
    )
    print(
        "| | Hessian-vector products | seconds | ms / product | products / one top eigenvalue | "
        "seconds / one top eigenvalue |"
    )
    print("|---|---|---|---|---|---|")

    def line(what, n, sec):
        print(
            f"| {what} | {n} | {sec:.1f} | {1000 * sec / n:.0f} | {n / top_n:.1f} | "
            f"{sec / top_s:.1f} |"
        )

    line(
        f"whole-network top eigenvalue alone ({top.iterations} Lanczos steps + 1 residual, λ = "
        f"{top.eigenvalues[0]:.4g})",
        top_n,
        top_s,
    )
    line(
        f"report: one trace pass, every block and the whole ({report.n_probes} probes)",
        h.trace,
        s["trace"],
    )
    steps = [r.top_steps for r in report.rows]
    line(
        f"report: {blocks} block top eigenvalues ({min(steps)}-{max(steps)} steps each + 1 "
        "residual)",
        h.blocks,
        s["blocks"],
    )
    line(
        f"report: whole-network top eigenvalue (λ = {report.whole.top_eigenvalue:.4g})",
        h.whole_top,
        s["whole_top"],
    )
    line("**report, total**", rep_n, rep_s)
    assert rep_n == h.total == h.trace + h.blocks + h.whole_top, (rep_n, h)
    unconverged = [r.name for r in report.rows if not r.top_converged]
    print(
        f"\nCounted at the operator: {rep_n} products = {h.trace} + {h.blocks} + {h.whole_top} "
        "(the report's own "
        f"count: {h.total}); blocks not converged: {', '.join(unconverged) or 'none'}."
    )

    shared, sh_n, sh_s = measure(lambda: shared_pass(model, batches, separate_probes))
    sep, sep_n, sep_s = measure(lambda: separate_block_traces(model, batches, separate_probes))
    agree = sum(
        abs(layer.trace - sep[layer.name][0])
        <= 3 * math.hypot(layer.trace_stderr, sep[layer.name][1])
        for layer in shared.layers
    )
    print(f"\nEvery block's trace, {separate_probes} probes per estimate:\n")
    print("| | Hessian-vector products | seconds | traces it gives |")
    print("|---|---|---|---|")
    print(
        f"| one shared pass (what the report does) | {sh_n} | {sh_s:.1f} | {blocks} blocks + the "
        "whole network |"
    )
    print(f"| a pass per block, probes of its own | {sep_n} | {sep_s:.1f} | {blocks} blocks |")
    print(f"| separate / shared | {sep_n / sh_n:.1f} | {sep_s / sh_s:.1f} | |")
    print(
        f"\nThe two estimates agree within 3 combined standard errors for {agree} of {blocks} "
        "blocks."
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--samples", type=int, default=1000, help="digits training images (the CLI's default)"
    )
    ap.add_argument("--resnet-samples", type=int, default=128)
    ap.add_argument(
        "--separate-probes",
        type=int,
        nargs=2,
        default=[20, 5],
        metavar=("CNN", "RESNET"),
        help="probes per estimate in the shared-vs-separate trace comparison",
    )
    ap.add_argument(
        "--models", nargs="+", choices=["cnn-small", "resnet20"], default=["cnn-small", "resnet20"]
    )
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if "cnn-small" in args.models:
        bench(
            "cnn-small, digits (assets/digits-cnn-small-sgd.safetensors)",
            *digits_cnn(args.samples),
            args.separate_probes[0],
        )
    if "resnet20" in args.models:
        bench("resnet20, fresh", *random_resnet20(args.resnet_samples), args.separate_probes[1])


if __name__ == "__main__":
    main()
