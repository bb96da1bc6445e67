"""SAM's two steps against a hand computation, and the weights it climbed from restored bit for
bit."""

import pytest
import torch
import torch.nn.functional as F

from pof.method.sam import SAM


def _problem(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))
    x, y = torch.randn(32, 5), torch.randint(0, 3, (32,))
    return model, x, y


def _grads(model, x, y, params):
    loss = F.cross_entropy(torch.func.functional_call(model, params, (x,)), y)
    return torch.autograd.grad(loss, list(params.values()))


@pytest.mark.parametrize("adaptive", [False, True])
def test_one_sam_step_is_the_hand_computed_one(adaptive):
    model, x, y = _problem()
    rho, lr = 0.05, 0.1
    w = {n: p.detach().clone().double() for n, p in model.named_parameters()}
    model64 = model.double()
    # by hand, in float64: e = rho T^2 g / |T g| (T = |w| for ASAM, else 1); w <- w - lr g(w + e)
    g = _grads(model64, x.double(), y, {n: v.requires_grad_() for n, v in w.items()})
    t = [w[n].abs() if adaptive else torch.ones_like(w[n]) for n in w]
    norm = torch.sqrt(sum(((ti * gi) ** 2).sum() for ti, gi in zip(t, g, strict=True)))
    climbed = {
        n: (w[n] + rho * ti**2 * gi / norm).detach() for (n, ti, gi) in zip(w, t, g, strict=True)
    }
    g_sharp = _grads(model64, x.double(), y, {n: v.requires_grad_() for n, v in climbed.items()})
    expected = {n: (w[n] - lr * gs).detach() for n, gs in zip(w, g_sharp, strict=True)}

    opt = SAM(model64.parameters(), torch.optim.SGD, rho=rho, adaptive=adaptive, lr=lr)
    F.cross_entropy(model64(x.double()), y).backward()
    opt.first_step()
    for n, p in model64.named_parameters():  # the climb lands on w + e
        torch.testing.assert_close(p.detach(), climbed[n], rtol=1e-12, atol=1e-12)
    F.cross_entropy(model64(x.double()), y).backward()
    opt.second_step()
    for n, p in model64.named_parameters():
        torch.testing.assert_close(p.detach(), expected[n], rtol=1e-12, atol=1e-12)


def test_the_descent_starts_from_w_bit_for_bit():
    """With lr 0 the step changes nothing: w + e is undone by restoring a copy, not by -e."""
    model, x, y = _problem(1)
    before = [p.detach().clone() for p in model.parameters()]
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.5, lr=0.0)
    for _ in range(3):
        F.cross_entropy(model(x), y).backward()
        opt.first_step()
        assert any(
            not torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True)
        )  # it did climb
        F.cross_entropy(model(x), y).backward()
        opt.second_step()
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True))
