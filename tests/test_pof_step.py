"""The PoF unit (pof.method.PoF) against exact, naive references: its line search against the
obvious loop, its gradient against autograd, its record against an independent recomputation, its
controls against plain frozen-head fine-tuning, and a step against the method's pieces composed in
the order the pre-refactor code ran them (same random stream, same bits)."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pof.config import PoFConfig
from pof.data.batches import Batches, epoch_generator
from pof.method.pof import PoF, last_layer_grad, line_search


def naive_line_search(feats, y, layer: nn.Linear, cfg: PoFConfig):
    """Steps 2-4 (docs/method.md) written the obvious way: write the weights into the layer and
    call it."""
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
        assert got.eta_max == ref[0], (seed, got, ref)
        tie = 10 * torch.finfo(dtype).eps
        if ref[2] > tie:
            assert got.eta_star == ref[1], (seed, got, ref)
        else:  # the loss is 0 to rounding at several grid points: a true tie, either is right
            assert naive_loss_at(feats, y, layer, got.eta_star) <= tie, (seed, got, ref)
            saturated += 1
        # A - eta B and F (W0 - eta gW)^T round differently
        tol = 1e-12 if dtype == torch.float64 else 2e-5
        assert abs(got.loss_star - ref[2]) <= tol * max(1.0, abs(ref[2])), (seed, got, ref)
        # what the search reports having evaluated is the doubling and the grid of docs/method.md
        assert got.bracket == [cfg.line_search_init_lr * 2**k for k in range(len(got.bracket))]
        assert got.bracket[-1] == got.eta_max and len(got.bracket_losses) == len(got.bracket)
        assert got.grid == [
            k * got.eta_max / cfg.num_partitions for k in range(1, 1 + len(got.grid))
        ]
        assert len(got.grid) == cfg.num_partitions
        assert (
            got.loss_star == min(got.grid_losses) == got.grid_losses[got.grid.index(got.eta_star)]
        )
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


def _pool(x, y, batch_size=32):
    """x, y as PoF's weak-batch pool; mean 0 and std 1: a drawn example is the row of x itself."""
    return Batches(x, y, (0.0,) * x.shape[1], (1.0,) * x.shape[1], batch_size)


def _unit(features, head, x, y, cfg, **kw):
    opt = torch.optim.SGD(features.parameters(), lr=0.1, momentum=0.9)
    return PoF(features, head, opt, _pool(x, y), cfg, **kw)


def _norm(a, b):
    return torch.cat([a.flatten(), b]).norm().item()


def test_perturbation_is_minus_gamma_eta_star_g_and_leaves_w0_alone():
    features, head = _tiny()
    x, y = torch.randn(64, 5), torch.randint(0, 3, (64,))
    cfg = PoFConfig(weak_bn_mode="eval", weak_batch_size=48)
    w0 = (head.weight.clone(), head.bias.clone())
    gammas = []
    for seed in range(40):
        p = _unit(features, head, x, y, cfg, seed=seed).perturb()
        with torch.no_grad():
            feats = features.eval()(x[p.weak_index])
            _, _, gW, gb = last_layer_grad(feats, y[p.weak_index], head.weight, head.bias)
        scale = p.gamma * p.search.eta_star
        assert torch.allclose(p.delta_W, -scale * gW, atol=1e-6)
        assert torch.allclose(p.delta_b, -scale * gb, atol=1e-6)
        assert abs(p.delta_norm - scale * _norm(gW, gb)) < 1e-5
        assert torch.equal(head.weight, w0[0]) and torch.equal(head.bias, w0[1])
        gammas.append(p.gamma)
    assert min(gammas) >= 0 and max(gammas) <= cfg.gamma_max and max(gammas) - min(gammas) > 1.0


def test_random_direction_keeps_pofs_length():
    features, head = _tiny()
    x, y = torch.randn(64, 5), torch.randint(0, 3, (64,))
    cfg = PoFConfig(weak_bn_mode="eval")
    p = _unit(features, head, x, y, cfg, seed=3).perturb()
    r = _unit(features, head, x, y, cfg, seed=3, perturbation="random").perturb()
    assert r.gamma == p.gamma and torch.equal(r.weak_index, p.weak_index)  # one draw, two uses
    delta = torch.cat([p.delta_W.flatten(), p.delta_b])
    delta_r = torch.cat([r.delta_W.flatten(), r.delta_b])
    assert abs(delta.norm() - delta_r.norm()) < 1e-5 and p.delta_norm > 0
    assert abs(torch.cosine_similarity(delta, delta_r, 0)) < 0.9
    assert r.delta_norm == pytest.approx(p.delta_norm, rel=1e-5)


