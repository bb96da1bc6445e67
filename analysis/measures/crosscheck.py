"""PyHessian as an independent cross-check of this project's own Hessian estimates.

`pyhessian_estimates` runs PyHessian's own `hessian(...).eigenvalues()` (power iteration) and
`.trace()` (Hutchinson) on the same model and batches, with the same seed for its random starts and
probes, and `cross_check` sets them beside this project's Lanczos eigenvalues and Hutchinson trace
with their agreement. PyHessian (PyPI 0.1) has known problems, handled here where it is called:

- its constructor and products accumulate into `.grad` (stale gradients would add to the
  Hessian's gradient graph), so gradients are cleared before and after;
- it puts the model in eval mode and leaves it there: the mode is restored;
- its trace stops as soon as the running mean changes by less than `tol` (a few probes, or at once
  for a negative mean): every probe is run (tol = -inf, maxIter = probes);
- its top-k eigenvalues can come back out of order: they are sorted;
- its `density()` calls `torch.eig`, removed from PyTorch: it is never called;
- it fails on a parameter the loss does not depend on (its gradient is None): such parameters are
  left out of its view for the call (their Hessian rows are zero, so no eigenvalue or trace
  changes), and given back;
- it draws its vectors from the global random generator: that generator's state is restored
  (seeded with the same seed, on the CPU it draws the very Rademacher probes this project's trace
  draws, so the two traces then differ by rounding only; on a GPU its probes are other draws);
- its products call `backward(create_graph=True)`, whose warning about the cycle this creates is
  silenced: the gradients that hold the cycle are cleared.

Uncertainties: an eigenvalue's is its residual |Hv - λv| (a Ritz value lies within it of an
eigenvalue), computed for PyHessian's vectors with one product each; a trace's is its standard
error over probes. Two eigenvalues agree when they differ by at most the sum of their residuals;
two independent traces when they differ by at most twice the standard error of the difference
(about 95 % of independent pairs of the same trace).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from analysis.measures.results import Agreement, CrossCheck
from pof.curvature.lanczos import TopEigen
from pof.curvature.operators import HessianOperator
from pof.curvature.trace import TraceResult
from pof.progress import Progress, ShouldStop, check_stop

TRACE_Z = 2.0  # standard errors of the difference within which two traces agree
EIGEN_MAX_ITER = 200  # power-iteration steps per eigenvalue (PyHessian's default is 100)


@dataclass(frozen=True)
class PyHessianEstimates:
    eigenvalues: list[float]  # sorted, largest first
    residuals: list[float]
    trace_samples: list[float]  # v^T H v of every probe
    same_probes: bool = False  # its probes were this project's (CPU, every parameter used)


def _unused(model: nn.Module, batch) -> list[nn.Parameter]:
    """The trainable parameters the loss on `batch` does not depend on."""
    params = [p for p in model.parameters() if p.requires_grad]
    x, y = batch
    grads = torch.autograd.grad(F.cross_entropy(model(x), y), params, allow_unused=True)
    return [p for p, g in zip(params, grads, strict=True) if g is None]


def _clear_grads(model: nn.Module) -> None:
    model.zero_grad(set_to_none=True)


def pyhessian_estimates(
    model: nn.Module,
    batches: list[tuple[torch.Tensor, torch.Tensor]],
    *,
    top_k: int,
    probes: int,
    tol: float,
    seed: int,
    max_iter: int = EIGEN_MAX_ITER,
    should_stop: ShouldStop | None = None,
) -> PyHessianEstimates:
    """PyHessian's top `top_k` eigenvalues (sorted, with residuals) and `probes` trace samples of
    the mean cross-entropy over `batches`, in eval mode; the model's mode and its global random
    state are as before, its gradients cleared."""
    from pyhessian import hessian

    was_training = model.training
    cuda = next(model.parameters()).is_cuda
    _clear_grads(model)
    devices = [torch.cuda.current_device()] if cuda else []
    model.eval()
    unused = _unused(model, batches[0])
    used = [p for p in model.parameters() if p.requires_grad and all(p is not u for u in unused)]
    try:
        for p in unused:
            p.requires_grad_(False)
        with warnings.catch_warnings(), torch.random.fork_rng(devices=devices):
            warnings.filterwarnings("ignore", "Using backward.. with create_graph", UserWarning)
            torch.manual_seed(seed)
            # one batch: its gradient graph is built once (PyHessian's fast path)
            kw = {"data": batches[0]} if len(batches) == 1 else {"dataloader": batches}
            h = hessian(model, F.cross_entropy, cuda=cuda, **kw)
            values, vectors = h.eigenvalues(maxIter=max_iter, tol=tol, top_n=top_k)
            check_stop(should_stop)
            torch.manual_seed(seed)
            samples = h.trace(maxIter=probes, tol=-math.inf)  # no early stop: every probe
            del h
        for p in unused:
            p.requires_grad_(True)
        check_stop(should_stop)
        _clear_grads(model)
        order = sorted(range(len(values)), key=lambda i: -values[i])
        op = HessianOperator(model, batches)  # its own products, for the residuals
        try:
            residuals = []
            for i in order:
                part = {id(p): t for p, t in zip(used, vectors[i], strict=True)}
                v = torch.cat([part.get(id(p), torch.zeros_like(p)).reshape(-1) for p in op.params])
                v = v / v.norm()
                residuals.append(float((op.matvec(v) - values[i] * v).norm()))
        finally:
            op.close()
    finally:
        for p in unused:
            p.requires_grad_(True)
        _clear_grads(model)
        model.train(was_training)
    same = not cuda and not unused
    return PyHessianEstimates([float(values[i]) for i in order], residuals, list(samples), same)


def _row(name: str, a: float, ea: float, b: float, eb: float, bound: float) -> Agreement:
    scale = max(abs(a), abs(b))
    rel = abs(a - b) / scale if scale > 0 else 0.0
    return Agreement(name, a, ea, b, eb, rel, bound, bool(abs(a - b) <= bound))


def agreement(top: TopEigen, trace: TraceResult, theirs: PyHessianEstimates) -> list[Agreement]:
    """Each eigenvalue and the trace, side by side with their agreement."""
    rows = []
    for i, (a, ra, b, rb) in enumerate(
        zip(top.eigenvalues, top.residuals, theirs.eigenvalues, theirs.residuals, strict=False)
    ):
        rows.append(_row(f"top eigenvalue {i + 1}", a, ra, b, rb, ra + rb + 1e-9 * abs(a)))
    s = np.asarray(theirs.trace_samples, dtype=float)
    se = float(s.std(ddof=1) / math.sqrt(len(s))) if len(s) > 1 else float("nan")
    bound = TRACE_Z * math.hypot(trace.stderr, se)
    rows.append(_row("trace", trace.trace, trace.stderr, float(s.mean()), se, bound))
    return rows


def cross_check(
    model: nn.Module,
    batches,
    top: TopEigen,
    trace: TraceResult,
    *,
    eval_set: str = "",
    tol: float = 1e-4,
    seed: int = 0,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
) -> CrossCheck:
    """PyHessian on `model` and `batches` (those `top` and `trace` were measured on), with as many
    eigenvalues as `top` and as many probes as `trace`, beside them."""
    if progress:
        progress(0, 1, "PyHessian")
    theirs = pyhessian_estimates(
        model,
        batches,
        top_k=len(top.eigenvalues),
        probes=trace.n_probes,
        tol=tol,
        seed=seed,
        should_stop=should_stop,
    )
    if progress:
        progress(1, 1, "PyHessian")
    probes = "the same vectors as ours" if theirs.same_probes else "other draws than ours"
    how = (
        f"PyHessian power iteration (tol {tol:g} on the change, at most {EIGEN_MAX_ITER} steps, "
        f"sorted) and Hutchinson trace ({trace.n_probes} Rademacher probes, {probes}, no early "
        f"stop), seed {seed}, eval mode"
    )
    return CrossCheck(agreement(top, trace, theirs), eval_set, seed, trace.n_probes, how)
