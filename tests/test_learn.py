"""The Learn page's experiments (analysis.learn) against exact answers: the full Hessian of the
tiny networks formed with torch.func, PoF's steps (docs/method.md) recomputed by hand, the
rescaled network's outputs."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from analysis import learn
from pof.config import PoFConfig
from pof.data.batches import Batches
from pof.method.pof import PoF
from pof.models.loading import data_for, load_checkpoint

TOY = dict(dataset="moons", points=200, noise=0.25, target_loss=0.15)
SHARP = learn.Recipe(batch_size=100, **TOY)
FLAT = learn.Recipe(batch_size=16, optimizer="sam", rho=0.2, **TOY)
MOONS = "assets/moons-mlp.safetensors"


def _dense_hessian(model, x, y) -> torch.Tensor:
    """The whole network's Hessian of the mean cross-entropy, exactly, in float64, on a copy."""
    model = copy.deepcopy(model).double()
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss(v):
        pieces = v.split([s.numel() for s in shapes])
        chunks = dict(
            zip(names, (c.view(s) for c, s in zip(pieces, shapes, strict=True)), strict=True)
        )
        return F.cross_entropy(torch.func.functional_call(model, chunks, (x.double(),)), y)

    return torch.autograd.functional.hessian(loss, flat, vectorize=True)


@pytest.fixture(scope="module")
def sharp():
    return learn.train(SHARP)


def test_training_stops_at_the_target_loss_and_is_cached(sharp):
    assert sharp.reached_target and sharp.train_loss <= TOY["target_loss"]
    x, y = learn.tensors("moons", 200, 0.25, "train")
    with torch.no_grad():
        assert F.cross_entropy(sharp.model(x), y).item() == pytest.approx(
            sharp.train_loss, rel=1e-6
        )
    assert learn.train(SHARP) is sharp  # the same recipe is trained once
    assert len(x) == 100 and sharp.steps > 1


def test_curvature_matches_the_exact_hessian(sharp):
    x, y = learn.tensors("moons", 200, 0.25, "train")
    c = learn.recipe_curvature(SHARP)
    evals = torch.linalg.eigvalsh(_dense_hessian(sharp.model, x, y))
    assert c.top.eigenvalues[0] == pytest.approx(float(evals[-1]), rel=1e-4)
    se = c.trace.stderr
    assert abs(c.trace.trace - float(evals.sum())) < 4 * se
    # the eigenvector it keeps is a unit vector with H v = lambda v
    v = torch.cat([t.reshape(-1) for t in c.vector.values()]).double()
    assert v.norm().item() == pytest.approx(1.0, abs=1e-5)


def test_the_curvature_of_the_slice_at_the_bottom_is_the_top_eigenvalue():
    s = learn.eigen_slice(SHARP, width=0.2, steps=41)  # t spaced 0.01
    lam, mid, h = s.eigenvalue, 20, s.t[21] - s.t[20]
    second = (s.loss[mid + 1] - 2 * s.loss[mid] + s.loss[mid - 1]) / h**2
    assert second == pytest.approx(lam, rel=0.03)
    assert s.second_derivative == pytest.approx(lam, rel=0.03)
    slope = (s.loss[mid + 1] - s.loss[mid - 1]) / (2 * h)
    assert s.slope == pytest.approx(
        slope, rel=0.05, abs=1e-4
    )  # the small slope left where training stopped
    assert s.quadratic[mid] == s.loss[mid]
    assert s.quadratic[0] == pytest.approx(s.loss[mid] - 0.2 * s.slope + lam * 0.02)


def test_small_batches_with_sam_find_a_flatter_minimum_at_the_same_training_loss(sharp):
    flat = learn.train(FLAT)
    assert abs(flat.train_loss - sharp.train_loss) < 0.01
    assert (
        learn.recipe_curvature(FLAT).top.eigenvalues[0]
        < learn.recipe_curvature(SHARP).top.eigenvalues[0] / 3
    )


def test_train_test_slice_reads_the_shift_off_the_measured_training_curve(sharp):
    s = learn.train_test_slice(SHARP, width=1.0, seed=3, shift=0.5)
    k = s.t.index(-0.5)
    assert s.shift_rise == pytest.approx(s.train[k] - s.train[20], abs=1e-6)
    assert s.test_at_w == pytest.approx(sharp.test_loss, rel=1e-5)
    assert min(s.test) == s.test_min and s.test[s.t.index(s.test_min_t)] == s.test_min


def test_rescaling_keeps_the_function_changes_the_hessian_and_not_the_invariant_measures():
    rep = learn.rescaling_report(FLAT, 5.0)
    assert rep.max_logit_change < 1e-4
    orig, scaled = rep.models.values()
    assert scaled.curvature.top.eigenvalues[0] > 2 * orig.curvature.top.eigenvalues[0]
    assert scaled.slice.loss == pytest.approx(orig.slice.loss, rel=1e-4)  # filter-normalized
    assert scaled.adaptive.increase == pytest.approx(orig.adaptive.increase, rel=1e-3)
    assert scaled.sharpness.increase != pytest.approx(orig.sharpness.increase, rel=0.05)
    with pytest.raises(ValueError, match="positive"):
        learn.rescaled(learn.train(FLAT).model, -1.0)