def test_weak_batchnorm_modes():
    features, head = _tiny()
    bn = features[1]
    x, y = torch.randn(64, 5) * 3 + 1, torch.randint(0, 3, (64,))
    before = bn.running_mean.clone()
    for mode in ("batch", "eval"):
        _unit(features.train(), head, x, y, PoFConfig(weak_bn_mode=mode)).perturb()
        assert torch.equal(bn.running_mean, before) and features.training
    _unit(features, head, x, y, PoFConfig(weak_bn_mode="train")).perturb()
    assert not torch.equal(bn.running_mean, before)


def test_rejection_cap_skips_the_perturbation():
    # one-hot features and a zero last layer: every margin grows along -g, the loss falls for ever
    features, head = nn.Identity(), nn.Linear(3, 3)
    nn.init.zeros_(head.weight), nn.init.zeros_(head.bias)
    y = torch.arange(30) % 3
    x = F.one_hot(y, 3).float()
    cfg = PoFConfig(line_search_max_lr=1e5, rejection_cap=1e4, weak_bn_mode="eval")
    unused = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.0)  # Identity: no weights
    p = PoF(features, head, unused, _pool(x, y), cfg).perturb()
    assert p.rejected and p.search.eta_max >= 1e4 and p.delta_norm == 0
    assert torch.equal(head.weight + p.delta_W, head.weight)
    assert p.diagnostics()["rejected"] is True


def test_a_step_records_what_an_independent_computation_finds():
    """Every field of the record recomputed the obvious way: autograd for g, the naive loop for the
    line search, and the feature step by hand; w0 is bit for bit what it was."""
    features, head = _tiny()
    head.requires_grad_(False)
    torch.manual_seed(2)
    x, y = torch.randn(200, 5), torch.randint(0, 3, (200,))
    xb, yb = x[:32], y[:32]
    cfg = PoFConfig(weak_batch_size=64, weak_bn_mode="batch")  # the weak forward leaves BN alone
    unit = _unit(features, head, x, y, cfg, seed=5)
    W0, b0 = head.weight.clone(), head.bias.clone()
    ref = copy.deepcopy(features)  # the features as the feature step finds them
    rec = unit.step(xb, yb)
    p = rec.perturbation
    # 1. the weak batch: weak_batch_size examples of the training set, with their labels
    assert p.weak_index.shape == (64,) and torch.equal(p.weak_y, y[p.weak_index])
    # 2. its features (batch statistics) and the gradient of its loss at w0, by autograd
    with torch.no_grad():
        phi = copy.deepcopy(ref).train()(x[p.weak_index])
    W, b = W0.clone().requires_grad_(), b0.clone().requires_grad_()
    loss = F.cross_entropy(phi @ W.T + b, p.weak_y)
    gW, gb = torch.autograd.grad(loss, (W, b))
    assert p.weak_loss == pytest.approx(loss.item(), rel=1e-6)
    torch.testing.assert_close(p.grad_W, gW)
    torch.testing.assert_close(p.grad_b, gb)
    assert p.grad_norm == pytest.approx(_norm(gW, gb), rel=1e-5)
    with torch.no_grad():  # A - eta B are the logits at w0 - eta g
        torch.testing.assert_close(p.A - 0.7 * p.B, phi @ (W0 - 0.7 * gW).T + (b0 - 0.7 * gb))
    # 3, 4. the doubling loop and the grid, written out: same eta_max, eta* the grid's minimum
    layer = nn.Linear(8, 3)
    with torch.no_grad():
        layer.weight.copy_(W0), layer.bias.copy_(b0)
    eta_max, eta_star, best = naive_line_search(phi, p.weak_y, layer, cfg)
    assert (p.search.eta_max, p.search.eta_star) == (eta_max, eta_star)
    assert p.search.loss_star == pytest.approx(best, rel=1e-5)
    naive = [naive_loss_at(phi, p.weak_y, layer, e) for e in p.search.grid]
    assert p.search.grid_losses == pytest.approx(naive, rel=1e-5)
    assert min(naive) == pytest.approx(naive[p.search.grid.index(eta_star)], rel=1e-6)
    # 5. delta = -gamma eta* g, so |delta| = gamma eta* |g|
    assert 0 <= p.gamma <= cfg.gamma_max and not p.rejected
    scale = p.gamma * eta_star
    torch.testing.assert_close(p.delta_W, -scale * gW)
    torch.testing.assert_close(p.delta_b, -scale * gb)
    assert p.delta_norm == pytest.approx(scale * p.grad_norm, rel=1e-5)
    # 6. one SGD step of the features under w0 + delta (bit for bit), and w0 untouched
    assert torch.equal(head.weight, W0) and torch.equal(head.bias, b0)
    opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    logits = F.linear(ref(xb), W0 + p.delta_W, b0 + p.delta_b)
    loss = F.cross_entropy(logits, yb)
    loss.backward()
    opt.step()
    assert rec.loss == loss.item() and rec.correct == int((logits.argmax(1) == yb).sum())
    for a, r in zip(features.state_dict().values(), ref.state_dict().values(), strict=True):
        assert torch.equal(a, r)
    assert rec.metrics() == {"loss": rec.loss, "correct": rec.correct, **p.diagnostics()}


