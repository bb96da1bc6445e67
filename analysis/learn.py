"""Small experiments that teach flat minima (the app's Learn page), built only from the project's
engine: pof's point sets, MLP, optimizers, SAM step and the PoF unit; this package's Hessian
operator, Lanczos, Hutchinson trace, landscapes and sharpness measures. On the 2-D point sets each
runs in well under a second on a 2-core CPU. Results are frozen dataclasses of numbers and lists
(analysis.learn_results) that a figure builder can draw; nothing here knows about a user
interface.

Trained models are cached by their recipe and shared: every function that moves weights works on
its own copy, so two callers never see each other's displaced weights. With use_store(), trained
networks and their curvature are also kept on disk (analysis.learn_store), so that a new process
reads them instead of training and measuring again.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import threading
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from analysis.learn_results import (
    EOS_DATA,
    EOS_EVERY,
    EOS_HIDDEN,
    EOS_SETTINGS,
    EOS_STEPS,
    EOS_TOL,
    Curvature,
    DecisionMap,
    EdgeOfStability,
    EigenSlice,
    EtaCurve,
    FlatnessRow,
    FlatnessTable,
    LastLayerSummary,
    PerturbationInfo,
    PoFWalkthrough,
    Points,
    Recipe,
    RecipeCurvature,
    RescaledModel,
    RescalingReport,
    TrainingSummary,
    TrainTestSlice,
)
from analysis.learn_store import Store
from analysis.measures.hessian import HessianOperator, hutchinson_trace, top_eigenvalues
from analysis.measures.landscape import (
    Directions,
    Landscape,
    eval_tensors,
    evaluate_grid,
    grid,
    random_directions,
)
from analysis.measures.sharpness import worst_case_sharpness
from pof.config import PoFConfig, PretrainConfig
from pof.curvature.lastlayer import features_and_probs, last_layer_hessian
from pof.data.batches import Batches
from pof.data.dataset import Dataset
from pof.data.offline import point_set
from pof.method.pof import PoF, losses_along
from pof.models.networks import Classifier, mlp
from pof.training.optim import make_optimizer, plain_step, sam_step


@dataclass(frozen=True)
class Trained:
    model: Classifier  # shared by every caller of train(): copy it before moving its weights
    recipe: Recipe
    steps: int
    reached_target: bool
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    diverged: bool = (
        False  # the training loss became NaN or infinite: nothing about it can be measured
    )

    def summary(self) -> TrainingSummary:
        return TrainingSummary(
            self.steps,
            self.reached_target,
            self.train_loss,
            self.train_acc,
            self.test_loss,
            self.test_acc,
            self.diverged,
        )


@lru_cache(maxsize=16)
def toy_data(name: str = "moons", points: int = 400, noise: float = 0.25) -> Dataset:
    return point_set(name, points, noise, seed=0)


@lru_cache(maxsize=16)
def tensors(name: str, points: int, noise: float, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole split, normalized with the training statistics, as one tensor."""
    d = toy_data(name, points, noise)
    x, y, _, _ = eval_tensors(d, d.mean, d.std, split, None)
    return x, y


def _recipe_tensors(r: Recipe, split: str):
    return tensors(r.dataset, r.points, r.noise, split)


