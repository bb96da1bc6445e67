"""The PoF step against exact, naive references."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pof.method import PoFConfig, PoFPerturbation, last_layer_grad, line_search


def naive_line_search(feats, y, layer: nn.Linear, cfg: PoFConfig):
    """POF.md steps 2-4 written the obvious way: write the weights into the layer, call it."""
    W0, b0 = layer.weight.detach().clone(), layer.bias.detach().clone()
    loss = F.cross_entropy(layer(feats), y)
    gW, gb = torch.autograd.grad(loss, [layer.weight, layer.bias])
    loss0 = loss.item()

    def at(eta):
        with torch.no_grad():
            layer.weight.copy_(W0 - eta * gW)
            layer.bias.copy_(b0 - eta * gb)
            return F.cross_entropy(layer(feats), y).item()

    eta = cfg.line_search_init_lr
    while at(eta) <= loss0 and eta < cfg.line_search_max_lr:
        eta *= 2
    eta_max, best, eta_star = eta, math.inf, None
    for k in range(1, cfg.num_partitions + 1):
        e = k * eta_max / cfg.num_partitions
        value = at(e)
        if value < best:
            best, eta_star = value, e
    with torch.no_grad():
        layer.weight.copy_(W0)
        layer.bias.copy_(b0)
    return eta_max, eta_star, best


def naive_loss_at(feats, y, layer, eta):
    loss = F.cross_entropy(layer(feats), y)
    gW, gb = torch.autograd.grad(loss, [layer.weight, layer.bias])
    with torch.no_grad():
        return F.cross_entropy(
            feats @ (layer.weight - eta * gW).T + (layer.bias - eta * gb), y
        ).item()


def _case(seed, dtype):
    g = torch.Generator().manual_seed(seed)
    n = int(torch.randint(4, 300, (1,), generator=g))
    d = int(torch.randint(2, 40, (1,), generator=g))
    c = int(torch.randint(2, 20, (1,), generator=g))
    feats = torch.randn(n, d, generator=g, dtype=dtype) * float(
        torch.rand(1, generator=g) * 3 + 0.01
    )
    layer = nn.Linear(d, c).to(dtype)
    with torch.no_grad():
        layer.weight.copy_(
            torch.randn(c, d, generator=g, dtype=dtype) * float(torch.rand(1, generator=g) * 2)
        )
        layer.bias.copy_(torch.randn(c, generator=g, dtype=dtype) * 0.1)
    y = torch.randint(0, c, (n,), generator=g)
    if seed % 3 == 0:  # well fitted, small weights: the loss keeps falling along -g up to the cap
        with torch.no_grad():
            layer.weight.mul_(0.01)
        y = (feats @ layer.weight.T + layer.bias).argmax(1)
    cfg = PoFConfig()
    if seed % 5 == 1:  # a big first step: the loss rises at once and eta_max = init
        cfg = PoFConfig(line_search_init_lr=60.0, line_search_max_lr=100.0, num_partitions=7)
    return feats, y, layer, cfg


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_affine_line_search_picks_exactly_the_naive_eta(dtype):
    outcomes, saturated = set(), 0
    for seed in range(300):
        feats, y, layer, cfg = _case(seed, dtype)
        ref = naive_line_search(feats, y, layer, cfg)
        with torch.no_grad():
            loss0, A, gW, gb = last_layer_grad(feats, y, layer.weight, layer.bias)
            got = line_search(A, feats @ gW.T + gb, y, float(loss0), cfg)
        assert got[0] == ref[0], (seed, got, ref)
        tie = 10 * torch.finfo(dtype).eps
        if ref[2] > tie:
            assert got[1] == ref[1], (seed, got, ref)
        else:  # the loss is 0 to within rounding at several grid points: a true tie, either is right
            assert naive_loss_at(feats, y, layer, got[1]) <= tie, (seed, got, ref)
            saturated += 1
        tol = (
            1e-12 if dtype == torch.float64 else 2e-5
        )  # A - eta B and F (W0 - eta gW)^T round differently
        assert abs(got[2] - ref[2]) <= tol * max(1.0, abs(ref[2])), (seed, got, ref)
        outcomes.add(
            "cap"
            if ref[0] >= cfg.line_search_max_lr
            else "at once"
            if ref[0] == cfg.line_search_init_lr
            else "bracketed"
        )
    assert outcomes == {"cap", "at once", "bracketed"}  # every branch of the search was exercised
    assert saturated < 30  # ties are the exception: nearly all cases compare exactly


def test_closed_form_last_layer_gradient_equals_autograd():
    torch.manual_seed(0)
    feats, y = torch.randn(50, 7, dtype=torch.float64), torch.randint(0, 4, (50,))
    W = torch.randn(4, 7, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    loss = F.cross_entropy(feats @ W.T + b, y)
    gW, gb = torch.autograd.grad(loss, [W, b])
    loss2, _, gW2, gb2 = last_layer_grad(feats, y, W.detach(), b.detach())
    assert torch.allclose(gW, gW2, rtol=1e-12, atol=1e-14) and torch.allclose(
        gb, gb2, rtol=1e-12, atol=1e-14
    )
    assert abs(loss.item() - loss2.item()) < 1e-12


def _tiny():
    torch.manual_seed(1)
    features = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU())
    return features, nn.Linear(8, 3)


def test_perturbation_is_minus_gamma_eta_star_g_and_leaves_w0_alone():
    features, head = _tiny()
    x, y = torch.randn(64, 5), torch.randint(0, 3, (64,))
    cfg = PoFConfig(weak_bn_mode="eval")
    w0 = (head.weight.clone(), head.bias.clone())
    gammas = []
    for seed in range(40):
        W, b, info = PoFPerturbation(cfg)(features, head, x, y, torch.Generator().manual_seed(seed))
        with torch.no_grad():
            feats = features.eval()(x)
            _, _, gW, gb = last_layer_grad(feats, y, head.weight, head.bias)
        scale = info["gamma"] * info["eta_star"]
        assert torch.allclose(W, w0[0] - scale * gW, atol=1e-6) and torch.allclose(
            b, w0[1] - scale * gb, atol=1e-6
        )
        assert abs(info["delta_norm"] - scale * torch.cat([gW.flatten(), gb]).norm().item()) < 1e-5
        assert torch.equal(head.weight, w0[0]) and torch.equal(head.bias, w0[1])
        gammas.append(info["gamma"])
    assert min(gammas) >= 0 and max(gammas) <= cfg.gamma_max and max(gammas) - min(gammas) > 1.0


def test_random_direction_keeps_pofs_length():
    features, head = _tiny()
    x, y = torch.randn(64, 5), torch.randint(0, 3, (64,))
    p = PoFPerturbation(PoFConfig(weak_bn_mode="eval"))
    W, b, info = p(features, head, x, y, torch.Generator().manual_seed(3))
    Wr, br, info_r = p(features, head, x, y, torch.Generator().manual_seed(3), direction="random")
    assert info["gamma"] == info_r["gamma"]
    delta, delta_r = (
        torch.cat([(W - head.weight).flatten(), b - head.bias]),
        torch.cat([(Wr - head.weight).flatten(), br - head.bias]),
    )
    assert (
        abs(delta.norm() - delta_r.norm()) < 1e-5
        and abs(torch.cosine_similarity(delta, delta_r, 0)) < 0.9
    )


def test_weak_batchnorm_modes():
    features, head = _tiny()
    bn = features[1]
    x, y = torch.randn(64, 5) * 3 + 1, torch.randint(0, 3, (64,))
    before = bn.running_mean.clone()
    for mode in ("batch", "eval"):
        PoFPerturbation(PoFConfig(weak_bn_mode=mode))(
            features.train(), head, x, y, torch.Generator()
        )
        assert torch.equal(bn.running_mean, before) and features.training
    PoFPerturbation(PoFConfig(weak_bn_mode="train"))(features, head, x, y, torch.Generator())
    assert not torch.equal(bn.running_mean, before)


def test_rejection_cap_skips_the_perturbation():
    # one-hot features and a zero last layer: every margin grows along -g, the loss falls for ever
    features, head = nn.Identity(), nn.Linear(3, 3)
    nn.init.zeros_(head.weight), nn.init.zeros_(head.bias)
    y = torch.arange(30) % 3
    x = F.one_hot(y, 3).float()
    cfg = PoFConfig(line_search_max_lr=1e5, rejection_cap=1e4, weak_bn_mode="eval")
    W, b, info = PoFPerturbation(cfg)(features, head, x, y, torch.Generator())
    assert info["rejected"] and info["eta_max"] >= 1e4 and info["delta_norm"] == 0
    assert torch.equal(W, head.weight)