def test_perturbation_none_is_plain_frozen_head_finetuning():
    features, head = _tiny()
    head.requires_grad_(False)
    ref = copy.deepcopy(features)
    x, y = torch.randn(96, 5), torch.randint(0, 3, (96,))
    opt = torch.optim.SGD(features.parameters(), lr=0.1, momentum=0.9)
    unit = PoF(features, head, opt, None, perturbation="none")  # no weak batch is ever drawn
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    for i in range(3):
        xb, yb = x[32 * i : 32 * (i + 1)], y[32 * i : 32 * (i + 1)]
        rec = unit.step(xb, yb)
        logits = head(ref(xb))
        loss = F.cross_entropy(logits, yb)
        ref_opt.zero_grad()
        loss.backward()
        ref_opt.step()
        assert rec.perturbation is None
        assert rec.metrics() == {
            "loss": loss.item(),
            "correct": int((logits.argmax(1) == yb).sum()),
        }
    for a, r in zip(features.state_dict().values(), ref.state_dict().values(), strict=True):
        assert torch.equal(a, r)
    with pytest.raises(ValueError, match="weak"):
        PoF(features, head, opt, None)


def _pre_refactor_steps(features, head, opt, weak, train, cfg, seed, perturbation):
    """The code path before PoF was one unit (FrozenHeadStep + PoFPerturbation), composed from the
    public pieces in its order: per epoch its own generator; a weak batch, then gamma, then (random
    control) the direction, all from it; the feature step under a separate w0 + delta."""
    out = []
    for epoch in range(2):
        gen = epoch_generator(seed, epoch, stream=1)
        for xb, yb in train.epoch(epoch):
            wx, wy = weak.sample(cfg.weak_batch_size, gen)
            with torch.no_grad():
                W0, b0 = head.weight, head.bias
                feats = features(wx).to(W0.dtype)  # weak_bn_mode "train": no context needed
                loss0, A, gW, gb = last_layer_grad(feats, wy, W0, b0)
                s = line_search(A, feats @ gW.T + gb, wy, float(loss0), cfg)
                gamma = float(torch.rand((), generator=gen)) * cfg.gamma_max
                scale = 0.0 if s.eta_max >= cfg.rejection_cap else gamma * s.eta_star
                dW, db = -scale * gW, -scale * gb
                if perturbation == "random":
                    rW = torch.randn(gW.shape, generator=gen).to(W0)
                    rb = torch.randn(gb.shape, generator=gen).to(W0)
                    length = torch.sqrt((dW**2).sum() + (db**2).sum())
                    norm = torch.sqrt((rW**2).sum() + (rb**2).sum())
                    dW, db = rW * (length / norm), rb * (length / norm)
                W, b = W0 + dW, b0 + db
            logits = F.linear(features(xb), W, b)
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            delta_norm = float(torch.sqrt((dW**2).sum() + (db**2).sum()))
            out.append((loss.item(), s.eta_star, gamma, delta_norm))
    return out


@pytest.mark.parametrize("perturbation", ["pof", "random"])
def test_steps_are_the_pre_refactor_path_bit_for_bit(perturbation):
    torch.manual_seed(3)
    x, y = torch.randn(150, 5), torch.randint(0, 3, (150,))
    cfg = PoFConfig(weak_batch_size=40)
    train = _pool(x, y, batch_size=32)
    runs = []
    for composed in (False, True):
        features, head = _tiny()
        head.requires_grad_(False)
        opt = torch.optim.SGD(features.parameters(), lr=0.1, momentum=0.9, nesterov=True)
        if composed:
            out = _pre_refactor_steps(features, head, opt, _pool(x, y), train, cfg, 7, perturbation)
        else:
            unit = PoF(features, head, opt, _pool(x, y), cfg, perturbation=perturbation, seed=7)
            out = []
            for epoch in range(2):
                unit.start_epoch(epoch)
                for xb, yb in train.epoch(epoch):
                    rec = unit.step(xb, yb)
                    p = rec.perturbation
                    out.append((rec.loss, p.search.eta_star, p.gamma, p.delta_norm))
        runs.append((out, features.state_dict()))
    (unit_out, unit_w), (ref_out, ref_w) = runs
    assert len(unit_out) == 10
    assert unit_out == ref_out  # losses, eta*, gamma and |delta| of every step
    for k in ref_w:
        assert torch.equal(unit_w[k], ref_w[k]), k
