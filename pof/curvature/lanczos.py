"""Top eigenvalues by Lanczos with full reorthogonalization, each checked by its true residual.

Lanczos instead of PyHessian's power iteration, which stalls at its default tolerance and can
return eigenvalues out of order. `top_eigenvalues(start=...)` warm-starts it from a nearby
matrix's eigenvector, as a curvature tracker does from one point to the next.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..progress import Progress, ShouldStop, check_stop
from .operators import CurvatureOperator
from .results import TopEigen


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


def tridiag_eig(alphas, betas):
    from scipy.linalg import eigh_tridiagonal

    return eigh_tridiagonal(alphas, betas[: len(alphas) - 1])


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
        theta, S = tridiag_eig(alphas, betas)
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
    theta, S = tridiag_eig(alphas, betas)
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
