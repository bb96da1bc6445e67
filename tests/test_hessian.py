"""Whole-network curvature estimators against the exact Hessian of small models
(torch.func.hessian)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, hessian

from analysis.measures.hessian import (
    BlockOperator,
    HessianOperator,
    hutchinson_trace,
    layer_groups,
    per_layer_top_eigenvalues,
    spectral_density,
    top_eigenvalues,
)


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(4, 10), nn.Tanh(), nn.Linear(10, 8), nn.Tanh(), nn.Linear(8, 3)
    ).double()


def _cnn_bn():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1),
        nn.BatchNorm2d(3),
        nn.ReLU(),
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    ).double()


def _data(model):
    g = torch.Generator().manual_seed(1)
    if isinstance(model[0], nn.Linear):
        x = torch.randn(60, 4, generator=g, dtype=torch.float64)
    else:
        x = torch.randn(60, 1, 6, 6, generator=g, dtype=torch.float64)
        model.train()
        with torch.no_grad():  # give BN non-trivial running statistics, then evaluate in eval mode
            for _ in range(5):
                model(x)
    y = torch.randint(0, 3, (60,), generator=g)
    return x, y


def exact_hessian(model, x, y):
    model.eval()
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    flat0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    buffers = dict(model.named_buffers())

    def loss(flat):
        params, i = {}, 0
        for n, s in zip(names, shapes, strict=True):
            k = math.prod(s)
            params[n] = flat[i : i + k].view(s)
            i += k
        return F.cross_entropy(functional_call(model, {**params, **buffers}, (x,)), y)

    return hessian(loss)(flat0), names, shapes


@pytest.fixture(params=["mlp", "cnn_bn"])
def setup(request):
    model = _mlp() if request.param == "mlp" else _cnn_bn()
    x, y = _data(model)
    H, names, shapes = exact_hessian(model, x, y)
    # several batches of unequal size: products must weight them by batch size
    batches = [(x[:25], y[:25]), (x[25:40], y[25:40]), (x[40:], y[40:])]
    return model, batches, H, names, shapes


def test_top_eigenvalues_match_exact_and_are_sorted(setup):
    model, batches, H, _, _ = setup
    exact = torch.linalg.eigvalsh(H).flip(0)
    op = HessianOperator(model, batches)
    res = top_eigenvalues(op, k=4, tol=1e-6)
    got = torch.tensor(res.eigenvalues, dtype=torch.float64)
    assert torch.all(got[:-1] >= got[1:])
    assert torch.allclose(got, exact[:4], rtol=1e-2), (got, exact[:4])
    assert all(res.converged) and res.iterations > 0 and res.n_samples == 60


def test_single_batch_and_stale_gradients_do_not_double_the_hessian(setup):
    model, batches, H, _, _ = setup
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    F.cross_entropy(model(x), y).backward()  # stale gradients a careless caller leaves behind
    op = HessianOperator(model, [(x, y)])
    res = top_eigenvalues(op, k=1, tol=1e-8)
    assert abs(res.eigenvalues[0] - torch.linalg.eigvalsh(H)[-1].item()) < 1e-6 * abs(
        res.eigenvalues[0]
    )


def test_trace_within_three_standard_errors_and_per_layer_blocks(setup):
    model, batches, H, names, shapes = setup
    op = HessianOperator(model, batches)
    res = hutchinson_trace(op, n_probes=120, seed=3)
    exact = torch.trace(H).item()
    assert abs(res.trace - exact) <= 3 * res.stderr, (res.trace, res.stderr, exact)
    # blocks: exact diagonal blocks of H, grouped as layer_groups says
    offsets = np.cumsum([0] + [math.prod(s) for s in shapes])
    groups = {g: idx for g, _, idx in layer_groups(model, names)}
    assert sum(layer.trace for layer in res.layers) == pytest.approx(res.trace, rel=1e-9)
    layers = per_layer_top_eigenvalues(op, res.layers, tol=1e-8, max_steps=200)
    for layer in layers:
        cols = torch.cat([torch.arange(offsets[j], offsets[j + 1]) for j in groups[layer.name]])
        block = H[cols][:, cols]
        v = torch.randn(
            len(cols), dtype=torch.float64
        )  # the block operator is exactly the diagonal block
        assert torch.allclose(
            BlockOperator(op, groups[layer.name]).matvec(v), block @ v, rtol=1e-9, atol=1e-12
        )
        assert layer.n_params == len(cols)
        assert abs(layer.trace - torch.trace(block).item()) <= 3 * layer.trace_stderr + 1e-12
        assert layer.top_eigenvalue == pytest.approx(
            torch.linalg.eigvalsh(block)[-1].item(), rel=1e-4, abs=1e-9
        )
    kinds = {layer.kind for layer in layers}
    assert "linear" in kinds and (isinstance(model[0], nn.Linear) or {"conv", "batchnorm"} <= kinds)


def test_slq_density_support_matches_extreme_eigenvalues_and_weights_sum_to_one(setup):
    model, batches, H, _, _ = setup
    exact = torch.linalg.eigvalsh(H)
    op = HessianOperator(model, batches)
    d = spectral_density(
        op, steps=60, runs=2, seed=0
    )  # 60 of ~170 dimensions: the extremes converge first
    for nodes, weights in zip(d.nodes, d.weights, strict=True):
        assert sum(weights) == pytest.approx(1.0, abs=1e-9)
        assert max(nodes) == pytest.approx(exact[-1].item(), rel=1e-3)
        assert min(nodes) == pytest.approx(exact[0].item(), rel=1e-2, abs=1e-4)
    assert np.trapezoid(d.density, d.grid) == pytest.approx(1.0, abs=1e-6)
    assert min(d.grid) <= exact[0].item() and max(d.grid) >= exact[-1].item()
