"""The Hessian's trace by Hutchinson's estimator with its standard error, every layer's at once.

A fixed number of Rademacher probes (PyHessian's own stopping rule stops too early); each probe's
v * Hv summed block by block gives every layer's trace from the same products.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..progress import Progress, ShouldStop, check_stop
from .operators import HessianOperator, layer_groups, rademacher
from .results import LayerCurvature, TraceResult


def hutchinson_trace(
    op: HessianOperator,
    n_probes: int = 100,
    seed: int = 0,
    per_layer: bool = True,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
) -> TraceResult:
    """tr H ~ mean of v^T H v over Rademacher probes v, with its standard error; with per_layer,
    the same probes give each layer's block trace as the sum over the block of v * Hv."""
    gen = torch.Generator().manual_seed(seed)
    groups = layer_groups(op.model, op.names)
    totals, per = [], {g: [] for g, _, _ in groups}
    for i in range(n_probes):
        check_stop(should_stop)
        v = op.unflatten(rademacher(op.dim, gen, op.params[0]))
        hv = op.hvp(v)
        contrib = [float((a * b).sum()) for a, b in zip(v, hv, strict=True)]
        totals.append(sum(contrib))
        for g, _, idx in groups:
            per[g].append(sum(contrib[j] for j in idx))
        if progress:
            progress(i + 1, n_probes, "trace")

    def mean_se(xs):
        a = np.array(xs)
        return float(a.mean()), float(a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else float(
            "nan"
        )

    t, se = mean_se(totals)
    layers = []
    if per_layer:
        for g, kind, idx in groups:
            n = sum(op.params[j].numel() for j in idx)
            lt, lse = mean_se(per[g])
            layers.append(LayerCurvature(g, kind, n, lt, lse, lt / n))
    return TraceResult(t, se, n_probes, op.n_samples, layers)
