"""The closed-form last-layer Hessian against autograd."""

import torch
import torch.nn.functional as F

from pof.curvature.lastlayer import (
    dense_hessian,
    features_and_probs,
    hessian_vector_product,
    last_layer_hessian,
    trace,
)
from pof.data.batches import Batches
from pof.data.load import load_dataset
from pof.models.networks import build_model


def _autograd_hessian(feats, y, W, b):
    c, d = W.shape

    def loss(wb):  # wb ordered row by row of [W | b]
        M = wb.view(c, d + 1)
        return F.cross_entropy(feats @ M[:, :d].T + M[:, d], y)

    return torch.func.hessian(loss)(torch.cat([W, b[:, None]], 1).reshape(-1))


def test_closed_form_equals_autograd_hessian():
    torch.manual_seed(0)
    feats, y = torch.randn(40, 6, dtype=torch.float64), torch.randint(0, 4, (40,))
    W, b = torch.randn(4, 6, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    H_ref = _autograd_hessian(feats, y, W, b)
    Ft = torch.cat([feats, torch.ones(40, 1, dtype=torch.float64)], 1)
    P = torch.softmax(feats @ W.T + b, 1)
    H = dense_hessian(Ft, P)
    assert torch.allclose(H, H_ref, rtol=1e-5, atol=1e-12)
    assert abs(trace(Ft, P) - torch.trace(H_ref).item()) < 1e-10
    V = torch.randn(4, 7, dtype=torch.float64)
    assert torch.allclose(
        hessian_vector_product(Ft, P, V).reshape(-1), H_ref @ V.reshape(-1), atol=1e-12
    )
    exact = torch.linalg.eigvalsh(H_ref).flip(0)
    dense = last_layer_hessian(Ft, P, top_k=3)
    free = last_layer_hessian(Ft, P, top_k=3, dense=False)
    assert dense.method == "dense" and free.method == "matrix-free"
    for got in (dense.top_eigenvalues, free.top_eigenvalues):
        assert torch.allclose(torch.tensor(got, dtype=torch.float64), exact[:3], rtol=1e-8)
    assert abs(sum(dense.spectrum) - dense.trace) < 1e-10


def test_features_of_a_real_model_on_digits():
    d = load_dataset("digits")
    model = build_model("cnn-small", d.input_shape, 10)
    batches = Batches(d.x_train, d.y_train, d.mean, d.std, 500, shuffle=False)
    Ft, P = features_and_probs(model, batches)
    assert Ft.shape == (1347, 129) and P.shape == (1347, 10) and torch.all(Ft[:, -1] == 1)
    assert torch.allclose(P.sum(1), torch.ones(1347, dtype=torch.float64))
    assert model.training  # mode restored