def test_pof_walkthrough_follows_pof_md_step_by_step():
    model, meta = load_checkpoint(MOONS)
    d = data_for(MOONS, meta["dataset"])
    w = learn.pof_walkthrough(
        model, d, weak_size=32, weak_seed=4, gamma=1.5, feature_steps=0, lr=0.01
    )
    info = w.info
    # the weak batch drawn is 32 training points
    xs = set(zip(d.x_train[:, 0].tolist(), d.x_train[:, 1].tolist(), strict=True))
    assert len(w.weak.x) == 32
    assert all(p in xs for p in zip(w.weak.x, w.weak.y, strict=True))
    # step 2 by autograd: the exact last-layer gradient on the weak batch
    mean, std = torch.tensor(d.mean), torch.tensor(d.std)
    wx = (torch.tensor([w.weak.x, w.weak.y]).T - mean) / std
    wy = torch.tensor(w.weak.label)
    W = model.classifier.weight.detach().clone().requires_grad_()
    b = model.classifier.bias.detach().clone().requires_grad_()
    with torch.no_grad():
        phi = model.features(wx)
    loss = F.cross_entropy(phi @ W.T + b, wy)
    gW, gb = torch.autograd.grad(loss, (W, b))
    assert w.loss0 == pytest.approx(loss.item(), rel=1e-5)
    assert info.grad_norm == pytest.approx(math.sqrt((gW**2).sum() + (gb**2).sum()), rel=1e-4)
    # steps 3-5: eta_max ends the doubling, eta* is the grid's first minimum, delta = gamma eta* g
    bracket = w.bracket
    assert bracket.eta[-1] == info.eta_max
    assert all(v <= w.loss0 for v in bracket.loss[:-1])
    assert bracket.loss[-1] > w.loss0 or info.eta_max >= PoFConfig().line_search_max_lr
    g = w.grid
    assert len(g.eta) == 16 and g.eta[-1] == info.eta_max
    assert info.eta_star == g.eta[g.loss.index(min(g.loss))]
    assert info.delta_norm == pytest.approx(1.5 * info.eta_star * info.grad_norm, rel=1e-5)
    # no feature steps: nothing changed
    assert w.boundary_after is None and w.after == w.before
    assert w.boundary_perturbed.p != w.boundary.p


def test_pof_walkthrough_with_gamma_zero_leaves_the_boundary_and_training_moves_the_features():
    model, meta = load_checkpoint(MOONS)
    d = data_for(MOONS, meta["dataset"])
    still = learn.pof_walkthrough(model, d, 32, 0, gamma=0.0, feature_steps=0, lr=0.01)
    assert still.info.delta_norm == 0 and still.boundary_perturbed == still.boundary
    moved = learn.pof_walkthrough(model, d, 32, 0, gamma=2.0, feature_steps=20, lr=0.01)
    assert moved.boundary_after.p != moved.boundary.p
    assert moved.after.top != moved.before.top
    assert moved.before == still.before  # the caller's model is never modified
    assert torch.equal(load_checkpoint(MOONS)[0].classifier.weight, model.classifier.weight)


def test_a_fixed_gamma_gives_the_perturbation_pof_md_defines():
    torch.manual_seed(0)
    feats, head = torch.nn.Linear(3, 4), torch.nn.Linear(4, 2)
    x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    pool = Batches(x, y, (0.0,) * 3, (1.0,) * 3, 16)  # mean 0, std 1: the rows of x themselves
    opt = torch.optim.SGD(feats.parameters(), lr=0.01)
    p = PoF(feats, head, opt, pool, PoFConfig(weak_batch_size=16)).perturb(gamma=0.5)
    scale = 0.5 * p.search.eta_star
    with torch.no_grad():
        phi = feats(x[p.weak_index])
    Wr, br = (
        head.weight.detach().clone().requires_grad_(),
        head.bias.detach().clone().requires_grad_(),
    )
    gW, gb = torch.autograd.grad(F.cross_entropy(phi @ Wr.T + br, p.weak_y), (Wr, br))
    assert p.gamma == 0.5
    torch.testing.assert_close(head.weight + p.delta_W, head.weight - scale * gW)
    torch.testing.assert_close(head.bias + p.delta_b, head.bias - scale * gb)


def test_flatness_and_test_loss_rank_correlation_is_computed_from_the_rows():
    from scipy.stats import spearmanr

    recipes = [SHARP, FLAT, learn.Recipe(batch_size=8, **TOY)]
    t = learn.flatness_and_test_loss(recipes)
    assert [r.recipe for r in t.rows] == [r.describe() for r in recipes]
    assert t.rows[0].top_eigenvalue == learn.recipe_curvature(SHARP).top.eigenvalues[0]
    expected = spearmanr(
        [r.top_eigenvalue for r in t.rows], [r.test_loss for r in t.rows]
    ).statistic
    assert t.spearman == pytest.approx(expected)


