"""Exact Hessian of the cross-entropy loss with respect to the last linear layer (docs/method.md).

With f~_i = [phi(x_i); 1] and p_i = softmax(W phi(x_i) + b), the Hessian over w = (W, b) is

    H = (1/N) sum_i (diag(p_i) - p_i p_i^T) kron f~_i f~_i^T,

ordered row by row of [W | b] (class c, then feature j, the bias last). It depends on the data only
through the features, so it is computed exactly on a whole training set: densely when
C (D+1) is small, otherwise as a matrix-free operator (Lanczos on exact products).
"""

from __future__ import annotations

import numpy as np
import torch

from .results import LastLayerHessian

DENSE_MAX_DIM = 4096  # above this C (D+1), never form the matrix
DENSE_MAX_FLOPS = (
    5e9  # forming it costs N (C (D+1))^2; above this Lanczos on exact products is faster
)


@torch.no_grad()
def features_and_probs(model, batches, split=None) -> tuple[torch.Tensor, torch.Tensor]:
    """F~ = [features, 1] (N, D+1) and softmax probabilities (N, C), in eval mode, float64."""
    from ..models.split import split_model

    split = split or split_model(model)
    was = model.training
    model.eval()
    feats, probs = [], []
    for xb, _ in batches:
        f = split.features(xb)
        probs.append(torch.softmax(split.classifier(f), dim=1).double().cpu())
        feats.append(f.double().cpu())
    model.train(was)
    F = torch.cat(feats)
    return torch.cat([F, torch.ones(len(F), 1, dtype=F.dtype)], 1), torch.cat(probs)


def hessian_vector_product(Ft: torch.Tensor, P: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """H V for V of shape (C, D+1), without forming H: (1/N) sum_i (diag(p_i) - p_i p_i^T) V f~_i
    f~_i^T."""
    U = Ft @ V.T  # (N, C): u_i = V f~_i
    M = P * U - P * (P * U).sum(1, keepdim=True)  # (diag(p_i) - p_i p_i^T) u_i
    return M.T @ Ft / len(Ft)


def dense_hessian(Ft: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
    """The full (C(D+1), C(D+1)) matrix: block-diagonal part minus Q^T Q / N, Q_i = p_i kron
    f~_i."""
    n, d1 = Ft.shape
    c = P.shape[1]
    Q = (P[:, :, None] * Ft[:, None, :]).reshape(n, c * d1)
    H = -(Q.T @ Q) / n
    for k in range(c):
        block = (Ft * P[:, k : k + 1]).T @ Ft / n
        H[k * d1 : (k + 1) * d1, k * d1 : (k + 1) * d1] += block
    return H


def trace(Ft: torch.Tensor, P: torch.Tensor) -> float:
    """tr H = (1/N) sum_i (1 - |p_i|^2) |f~_i|^2, exactly."""
    return float(((1 - (P**2).sum(1)) * (Ft**2).sum(1)).mean())


def last_layer_hessian(
    Ft: torch.Tensor, P: torch.Tensor, top_k: int = 5, dense: bool | None = None
) -> LastLayerHessian:
    n, d1 = Ft.shape
    c = P.shape[1]
    dim = c * d1
    top_k = min(top_k, dim)
    if dense is None:
        dense = dim <= DENSE_MAX_DIM and n * dim * dim <= DENSE_MAX_FLOPS
    if dense:
        evals = torch.linalg.eigvalsh(dense_hessian(Ft, P)).flip(0).tolist()
        return LastLayerHessian(evals[:top_k], trace(Ft, P), n, dim, "dense", evals)
    from scipy.sparse.linalg import LinearOperator, eigsh

    def mv(v):
        V = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64)).view(c, d1)
        return hessian_vector_product(Ft, P, V).reshape(-1).numpy()

    op = LinearOperator((dim, dim), matvec=mv, dtype=np.float64)
    k = min(top_k, dim - 1)
    vals = eigsh(op, k=k, which="LA", tol=1e-10, return_eigenvectors=False)
    return LastLayerHessian(
        sorted(vals.tolist(), reverse=True), trace(Ft, P), n, dim, "matrix-free"
    )