@torch.no_grad()
def _loss_acc(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    logits = model(x)
    return float(F.cross_entropy(logits, y)), float((logits.argmax(1) == y).float().mean())


_TRAINING = (
    threading.Lock()
)  # the initialization draws from torch's global generator: one at a time


_store: Store | None = None  # where trained networks and their curvature are kept on disk


def use_store(store: Store | None) -> None:
    """Keep trained networks and recipe_curvature() in `store` from now on (None: memory only)."""
    global _store
    _store = store


@lru_cache(maxsize=32)
def train(r: Recipe) -> Trained:
    """Train a fresh MLP by the recipe with the project's own optimizers and steps (SGD or SAM),
    or read it from the store. Serialized: two app sessions asking for the same recipe at once
    must get the same network."""
    if _store is None:
        with _TRAINING:
            return _train(r)

    def fresh():
        with _TRAINING:
            t = _train(r)
        return t.summary(), t.model.state_dict()

    s, state = _store.get("trained", TrainingSummary, fresh, recipe=dataclasses.asdict(r))
    # its shape from the weights, not the data (reading a point set imports scikit-learn: slow)
    weights = [k for k in state if k.startswith("features.") and k.endswith(".weight")]
    first = min(weights, key=lambda k: int(k.split(".")[1]))
    with _TRAINING:  # the initialization (overwritten) draws from torch's global generator
        model = mlp((state[first].shape[1],), state["classifier.weight"].shape[0], r.hidden)
    model.load_state_dict(state)
    model.eval()
    return Trained(model, r, *dataclasses.astuple(s)[:6], diverged=s.diverged)


def _train(r: Recipe) -> Trained:
    d = toy_data(r.dataset, r.points, r.noise)
    torch.manual_seed(r.seed)
    model = mlp(d.input_shape, d.num_classes, r.hidden)
    cfg = PretrainConfig(
        optimizer=r.optimizer,
        lr=r.lr,
        momentum=r.momentum,
        nesterov=False,
        weight_decay=0.0,
        rho=r.rho,
    )
    opt = make_optimizer(model.parameters(), cfg)
    step = sam_step(model, opt) if r.optimizer == "sam" else plain_step(model, opt)
    batches = Batches(d.x_train, d.y_train, d.mean, d.std, r.batch_size, seed=r.seed)
    x, y = _recipe_tensors(r, "train")
    steps, loss, epoch = 0, _loss_acc(model, x, y)[0], 0
    while loss > r.target_loss and steps < r.max_steps:
        for xb, yb in batches.epoch(epoch):
            model.train()
            step(xb, yb)
            steps += 1
            model.eval()
            loss = _loss_acc(model, x, y)[0]
            if not math.isfinite(loss) or loss <= r.target_loss or steps >= r.max_steps:
                break
        epoch += 1
    model.eval()
    tr, te = _loss_acc(model, x, y), _loss_acc(model, *_recipe_tensors(r, "test"))
    return Trained(
        model,
        r,
        steps,
        tr[0] <= r.target_loss,
        tr[0],
        tr[1],
        te[0],
        te[1],
        diverged=not math.isfinite(loss),
    )


# --- curvature --------------------------------------------------------------------------------


def curvature(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, probes: int = 100, keep_vector: bool = False
) -> Curvature:
    """Top Hessian eigenvalue (Lanczos, with its residual), Hutchinson trace (with its standard
    error) and the exact last-layer Hessian (its `hessian()` is what the app's Hessian figure
    reads). With keep_vector, `vector` holds the top eigenvector as a {parameter name: tensor}
    direction."""
    model = copy.deepcopy(model)
    op = HessianOperator(model, [(x, y)])
    try:
        top = top_eigenvalues(op, k=1, tol=1e-4, keep_vectors=keep_vector)
        trace = hutchinson_trace(op, n_probes=probes, per_layer=False)
    finally:
        op.close()
    Ft, P = features_and_probs(model, [(x, y)])
    last_layer = dataclasses.replace(last_layer_hessian(Ft, P, top_k=1), spectrum=None)
    vector = None
    if keep_vector:
        pieces = op.unflatten(top.vectors[0].to(torch.float32))
        vector = dict(zip(op.names, pieces, strict=True))
    return Curvature(dataclasses.replace(top, vectors=None), trace, last_layer, vector)


def _trained_finite(r: Recipe) -> Trained:
    t = train(r)
    if t.diverged:
        raise ValueError(
            f"{r.describe()} diverged (the training loss became NaN or infinite after {t.steps} "
            f"steps): there is no minimum to measure; lower the learning rate."
        )
    return t


@lru_cache(maxsize=32)
def recipe_curvature(r: Recipe) -> RecipeCurvature:
    """curvature() of train(r) on its training set, with the top eigenvector, and its worst-case
    sharpness, plain and adaptive (the latter blind to rescaling layers; see rescaled()); read
    from the store when there is one."""
    if _store is None:
        return _recipe_curvature(r)

    def fresh():
        c = _recipe_curvature(r)
        return dataclasses.replace(c, vector=None), c.vector

    c, vector = _store.get("curvature", RecipeCurvature, fresh, recipe=dataclasses.asdict(r))
    return dataclasses.replace(c, vector=vector)


def _recipe_curvature(r: Recipe) -> RecipeCurvature:
    x, y = _recipe_tensors(r, "train")
    model = _trained_finite(r).model
    c = curvature(model, x, y, keep_vector=True)
    sharpness, adaptive = (
        worst_case_sharpness(copy.deepcopy(model), x, y, rho=SHARPNESS_RHO, adaptive=adaptive)
        for adaptive in (False, True)
    )
    return RecipeCurvature(
        c.top, c.trace, c.last_layer, c.vector, sharpness=sharpness, adaptive=adaptive
    )


# --- pictures of a model -----------------------------------------------------------------------

SHARPNESS_RHO = 0.05  # the radius of the worst-case sharpness shown (SAM's default)


@torch.no_grad()
def decision_map(model: nn.Module, d: Dataset, steps: int = 90, margin: float = 0.4) -> DecisionMap:
    """P(class 1) on a grid over the data's bounding box (in the data's own coordinates)."""
    x = torch.cat([d.x_train, d.x_test])
    lo, hi = x.min(0).values - margin, x.max(0).values + margin
    gx, gy = torch.linspace(lo[0], hi[0], steps), torch.linspace(lo[1], hi[1], steps)
    xx, yy = torch.meshgrid(gx, gy, indexing="xy")
    pts = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)
    mean, std = torch.tensor(d.mean), torch.tensor(d.std)
    p = torch.softmax(model((pts - mean) / std), 1)[:, 1].reshape(steps, steps)
    return DecisionMap(gx.tolist(), gy.tolist(), p.tolist())