def test_a_diverging_recipe_is_flagged_and_nothing_is_measured_on_it():
    r = learn.Recipe(batch_size=4, lr=30.0, max_steps=300, **TOY)
    t = learn.train(r)
    assert t.diverged and not t.reached_target
    with pytest.raises(ValueError, match="diverged"):
        learn.recipe_curvature(r)


def test_sessions_training_one_recipe_at_once_get_one_network():
    """The app serves several sessions from threads; a recipe asked for by all of them at once must
    come out the same network for each (its initialization draws from torch's global generator)."""
    import threading

    recipe = learn.Recipe(batch_size=32, seed=11, **TOY)
    results = []
    for _ in range(3):
        learn.train.cache_clear()  # each thread trains for itself, as callers racing past the cache
        threads = [
            threading.Thread(target=lambda: results.append(learn.train(recipe))) for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    first = results[0].model.state_dict()
    for r in results[1:]:
        assert r.steps == results[0].steps
        assert all(torch.equal(first[k], v) for k, v in r.model.state_dict().items())


# --- the edge of stability ----------------------------------------------------------------------
# Settings (analysis.learn.EOS_*): the 100 normalized training points of two moons (200 points,
# noise 0.25) regressed onto sin(2 x1) cos(2 x2); MLP 2-32-32-1 with tanh, torch's default
# initialization with seed 0; loss ½ · mean squared error; plain full-batch gradient descent (no
# momentum) for 1200 steps, λ_max every 20. The phenomenon needs a squared loss and a smooth
# activation (with cross-entropy λ_max falls again as the loss goes to zero) and η large enough
# that 2/η is within reach of progressive sharpening: at η = 0.1 it is not reached in 1200 steps.
EOS_ETA = 0.2


def _mse_dense_top(model, x, t) -> float:
    """The largest eigenvalue of the full Hessian of ½ · MSE, formed exactly in float64."""
    model = copy.deepcopy(model).double()
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss(v):
        chunks = dict(
            zip(
                names,
                (
                    c.view(s)
                    for c, s in zip(v.split([s.numel() for s in shapes]), shapes, strict=True)
                ),
                strict=True,
            )
        )
        return 0.5 * F.mse_loss(
            torch.func.functional_call(model, chunks, (x.double(),)), t.double()
        )

    return float(
        torch.linalg.eigvalsh(torch.autograd.functional.hessian(loss, flat, vectorize=True))[-1]
    )


def test_full_batch_gradient_descent_rises_to_the_edge_of_stability_and_stays_there():
    r = learn.edge_of_stability(EOS_ETA)
    assert r.threshold == 2 / EOS_ETA and not r.diverged
    assert r.steps[0] == 0 and r.steps[-1] == learn.EOS_STEPS and len(r.steps) == len(r.lam_max)
    # every λ_max is Lanczos-converged; the first is the exact Hessian's top eigenvalue
    assert all(r.converged) and max(r.residual) <= learn.EOS_TOL * max(r.lam_max)
    x, t = learn.eos_tensors()
    assert r.lam_max[0] == pytest.approx(_mse_dense_top(learn.eos_network(0), x, t), rel=1e-3)
    # λ_max rises: it starts well below 2/η (measured: 3.28, 0.33 of 10)
    assert r.lam_max[0] < 0.5 * r.threshold
    # then it stays within ±20 % of 2/η over the last quarter (measured: 0.91-1.09 of 2/η)
    last = r.lam_max[len(r.lam_max) * 3 // 4 :]
    assert all(0.8 * r.threshold <= lam <= 1.2 * r.threshold for lam in last), [
        round(lam / r.threshold, 3) for lam in last
    ]
    # while the loss keeps falling overall (not monotonically: it spikes at the edge)
    quarter = len(r.loss) // 4
    assert r.loss[-1] < r.loss[0] / 10  # measured: 0.118 -> 0.007
    assert sum(r.loss[-quarter:]) < sum(r.loss[quarter : 2 * quarter])
    assert sum(r.loss[quarter : 2 * quarter]) < sum(r.loss[:quarter])


def test_a_smaller_step_sharpens_for_longer_below_its_higher_edge():
    big, small = learn.edge_of_stability(EOS_ETA), learn.edge_of_stability(EOS_ETA / 2)
    assert small.threshold == 2 * big.threshold and not small.diverged
    # progressive sharpening: the smaller step's λ_max keeps rising and never reaches its 2/η
    # (measured: 3.28 -> 9.3, 0.16 -> 0.47 of 20)
    assert max(small.lam_max) < small.threshold
    assert small.lam_max[-1] > 2.5 * small.lam_max[0]
    # the larger step reaches 0.9 of its edge early (measured: by step 420 of 1200)
    first = next(
        s for s, lam in zip(big.steps, big.lam_max, strict=True) if lam >= 0.9 * big.threshold
    )
    assert first < learn.EOS_STEPS // 2
    assert learn.edge_of_stability(EOS_ETA) is big  # cached
