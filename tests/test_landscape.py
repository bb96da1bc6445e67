"""Directions, landscapes, interpolation and sharpness against exact answers."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, hessian

from analysis.measures.landscape import (
    Directions,
    evaluate_grid,
    grid,
    interpolate,
    loss_and_accuracy,
    random_directions,
)
from analysis.measures.sharpness import average_case_sharpness, worst_case_sharpness
from pof.models.networks import build_model
from pof.progress import Stopped


def _cnn():
    torch.manual_seed(0)
    model = build_model("cnn-small", (1, 8, 8), 10, width=4)
    x, y = torch.randn(64, 1, 8, 8), torch.randint(0, 10, (64,))
    with torch.no_grad():
        model.train()
        model(x)  # non-trivial BN running statistics
    return model.eval(), x, y


def test_filter_normalization_gives_each_filter_the_norm_of_its_weights():
    model, _, _ = _cnn()
    d = random_directions(model, n=2, seed=1).vectors[0]
    for name, p in model.named_parameters():
        if p.dim() >= 2:
            want = p.detach().reshape(len(p), -1).norm(dim=1)
            got = d[name].reshape(len(p), -1).norm(dim=1)
            assert torch.allclose(got, want, rtol=1e-5), name
        else:
            assert torch.all(d[name] == 0), name  # biases and BN get no direction by default
    with_bn = random_directions(model, n=1, seed=1, include_bias_bn=True).vectors[0]
    assert with_bn["features.1.weight"].norm() == pytest.approx(
        model.features[1].weight.norm().item(), rel=1e-5
    )
    head = random_directions(model, n=1, seed=1, layers=["classifier"]).vectors[0]
    assert head["classifier.weight"].abs().sum() > 0 and all(
        head[n].abs().sum() == 0 for n in head if not n.startswith("classifier")
    )
    a, b = random_directions(model, n=2, seed=1).vectors
    assert not torch.equal(a["features.0.weight"], b["features.0.weight"])


def test_directions_round_trip_and_refuse_another_architecture(tmp_path):
    model, _, _ = _cnn()
    dirs = random_directions(model, n=2, seed=5)
    dirs.save(tmp_path / "dirs.pt")
    back = Directions.load(tmp_path / "dirs.pt")
    assert back.meta["seed"] == 5 and all(
        torch.equal(back.vectors[i][k], dirs.vectors[i][k])
        for i in range(2)
        for k in dirs.vectors[i]
    )
    with pytest.raises(ValueError, match="another architecture"):
        back.check_fits(build_model("cnn-small", (1, 8, 8), 10, width=8))


def test_landscape_origin_is_the_models_loss_and_the_model_is_restored_bit_for_bit():
    model, x, y = _cnn()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    base = loss_and_accuracy(model, x, y)
    dirs = random_directions(model, n=2, seed=0)
    axes = [grid(-1, 1, 5), grid(-0.5, 0.5, 3)]
    res = evaluate_grid(model, dirs, axes, x, y, "test tensors", batch_size=16)
    assert res.loss[2][1] == pytest.approx(base[0], abs=1e-6) and res.accuracy[2][1] == base[1]
    assert np.array(res.loss).shape == (5, 3) and not np.isnan(res.loss).any()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # a point off the origin equals the model with those weights written by hand
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.add_(-1.0 * dirs.vectors[0][n] + 0.5 * dirs.vectors[1][n])
    assert res.loss[0][2] == pytest.approx(loss_and_accuracy(model, x, y)[0], rel=1e-5)


def test_a_stopped_landscape_continues_to_the_same_result():
    model, x, y = _cnn()
    dirs = random_directions(model, n=1, seed=0)
    axes = [grid(-1, 1, 9)]
    whole = evaluate_grid(model, dirs, axes, x, y, "t")
    saved = []
    calls = iter(range(100))
    with pytest.raises(Stopped):
        evaluate_grid(
            model,
            dirs,
            axes,
            x,
            y,
            "t",
            save_partial=saved.append,
            should_stop=lambda: next(calls) >= 4,
        )
    partial = saved[-1]
    assert partial.done == 4 and np.isnan(partial.loss).sum() == 5
    resumed = evaluate_grid(model, dirs, axes, x, y, "t", partial=partial)
    assert resumed.loss == pytest.approx(whole.loss) and resumed.done == 9


def test_interpolation_hits_both_checkpoints_including_batchnorm_statistics():
    a, x, y = _cnn()
    b, _, _ = _cnn()
    with torch.no_grad():
        for p in b.parameters():
            p.add_(0.1 * torch.randn_like(p))
        b.features[1].running_mean.add_(0.5)
    la, lb = loss_and_accuracy(a, x, y), loss_and_accuracy(b, x, y)
    before = {k: v.clone() for k, v in a.state_dict().items()}
    res = interpolate(a, b, [-0.5, 0.0, 0.5, 1.0, 1.5], x, y, "t")
    assert res.loss[1] == pytest.approx(la[0], abs=1e-6) and res.loss[3] == pytest.approx(
        lb[0], rel=1e-5
    )
    assert all(torch.equal(before[k], v) for k, v in a.state_dict().items())


def _convex_case():
    """Logistic regression (a linear layer) near its optimum, in float64: sharpness has exact
    limits."""
    torch.manual_seed(0)
    x, y = torch.randn(200, 5, dtype=torch.float64), torch.randint(0, 3, (200,))
    x[:, 0] *= 3  # a clear gap below the top eigenvalue, so a few ascent steps find its direction
    model = nn.Linear(5, 3).double()
    opt = torch.optim.LBFGS(
        model.parameters(), max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-14
    )

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    opt.step(closure)
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]

    def loss(flat):
        params, i = {}, 0
        for n, s in zip(names, shapes, strict=True):
            params[n] = flat[i : i + math.prod(s)].view(s)
            i += math.prod(s)
        return F.cross_entropy(functional_call(model, params, (x,)), y)

    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    return model, x, y, hessian(loss)(flat)


def test_worst_case_sharpness_at_a_minimum_is_half_rho_squared_lambda_max():
    model, x, y, H = _convex_case()
    lam = torch.linalg.eigvalsh(H)[-1].item()
    rho = 1e-2
    s = worst_case_sharpness(model, x, y, rho=rho, steps=60)
    assert s.increase == pytest.approx(0.5 * rho**2 * lam, rel=0.02)
    a = worst_case_sharpness(model, x, y, rho=rho, steps=60, adaptive=True)
    assert a.increase > 0 and a.kind == "adaptive worst-case"


def test_average_case_sharpness_at_a_minimum_is_half_sigma_squared_trace():
    model, x, y, H = _convex_case()
    sigma = 1e-2
    s = average_case_sharpness(model, x, y, sigma=sigma, samples=400, seed=0)
    expected = 0.5 * sigma**2 * torch.trace(H).item()
    assert abs(s.increase - expected) <= 3 * s.increase_stderr + 0.02 * expected
    assert s.max_increase >= s.increase
