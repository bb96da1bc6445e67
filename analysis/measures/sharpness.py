"""Sharpness as a loss increase: worst case in an L2 ball (SAM-style, plain or adaptive) and
average case under Gaussian weight noise. Evaluated in eval mode on fixed tensors; the model's
weights are restored exactly afterwards."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from analysis.measures.landscape import loss_and_accuracy
from analysis.measures.results import Sharpness
from pof.progress import Progress, ShouldStop, check_stop


def _loss_with_grad(model, params, x, y, batch_size):
    """Mean loss over (x, y) and its gradient, accumulated over batches (default 1000: a backward
    pass keeps every activation)."""
    batch_size = batch_size or 1000
    for p in params:
        p.grad = None
    total = 0.0
    for i in range(0, len(x), batch_size):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]
        loss = F.cross_entropy(model(xb), yb, reduction="sum") / len(x)
        loss.backward()
        total += loss.item()
    return total, [
        p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in params
    ]


def worst_case_sharpness(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    rho: float = 0.05,
    steps: int = 5,
    adaptive: bool = False,
    eval_set: str = "",
    batch_size: int | None = None,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
) -> Sharpness:
    """max over |e| <= rho of L(w + e) - L(w), by projected gradient ascent: starts at SAM's
    first-order point rho g/|g| and takes `steps` ascent steps of size rho/2, projecting back onto
    the ball. Adaptive (ASAM): the ball is {e = |w| * u : |u| <= rho}, ascent in u."""
    params = [p for p in model.parameters() if p.requires_grad]
    origin = [p.detach().clone() for p in params]
    scale = [o.abs() if adaptive else torch.ones_like(o) for o in origin]

    def norm(ts):
        return math.sqrt(sum(float((t**2).sum()) for t in ts)) or 1.0

    was = model.training
    model.eval()
    try:
        base, g = _loss_with_grad(model, params, x, y, batch_size)
        best, u = base, [torch.zeros_like(o) for o in origin]
        for k in range(steps + 1):
            check_stop(should_stop)
            gu = [
                s * gi for s, gi in zip(scale, g, strict=True)
            ]  # the gradient with respect to u (w = w0 + scale * u)
            step = rho if k == 0 else rho / 2  # the first step lands on SAM's point rho g / |g|
            gn = norm(gu)
            u = [t + step * q / gn for t, q in zip(u, gu, strict=True)]
            un = norm(u)
            if un > rho:  # project back onto the ball
                u = [t * (rho / un) for t in u]
            with torch.no_grad():
                for p, o, s, t in zip(params, origin, scale, u, strict=True):
                    p.copy_(o + s * t)
            loss, g = _loss_with_grad(model, params, x, y, batch_size)
            best = max(best, loss)
            if progress:
                progress(k + 1, steps + 1, "worst case")
    finally:
        with torch.no_grad():
            for p, o in zip(params, origin, strict=True):
                p.copy_(o)
                p.grad = None
        model.train(was)
    return Sharpness(
        "adaptive worst-case" if adaptive else "worst-case",
        rho,
        base,
        best - base,
        None,
        None,
        steps,
        eval_set,
    )


@torch.no_grad()
def average_case_sharpness(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    sigma: float = 0.01,
    samples: int = 20,
    seed: int = 0,
    eval_set: str = "",
    batch_size: int | None = None,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
) -> Sharpness:
    """E over e ~ N(0, sigma^2 I) of L(w + e) - L(w), with its standard error and the largest
    sample."""
    params = [p for p in model.parameters() if p.requires_grad]
    origin = [p.detach().clone() for p in params]
    gen = torch.Generator().manual_seed(seed)
    was = model.training
    model.eval()
    try:
        base, _ = loss_and_accuracy(model, x, y, batch_size)
        incs = []
        for _ in range(samples):
            check_stop(should_stop)
            for p, o in zip(params, origin, strict=True):
                p.copy_(o + sigma * torch.randn(o.shape, generator=gen).to(o))
            incs.append(loss_and_accuracy(model, x, y, batch_size)[0] - base)
            if progress:
                progress(len(incs), samples, "average case")
    finally:
        for p, o in zip(params, origin, strict=True):
            p.copy_(o)
        model.train(was)
    t = torch.tensor(incs, dtype=torch.float64)
    se = float(t.std() / math.sqrt(len(t))) if len(t) > 1 else None
    return Sharpness(
        "average-case", sigma, base, float(t.mean()), se, float(t.max()), samples, eval_set
    )