def points(d: Dataset, split: str = "train") -> Points:
    x, y = (d.x_train, d.y_train) if split == "train" else (d.x_test, d.y_test)
    return Points(x[:, 0].tolist(), x[:, 1].tolist(), y.tolist())


def along(
    model: nn.Module, direction: dict[str, torch.Tensor], ts: list[float], x, y, eval_set: str
) -> Landscape:
    """Loss and accuracy at w + t d for every t (analysis.measures.landscape's exact evaluator),
    on a copy."""
    model = copy.deepcopy(model)
    dirs = Directions(
        [{n: direction.get(n, torch.zeros_like(p)) for n, p in model.named_parameters()}],
        {"kind": "given", "count": 1},
    )
    return evaluate_grid(model, dirs, [ts], x, y, eval_set)


def eigen_slice(r: Recipe, width: float, steps: int = 41) -> EigenSlice:
    """Section 1: the training loss along the unit top eigenvector, next to its quadratic model
    L(0) + L'(0) t + lambda t^2 / 2, whose curvature is the top eigenvalue by definition."""
    c = recipe_curvature(r)
    lam = c.top.eigenvalues[0]
    ts = grid(-width, width, steps)
    x, y = _recipe_tensors(r, "train")
    s = along(train(r).model, c.vector, ts, x, y, "train")
    loss0 = s.loss[steps // 2]
    h = 0.01  # the curve's own slope and second derivative at t = 0, by central differences
    left, mid, right = along(train(r).model, c.vector, [-h, 0.0, h], x, y, "train").loss
    slope = (right - left) / (
        2 * h
    )  # training stopped near, not at, the bottom: a small slope remains
    return EigenSlice(
        t=ts,
        loss=s.loss,
        quadratic=[loss0 + slope * t + 0.5 * lam * t * t for t in ts],
        eigenvalue=lam,
        slope=slope,
        second_derivative=(left - 2 * mid + right) / h**2,
    )


def train_test_slice(
    r: Recipe, width: float, seed: int, shift: float = 0.0, steps: int = 41
) -> TrainTestSlice:
    """Section 2: training and test loss along one filter-normalized random direction (Li et al.
    2018, so that two models' distances are comparable), how far the test minimum sits from w, and
    how much the training loss rises at w if its landscape moves by `shift` along the direction."""
    model = _trained_finite(r).model
    d = random_directions(model, 1, seed=seed, normalization="filter").vectors[0]
    ts = grid(-width, width, steps)
    x, y = _recipe_tensors(r, "train")
    tr = along(model, d, ts, x, y, "train")
    te = along(model, d, ts, *_recipe_tensors(r, "test"), "test")
    moved, at_w = along(model, d, [-shift, 0.0], x, y, "train").loss
    k = int(np.nanargmin(te.loss))
    return TrainTestSlice(
        t=ts,
        train=tr.loss,
        test=te.loss,
        test_min_t=ts[k],
        test_at_w=te.loss[steps // 2],
        test_min=te.loss[k],
        shift_rise=moved - at_w,
    )


def surface(r: Recipe, width: float = 1.0, steps: int = 21, seed: int = 0) -> Landscape:
    """The training loss on a 2-D filter-normalized plane through the solution."""
    model = copy.deepcopy(_trained_finite(r).model)
    dirs = random_directions(model, 2, seed=seed, normalization="filter")
    axes = [grid(-width, width, steps)] * 2
    return evaluate_grid(model, dirs, axes, *_recipe_tensors(r, "train"), "train")


# --- PoF, one step at a time -------------------------------------------------------------------


def pof_walkthrough(
    model: Classifier,
    d: Dataset,
    weak_size: int,
    weak_seed: int,
    gamma: float,
    feature_steps: int,
    lr: float,
    cfg: PoFConfig | None = None,
) -> PoFWalkthrough:
    """PoF's steps (docs/method.md) on a copy of a trained 2-D classifier, every intermediate kept
    (from the PoF unit's own record): the weak batch, the exact last-layer gradient, the line
    search's bracket and grid, eta*, the perturbation for a chosen gamma, and the decision
    boundary it implies; then `feature_steps` of PoF's own feature training (the first against
    this perturbation, the rest each drawing its own weak batch and gamma, as the method does),
    with the last layer's exact Hessian before and after."""
    cfg = dataclasses.replace(cfg or PoFConfig(), weak_batch_size=weak_size)  # for every step
    model = copy.deepcopy(model)
    x, y, _, _ = eval_tensors(d, d.mean, d.std, "train", None)
    pool = Batches(d.x_train, d.y_train, d.mean, d.std, weak_size, seed=weak_seed)
    opt = torch.optim.SGD(model.features.parameters(), lr=lr, momentum=0.9)
    # PoF itself; the weak batches and gammas of its later steps are seeded by weak_seed too
    pof = PoF(model.features, model.classifier, opt, pool, cfg, seed=weak_seed)
    shown = pof.perturb(gamma=gamma, gen=torch.Generator().manual_seed(weak_seed))  # steps 1-5
    search = shown.search
    etas = np.linspace(0, 1.25 * search.eta_max, 121).tolist()
    with torch.no_grad():
        curve = losses_along(shown.A, shown.B, shown.weak_y, etas).tolist()
    perturbed = copy.deepcopy(model)
    with torch.no_grad():
        perturbed.classifier.weight.add_(shown.delta_W)
        perturbed.classifier.bias.add_(shown.delta_b)
    tx, ty, _, _ = eval_tensors(d, d.mean, d.std, "test", None)
    before = _last_layer(model, (x, y), (tx, ty))
    boundary0, boundary_perturbed = decision_map(model, d), decision_map(perturbed, d)
    if feature_steps:
        train_batches = Batches(d.x_train, d.y_train, d.mean, d.std, 128, seed=weak_seed)
        done, epoch = 0, 0
        model.train()
        while done < feature_steps:
            for xb, yb in train_batches.epoch(epoch):
                if done == 0:
                    pof.feature_step(xb, yb, shown)  # step 6 under the perturbation shown
                else:
                    pof.step(xb, yb)
                done += 1
                if done == feature_steps:
                    break
            epoch += 1
        model.eval()
    after = _last_layer(model, (x, y), (tx, ty))
    return PoFWalkthrough(
        weak=Points(
            d.x_train[shown.weak_index, 0].tolist(),
            d.x_train[shown.weak_index, 1].tolist(),
            d.y_train[shown.weak_index].tolist(),
        ),
        info=PerturbationInfo(**shown.diagnostics()),
        loss0=shown.weak_loss,
        curve=EtaCurve(etas, curve),
        bracket=EtaCurve(search.bracket, search.bracket_losses),
        grid=EtaCurve(search.grid, search.grid_losses),
        boundary=boundary0,
        boundary_perturbed=boundary_perturbed,
        boundary_after=decision_map(model, d) if feature_steps else None,
        before=before,
        after=after,
    )


def _last_layer(model, train_xy, test_xy) -> LastLayerSummary:
    """The last layer's exact Hessian on the training tensors, and loss and accuracy on both."""
    x, y = train_xy
    Ft, P = features_and_probs(model, [(x, y)])
    h = last_layer_hessian(Ft, P, top_k=1)
    loss, acc = _loss_acc(model, x, y)
    test_loss, test_acc = _loss_acc(model, *test_xy)
    return LastLayerSummary(
        top=h.top_eigenvalues[0],
        trace=h.trace,
        loss=loss,
        acc=acc,
        n_samples=h.n_samples,
        test_loss=test_loss,
        test_acc=test_acc,
    )


# --- the parameterization caveat ---------------------------------------------------------------


def rescaled(model: Classifier, alpha: float) -> Classifier:
    """Dinh et al. (2017): multiply the first linear layer (weights and bias) by alpha and the next
    one's weights by 1/alpha. ReLU(alpha z) = alpha ReLU(z) for alpha > 0, so the function is the
    same, but the parameters, and with them the Hessian, are not."""
    if alpha <= 0:
        raise ValueError("alpha must be positive: ReLU commutes only with positive scaling")
    out = copy.deepcopy(model)
    linears = [m for m in out.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        linears[0].weight.mul_(alpha)
        linears[0].bias.mul_(alpha)
        linears[1].weight.div_(alpha)
    return out


def rescaling_report(r: Recipe, alpha: float, seed: int = 0, width: float = 1.0) -> RescalingReport:
    """The same function before and after rescaling: its outputs, curvature, a filter-normalized
    slice and worst-case sharpness, plain and adaptive (Kwon et al. 2021's |w|-scaled ball)."""
    x, y = _recipe_tensors(r, "train")
    base = _trained_finite(r).model
    models, logits = {}, []
    for label, m in (("original", base), (f"rescaled, alpha {alpha:g}", rescaled(base, alpha))):
        # the original's numbers are section 1's (same probes, same radius): one network, one value
        c = recipe_curvature(r) if m is base else curvature(m, x, y)
        d = random_directions(m, 1, seed=seed, normalization="filter").vectors[0]
        with torch.no_grad():
            logits.append(m(x))
        models[label] = RescaledModel(
            curvature=Curvature(c.top, c.trace, c.last_layer),
            slice=along(m, d, grid(-width, width, 31), x, y, "train"),
            sharpness=c.sharpness
            if m is base
            else worst_case_sharpness(copy.deepcopy(m), x, y, rho=SHARPNESS_RHO),
            adaptive=c.adaptive
            if m is base
            else worst_case_sharpness(copy.deepcopy(m), x, y, rho=SHARPNESS_RHO, adaptive=True),
        )
    diff = float((logits[0] - logits[1]).abs().max())
    return RescalingReport(models, diff)


# --- does flatness predict the test loss? -------------------------------------------------------


def flatness_and_test_loss(recipes: list[Recipe]) -> FlatnessTable:
    """Top eigenvalue and test loss of several recipes, and their Spearman rank correlation: how far
    flatness goes in predicting generalization in this small setting."""
    from scipy.stats import spearmanr

    rows = []
    for r in recipes:
        t = train(r)
        rows.append(
            FlatnessRow(
                recipe=r.describe(),
                top_eigenvalue=recipe_curvature(r).top.eigenvalues[0],
                train_loss=t.train_loss,
                test_loss=t.test_loss,
                test_acc=t.test_acc,
                steps=t.steps,
                reached_target=t.reached_target,
            )
        )
    rho = spearmanr([r.top_eigenvalue for r in rows], [r.test_loss for r in rows]).statistic
    return FlatnessTable(rows, float(rho))


# --- the bundled models ------------------------------------------------------------------------


@lru_cache(maxsize=4)
def bundled(path: str) -> tuple[nn.Module, Dataset]:
    """A project checkpoint's model and its data set, loaded once and shared (copy the model before
    moving its weights, as pof_walkthrough does)."""
    from pof.models.loading import data_for, load_checkpoint

    model, meta = load_checkpoint(path)
    return model, data_for(path, meta["dataset"])


def bundled_last_layer(paths: dict[str, str]) -> dict[str, LastLayerSummary]:
    """For project checkpoints (e.g. the bundled digits SGD and SAM models): the last layer's exact
    Hessian on the whole training set, and training and test loss and accuracy."""
    from pof.models.loading import data_for, load_checkpoint

    out = {}
    for label, path in paths.items():
        model, meta = load_checkpoint(path)
        d = data_for(path, meta["dataset"])
        train_xy, test_xy = (
            eval_tensors(d, meta["mean"], meta["std"], split, None)[:2]
            for split in ("train", "test")
        )
        out[label] = _last_layer(model, train_xy, test_xy)
    return out


# --- the edge of stability ---------------------------------------------------------------------


def _half_mse(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return 0.5 * F.mse_loss(out, target)


@lru_cache(maxsize=4)
def eos_tensors() -> tuple[torch.Tensor, torch.Tensor]:
    """The edge-of-stability data: the moons' training inputs and a smooth target on them."""
    x, _ = tensors(*EOS_DATA, "train")
    return x, torch.sin(2 * x[:, :1]) * torch.cos(2 * x[:, 1:])


def eos_network(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    width = 2
    for h in EOS_HIDDEN:
        layers += [nn.Linear(width, h), nn.Tanh()]
        width = h
    return nn.Sequential(*layers, nn.Linear(width, 1))


@lru_cache(maxsize=32)
def edge_of_stability(
    eta: float, steps: int = EOS_STEPS, every: int = EOS_EVERY, seed: int = 0
) -> EdgeOfStability:
    """Cohen et al.'s edge of stability on a tiny network (settings: EOS_SETTINGS): plain
    full-batch gradient descent w <- w - eta grad L(w) on the whole training set for `steps` steps,
    with the training loss and the top eigenvalue lambda_max of the full-batch loss's Hessian every
    `every` steps. lambda_max is the project's HessianOperator (with this squared loss) and Lanczos,
    each warm-started from the previous point's eigenvector, with its residual. A quadratic of
    curvature lambda > 2 / eta would make gradient descent diverge; here lambda_max first rises
    (progressive sharpening), then hovers around 2 / eta while the loss keeps falling, not
    monotonically. Measured with these settings (1200 steps): at eta = 0.2, lambda_max goes from
    3.28 (0.33 of 2 / eta = 10) to 0.8 of it by step 360 and stays within 0.91-1.09 of it over the
    last quarter, while the loss falls from 0.118 to 0.007; at eta = 0.1 it rises more slowly, to
    0.47 of its 2 / eta = 20. Each point costs about five Hessian-vector products; one run takes
    under a second on one thread of a 2-core CPU."""
    x, t = eos_tensors()
    with _TRAINING:  # the initialization draws from torch's global generator
        model = eos_network(seed)
    with _one_thread():
        return _descend(model, x, t, eta, steps, every)


@contextlib.contextmanager
def _one_thread():
    """Thousands of tiny steps: on a busy 2-core machine two threads run them 20 times slower than
    one (the app already runs on one: app/torch_threads.py; this is for other callers)."""
    threads = torch.get_num_threads()
    if threads > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if threads > 1:
            torch.set_num_threads(threads)


def _descend(model: nn.Module, x, t, eta: float, steps: int, every: int) -> EdgeOfStability:
    """edge_of_stability()'s loop: measure, then step, until `steps` or a non-finite loss."""
    params = list(model.parameters())
    recorded, loss, lam, residual, converged = [], [], [], [], []
    start, hvps, diverged = None, 0, False
    for step in range(steps + 1):
        out = model(x)
        value = _half_mse(out, t)
        if not math.isfinite(value.item()):
            diverged = True
            break
        if step % every == 0 or step == steps:
            op = HessianOperator(model, [(x, t)], loss=_half_mse)
            try:
                top = top_eigenvalues(
                    op, k=1, tol=EOS_TOL, max_steps=60, keep_vectors=True, start=start
                )
                hvps += op.n_hvp
            finally:
                op.close()
            start = top.vectors[0]
            recorded.append(step)
            loss.append(value.item())
            lam.append(top.eigenvalues[0])
            residual.append(top.residuals[0])
            converged.append(top.converged[0])
        if step == steps:
            break
        grads = torch.autograd.grad(value, params)
        with torch.no_grad():
            for p, g in zip(params, grads, strict=True):
                p.sub_(eta * g)
    return EdgeOfStability(
        eta=eta,
        steps=recorded,
        loss=loss,
        lam_max=lam,
        residual=residual,
        converged=converged,
        hvps=hvps,
        threshold=2.0 / eta,
        diverged=diverged,
        settings=EOS_SETTINGS,
    )
