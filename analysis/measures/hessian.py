"""Whole-network curvature for an analysis: each layer's top eigenvalue and the spectral density.

The curvature core lives in pof.curvature, because a training job records curvature too: the
operators (`HessianOperator`, `BlockOperator`, `layer_groups`), Lanczos (`top_eigenvalues`), the
Hutchinson trace (`hutchinson_trace`) and the last layer's closed form. This module re-exports them
as the analysis' one entry point and adds:

- `per_layer_top_eigenvalues`: Lanczos on each layer's diagonal block;
- `spectral_density`: stochastic Lanczos quadrature, written here because PyHessian's `density()`
  calls `torch.eig`, which PyTorch removed.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from analysis.measures.results import Density
from pof.curvature.lanczos import TopEigen, lanczos, top_eigenvalues, tridiag_eig
from pof.curvature.operators import (
    BlockOperator,
    CurvatureOperator,
    HessianOperator,
    kind_of,
    layer_groups,
    rademacher,
)
from pof.curvature.trace import LayerCurvature, TraceResult, hutchinson_trace
from pof.progress import Progress, ShouldStop

__all__ = [
    "BlockOperator",
    "CurvatureOperator",
    "Density",
    "HessianOperator",
    "LayerCurvature",
    "TopEigen",
    "TraceResult",
    "hutchinson_trace",
    "kind_of",
    "lanczos",
    "layer_groups",
    "per_layer_top_eigenvalues",
    "rademacher",
    "spectral_density",
    "top_eigenvalues",
]


def per_layer_top_eigenvalues(
    op: HessianOperator,
    layers: list[LayerCurvature],
    tol: float = 1e-3,
    max_steps: int = 60,
    seed: int = 0,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
) -> list[LayerCurvature]:
    """The layers, each with the top eigenvalue of its diagonal Hessian block (Lanczos)."""
    groups = {g: idx for g, _, idx in layer_groups(op.model, op.names)}
    out = []
    for i, layer in enumerate(layers):
        block = BlockOperator(op, groups[layer.name])
        res = top_eigenvalues(
            block, 1, tol=tol, max_steps=max_steps, seed=seed, should_stop=should_stop
        )
        out.append(
            dataclasses.replace(
                layer, top_eigenvalue=res.eigenvalues[0], top_residual=res.residuals[0]
            )
        )
        if progress:
            progress(i + 1, len(layers), f"layer {layer.name}")
    return out


# --- spectral density -------------------------------------------------------------------------


def spectral_density(
    op: CurvatureOperator,
    steps: int = 80,
    runs: int = 1,
    seed: int = 0,
    grid_points: int = 1000,
    sigma_ratio: float = 1e-3,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
) -> Density:
    """Stochastic Lanczos quadrature (Ghorbani et al. 2019): for Rademacher starts v, the
    eigenvalues of the m-step Lanczos tridiagonal and the squared first components of its
    eigenvectors are the nodes and weights of a quadrature for v^T f(H) v / |v|^2; averaging over
    runs estimates the density."""
    gen = torch.Generator().manual_seed(seed)
    steps = min(steps, op.dim)
    all_nodes, all_weights = [], []
    for r in range(runs):
        start = rademacher(op.dim, gen, op.params[0])
        prog = (
            (lambda i, n, msg, r=r: progress(r * steps + i, runs * steps, msg))
            if progress
            else None
        )
        alphas, betas, _ = lanczos(op, start, steps, should_stop, prog, label="density")
        theta, S = tridiag_eig(alphas, betas)
        all_nodes.append(theta.tolist())
        all_weights.append((S[0, :] ** 2).tolist())
    lo = min(min(n) for n in all_nodes)
    hi = max(max(n) for n in all_nodes)
    pad = 0.01 * (hi - lo + 1e-12)
    grid = np.linspace(lo - pad, hi + pad, grid_points)
    sigma = sigma_ratio * (hi - lo + 1e-12)
    dens = np.zeros_like(grid)
    for nodes, weights in zip(all_nodes, all_weights, strict=True):
        for t, w in zip(nodes, weights, strict=True):
            dens += (
                w * np.exp(-((grid - t) ** 2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))
            )
    dens /= runs
    dens /= np.trapezoid(dens, grid)  # the tails cut by the grid, put back so it integrates to 1
    return Density(
        all_nodes, all_weights, grid.tolist(), dens.tolist(), float(sigma), steps, op.n_samples
    )
