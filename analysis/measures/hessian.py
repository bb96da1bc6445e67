"""Whole-network curvature: top eigenvalues, trace, spectral density and per-layer blocks.

Every estimator works on a `CurvatureOperator` (a symmetric matrix known only through its products
with flat vectors): `HessianOperator` for the mean cross-entropy over a fixed list of batches, in
eval mode (BN uses its running statistics, so the Hessian is that of the deterministic eval-mode
loss), and `BlockOperator` for one layer's diagonal block of it.

The Hessian-vector products are written here rather than taken from PyHessian (PyPI 0.1), whose
public API cannot serve them: `pyhessian.hessian` offers a product only as `dataloader_hv_product`,
which rebuilds the graph for every product (twice the cost on a single batch); its single-batch
graph is reachable only through its attributes; its constructor accumulates into `.grad` (stale
gradients double the result) with `backward(create_graph=True)` (a reference cycle PyTorch warns
about) and leaves the model in eval mode. Here the gradient graph is built with
`torch.autograd.grad`, never stored in `.grad`, and the model's mode is restored on `close()`. The
products are the same arithmetic as PyHessian's (batches weighted by their size), so the numbers
agree with it to rounding (benchmarks/analysis_speed.py measures both). Around them:

- top eigenvalues use Lanczos with full reorthogonalization instead of PyHessian's power iteration
  (which stalls at its default tolerance and can return eigenvalues out of order); each comes back
  sorted, with its residual |H v - lambda v| and whether it converged;
- the trace uses a fixed number of Rademacher probes and reports the standard error (PyHessian's own
  stopping rule stops too early), and the same probes give every layer's trace at once;
- the spectral density is stochastic Lanczos quadrature written here, because PyHessian's
  `density()` calls `torch.eig`, which PyTorch removed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from analysis.results import UNSAVED, Result
from pof.progress import Progress, ShouldStop, check_stop

# --- the operators -----------------------------------------------------------------------------


class CurvatureOperator(Protocol):
    """A symmetric matrix over some parameters, known through products with flat vectors."""

    params: list[torch.Tensor]  # the parameters it acts on, in order (a flat vector spans them)
    n_samples: int  # the examples its loss averages over

    @property
    def dim(self) -> int: ...

    def matvec(self, flat: torch.Tensor) -> torch.Tensor: ...


class HessianOperator:
    """v -> H v for the mean cross-entropy over `batches` (weighted by batch size), in eval mode.
    `loss` replaces the cross-entropy (a mean over the batch, called as loss(outputs, targets)),
    e.g. for a regression loss."""

    def __init__(
        self,
        model: nn.Module,
        batches: list[tuple[torch.Tensor, torch.Tensor]],
        loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
    ):
        self.model = model
        self.loss = loss
        self.was_training = model.training
        model.eval()
        self.batches = list(batches)
        self.n_samples = sum(len(y) for _, y in self.batches)
        self.names = [n for n, p in model.named_parameters() if p.requires_grad]
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.n_hvp = 0
        # one batch: its gradient graph is built once and reused by every product
        self._grads = self._gradient(*self.batches[0]) if len(self.batches) == 1 else None

    def _gradient(self, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor | None]:
        loss = self.loss(self.model(x), y)
        return list(torch.autograd.grad(loss, self.params, create_graph=True, allow_unused=True))

    def _grad_of_grad(self, grads, v, retain: bool) -> list[torch.Tensor]:
        """d(grads . v)/d params; a parameter the loss does not depend on gets zeros."""
        used = [(g, u) for g, u in zip(grads, v, strict=True) if g is not None and g.requires_grad]
        if not used:
            return [torch.zeros_like(p) for p in self.params]
        hv = torch.autograd.grad(
            [g for g, _ in used],
            self.params,
            [u for _, u in used],
            retain_graph=retain,
            allow_unused=True,
        )
        return [
            torch.zeros_like(p) if h is None else h for p, h in zip(self.params, hv, strict=True)
        ]

    @property
    def dim(self) -> int:
        return sum(p.numel() for p in self.params)

    def hvp(self, v: list[torch.Tensor]) -> list[torch.Tensor]:
        """H v with v shaped like the parameters."""
        self.n_hvp += 1
        if self._grads is not None:
            return self._grad_of_grad(self._grads, v, retain=True)
        total = [torch.zeros_like(p) for p in self.params]
        for x, y in self.batches:
            hv = self._grad_of_grad(self._gradient(x, y), v, retain=False)
            total = [t + h * float(len(y)) for t, h in zip(total, hv, strict=True)]
        return [t / float(self.n_samples) for t in total]

    def unflatten(self, flat: torch.Tensor) -> list[torch.Tensor]:
        out, i = [], 0
        for p in self.params:
            out.append(flat[i : i + p.numel()].view_as(p).to(p.dtype))
            i += p.numel()
        return out

    def matvec(self, flat: torch.Tensor) -> torch.Tensor:
        """H v on flat vectors (the Krylov methods below work on one vector, not a list)."""
        return torch.cat([h.reshape(-1) for h in self.hvp(self.unflatten(flat))]).to(flat.dtype)

    def close(self) -> None:
        """Free the kept gradient graph and give the model its mode back."""
        self._grads = None
        self.model.zero_grad(set_to_none=True)
        self.model.train(self.was_training)


class BlockOperator:
    """The diagonal block of H for a subset of parameters: v_block -> (H [v_block; 0])_block."""

    def __init__(self, op: CurvatureOperator, idx: list[int]):
        self.op, self.idx = op, idx
        self.params = [op.params[j] for j in idx]
        self.n_samples = op.n_samples

    @property
    def dim(self) -> int:
        return sum(p.numel() for p in self.params)

    def matvec(self, flat: torch.Tensor) -> torch.Tensor:
        full, i = [torch.zeros_like(p) for p in self.op.params], 0
        for j in self.idx:
            n = self.op.params[j].numel()
            full[j] = flat[i : i + n].view_as(self.op.params[j]).to(self.op.params[j].dtype)
            i += n
        hv = self.op.hvp(full)
        return torch.cat([hv[j].reshape(-1) for j in self.idx]).to(flat.dtype)


def _rademacher(n: int, gen, like: torch.Tensor) -> torch.Tensor:
    return (torch.randint(0, 2, (n,), generator=gen) * 2 - 1).to(like)


# --- Lanczos ------------------------------------------------------------------------------------


def lanczos(
    op: CurvatureOperator,
    start: torch.Tensor,
    steps: int,
    should_stop: ShouldStop | None = None,
    progress: Progress | None = None,
    label: str = "lanczos",
    done: Callable | None = None,
    check_every: int = 4,
):
    """`steps` Lanczos iterations from `start` (flat) with full reorthogonalization.
    Returns (alphas, betas, basis) with len(betas) == len(alphas): T is tridiagonal with alphas and
    betas[:-1]; betas[-1] is the residual norm of the last step. Stops early if the space is
    exhausted, or when done(alphas, betas) says so (asked every `check_every` steps). The basis is
    kept (steps x dim) for reorthogonalization and Ritz vectors."""
    # the basis grows as needed (it costs steps x parameters numbers), in the parameters' precision
    basis = torch.zeros(min(steps, 16), len(start), dtype=start.dtype, device=start.device)
    basis[0] = start / start.norm()
    alphas, betas = [], []
    for j in range(steps):
        check_stop(should_stop)
        v = basis[j]
        w = op.matvec(v)
        alpha = float(w @ v)
        Q = basis[: j + 1]
        for _ in range(2):  # full reorthogonalization, twice is enough (Parlett)
            w = w - Q.T @ (Q @ w)
        alphas.append(alpha)
        if progress:
            progress(j + 1, steps, label)
        beta = float(w.norm())
        betas.append(
            beta
        )  # the last one is not part of T: it measures how far from invariant the space is
        if j == steps - 1 or beta < 1e-10 * max(1.0, abs(alpha)):
            break
        if (
            done is not None
            and (j + 1) % check_every == 0
            and done(np.array(alphas), np.array(betas))
        ):
            break
        if j + 1 >= len(basis):
            basis = torch.cat([basis, torch.zeros_like(basis)])[:steps]
        basis[j + 1] = w / beta
    return np.array(alphas), np.array(betas), basis[: len(alphas)]


def _tridiag_eig(alphas, betas):
    from scipy.linalg import eigh_tridiagonal

    return eigh_tridiagonal(alphas, betas[: len(alphas) - 1])


@dataclass(frozen=True)
class TopEigen(Result):
    eigenvalues: list[float]  # largest first
    residuals: list[float]  # |H v - lambda v| with |v| = 1, computed with one more product each
    converged: list[bool]  # residual <= tol * max(|lambda_1|, 1e-12)
    iterations: int  # Lanczos steps (one Hessian-vector product each)
    tol: float
    n_samples: int
    mode: str = "eval"
    # unit eigenvectors (flat), on request
    vectors: list[torch.Tensor] | None = field(
        default=None, repr=False, compare=False, metadata=UNSAVED
    )


def top_eigenvalues(
    op: CurvatureOperator,
    k: int = 1,
    tol: float = 1e-4,
    max_steps: int = 200,
    seed: int = 0,
    check_every: int = 2,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
    keep_vectors: bool = False,
    start: torch.Tensor | None = None,
) -> TopEigen:
    """The k largest (algebraic) eigenvalues by Lanczos, run until the Ritz residual estimates
    |beta_m s_m| of all k fall below tol * |lambda_1|, then checked with true residuals (one more
    product each). Unlike power iteration, this does not stall on close eigenvalues and returns
    them in order. `start` (flat) warm-starts Lanczos, e.g. from the top eigenvector of a nearby
    matrix; by default it starts from a random vector drawn with `seed`."""
    if start is None:
        gen = torch.Generator().manual_seed(seed)
        start = torch.randn(op.dim, generator=gen, dtype=torch.float64)
    start = start.to(op.params[0])

    def converged(alphas, betas) -> bool:  # Ritz residual estimates |beta_m s_m| of the top k
        if len(alphas) < k:
            return False
        theta, S = _tridiag_eig(alphas, betas)
        top = np.argsort(theta)[::-1][:k]
        return bool(np.all(np.abs(betas[-1] * S[-1, top]) <= tol * max(abs(theta[top[0]]), 1e-12)))

    alphas, betas, basis = lanczos(
        op,
        start,
        min(max_steps, op.dim),
        should_stop,
        progress,
        label="top eigenvalues",
        done=converged,
        check_every=check_every,
    )
    theta, S = _tridiag_eig(alphas, betas)
    m = len(alphas)
    order = np.argsort(theta)[::-1][:k]
    values, residuals, vectors = [], [], []
    for i in order:
        vec = basis.T @ torch.from_numpy(S[:, i]).to(basis)
        lam = float(theta[i])
        values.append(lam)
        residuals.append(float((op.matvec(vec) - lam * vec).norm()))
        vectors.append(vec / vec.norm())
    scale = max(abs(values[0]), 1e-12)
    return TopEigen(
        values,
        residuals,
        [r <= tol * scale for r in residuals],
        m,
        tol,
        op.n_samples,
        vectors=vectors if keep_vectors else None,
    )


# --- trace, per layer ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerCurvature(Result):
    name: str  # module name, e.g. "features.0" (weight and bias together) or "features.1" (BN)
    kind: str  # "conv", "linear", "batchnorm", "norm" (other normalizations), "other"
    n_params: int
    trace: float
    trace_stderr: float
    trace_per_param: float
    top_eigenvalue: float | None = None
    top_residual: float | None = None


@dataclass(frozen=True)
class TraceResult(Result):
    trace: float
    stderr: float
    n_probes: int
    n_samples: int
    layers: list[LayerCurvature] = field(default_factory=list)


_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm, nn.LocalResponseNorm)


def _kind_of(mod: nn.Module) -> str:
    """conv, linear, batchnorm, norm (other normalizations) or other, by class; modules that are not
    torch.nn layers (a torch.export program's submodules are plain `Module`s, a user's own layer)
    are recognized by their weight: 3-D and more conv, 2-D linear, 1-D a normalization (batchnorm
    when it keeps running statistics)."""
    if isinstance(mod, nn.modules.conv._ConvNd):
        return "conv"
    if isinstance(mod, nn.Linear):
        return "linear"
    if isinstance(mod, nn.modules.batchnorm._BatchNorm):
        return "batchnorm"
    if isinstance(mod, _NORMS):
        return "norm"
    if type(mod) is not nn.Module and type(mod).__module__.startswith("torch.nn.modules"):
        # a torch.nn layer of another kind (embedding, attention, ...): its shapes would mislead
        return "other"
    weight = mod._parameters.get("weight")
    if weight is None:
        return "other"
    if weight.ndim >= 3:
        return "conv"
    if weight.ndim == 2:
        return "linear"
    return "batchnorm" if "running_var" in mod._buffers else "norm"


def layer_groups(model: nn.Module, names: list[str]) -> list[tuple[str, str, list[int]]]:
    """Parameters grouped by the module that owns them: (module name, kind, indices into names),
    in the order the parameters are registered. A layer's bias is folded into its layer;
    batch-norm scale and shift form their own group."""
    modules = dict(model.named_modules())
    groups: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        groups.setdefault(n.rpartition(".")[0], []).append(i)
    return [
        (g, _kind_of(modules[g]) if g in modules else "other", idx) for g, idx in groups.items()
    ]


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
        v = op.unflatten(_rademacher(op.dim, gen, op.params[0]))
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


@dataclass(frozen=True)
class Density(Result):
    nodes: list[list[float]]  # per run: Ritz values (eigenvalues of the Lanczos tridiagonal)
    weights: list[list[float]]  # per run: squared first components; each run sums to 1
    grid: list[float]
    density: list[float]  # Gaussian-smoothed, averaged over runs, integrates to 1 over the grid
    sigma: float
    steps: int
    n_samples: int


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
        start = _rademacher(op.dim, gen, op.params[0])
        prog = (
            (lambda i, n, msg, r=r: progress(r * steps + i, runs * steps, msg))
            if progress
            else None
        )
        alphas, betas, _ = lanczos(op, start, steps, should_stop, prog, label="density")
        theta, S = _tridiag_eig(alphas, betas)
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
