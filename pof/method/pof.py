"""PoF, the method (Sato et al., ICML 2022; docs/method.md, "One step"), in one unit.

Usage:
    pof = PoF(model.features, model.classifier, optimizer, weak=Batches(x_train, y_train, ...))
    for x, y in batches:
        record = pof.step(x, y)   # a PoFStepRecord: loss, eta_max, eta*, gamma, |delta|, ...

`optimizer` holds the feature extractor's parameters only; the last layer w0 = (W0, b0) is read,
never written. The controls are the same unit with one switch: perturbation="none" is the
frozen-head fine-tune (delta = 0), perturbation="random" puts PoF's |delta| along a Gaussian
direction.

The line search never touches the network again: with weak-batch features F and the last-layer
gradient g = (gW, gb), the logits along -g are affine in eta, z(eta) = A - eta B with
A = F W0^T + b0 and B = F gW^T + gb, so each candidate eta costs one element-wise pass over an N x C
matrix, and all candidates are evaluated in one batched call.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import PoFConfig
from ..data.batches import Batches, epoch_generator

PERTURBATIONS = ("pof", "none", "random")
# the post-training methods (pof.config.METHODS) that are this unit, and their switch
PERTURBATION_OF_METHOD = {"pof": "pof", "finetune-frozen": "none", "random-direction": "random"}


# --- what a step reports ------------------------------------------------------------------------


@dataclass(frozen=True)
class LineSearch:
    """Steps 3 and 4: every eta the search evaluated on the weak batch, and what it chose."""

    eta_max: float  # where the doubling stopped
    eta_star: float  # the grid's first minimum
    loss_star: float  # L'(w0 - eta* g)
    bracket: list[float]  # the doubling's etas, init * 2^k, up to and including eta_max
    bracket_losses: list[float]
    grid: list[float]  # k * eta_max / num_partitions, k = 1..num_partitions
    grid_losses: list[float]


@dataclass(frozen=True)
class Perturbation:
    """Steps 1-5 for one weak batch: delta = -gamma eta* g, and everything that chose it."""

    delta_W: torch.Tensor  # the perturbation of the last layer (zero when rejected)
    delta_b: torch.Tensor
    weak_index: torch.Tensor  # the weak batch: which training examples (drawn with replacement)
    weak_y: torch.Tensor
    A: torch.Tensor  # weak-batch logits at w0, N x C
    B: torch.Tensor  # and along -g: z(eta) = A - eta B
    grad_W: torch.Tensor  # g, the exact gradient of the weak-batch loss at w0
    grad_b: torch.Tensor
    search: LineSearch
    weak_loss: float  # L'(w0)
    grad_norm: float  # |g|
    gamma: float
    delta_norm: float  # |delta| = gamma eta* |g| (0 when rejected)
    rejected: bool  # eta_max reached the rejection cap: no perturbation this step

    def diagnostics(self) -> dict:
        """The numbers a post-training run logs for the step (plain floats and a bool)."""
        return {
            "eta_max": self.search.eta_max,
            "eta_star": self.search.eta_star,
            "gamma": self.gamma,
            "delta_norm": self.delta_norm,
            "grad_norm": self.grad_norm,
            "weak_loss": self.weak_loss,
            "weak_loss_star": self.search.loss_star,
            "rejected": self.rejected,
        }


@dataclass(frozen=True)
class PoFStepRecord:
    """One training step: the loss on the training batch under w0 + delta, and the perturbation."""

    loss: float
    correct: int  # training-batch predictions under w0 + delta that were right
    perturbation: Perturbation | None  # None for perturbation="none"

    def metrics(self) -> dict:
        """What the training loop logs: loss, correct, and the perturbation's diagnostics."""
        extra = self.perturbation.diagnostics() if self.perturbation is not None else {}
        return {"loss": self.loss, "correct": self.correct, **extra}


# --- the method ---------------------------------------------------------------------------------


class PoF:
    """Post-training of the feature extractor under a perturbed, frozen last layer.

    features:   the feature extractor phi(x; theta), the only part trained
    head:       the last layer w0 = (W0, b0), an nn.Linear; read, never written
    optimizer:  over theta (the features' parameters) only
    weak:       the training set as a pool to draw weak batches from (augmented like training);
                not needed for perturbation="none"
    perturbation: "pof"; "none" (the frozen-head fine-tune, delta = 0); "random" (delta of PoF's
                length in a Gaussian direction: tests that the data-driven direction matters)
    seed, rank: the weak batches and gammas come from this unit's own generator, one per
                (seed, epoch, rank), so that every rank draws its own (docs/method.md, "Several
                processes") and an epoch replays exactly on resume
    features_train: the module the feature step calls (features wrapped for data parallelism);
                the weak forward calls `features` itself
    """

    def __init__(
        self,
        features: nn.Module,
        head: nn.Linear,
        optimizer: torch.optim.Optimizer,
        weak: Batches | None,
        cfg: PoFConfig | None = None,
        *,
        perturbation: str = "pof",
        seed: int = 0,
        rank: int = 0,
        features_train: nn.Module | None = None,
    ):
        if perturbation not in PERTURBATIONS:
            raise ValueError(f"perturbation must be one of {PERTURBATIONS}, got {perturbation!r}")
        if perturbation != "none" and weak is None:
            raise ValueError(f'perturbation="{perturbation}" draws weak batches: give `weak`')
        self.features, self.head, self.optimizer, self.weak = features, head, optimizer, weak
        self.features_train = features if features_train is None else features_train
        self.cfg = cfg or PoFConfig()
        self.perturbation, self.seed, self.rank = perturbation, seed, rank
        self.start_epoch(0)

    def start_epoch(self, epoch: int) -> None:
        """Reseed the weak-batch and gamma stream for `epoch` (stream 0 is the data order's)."""
        self.gen = epoch_generator(self.seed, epoch, stream=1 + self.rank)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> PoFStepRecord:
        """All of docs/method.md's steps for one training batch (x, y)."""
        p = None if self.perturbation == "none" else self.perturb()  # steps 1-5
        return self.feature_step(x, y, p)  # step 6

    @torch.no_grad()
    def perturb(
        self, gamma: float | None = None, gen: torch.Generator | None = None
    ) -> Perturbation:
        """Steps 1-5: the perturbation delta of the last layer, from a fresh weak batch.
        `gamma`: a fixed scale instead of the draw from U(0, gamma_max) (to show one step);
        `gen`: draw the weak batch (and gamma, direction) from it instead of the unit's stream."""
        cfg, gen = self.cfg, self.gen if gen is None else gen
        W0, b0 = self.head.weight, self.head.bias
        # 1. the weak batch B': uniformly from the training set, independently of (x, y)
        weak_x, weak_y, weak_index = self.weak.sample_indexed(cfg.weak_batch_size, gen)
        # 2. its features, without gradients for theta, and the exact last-layer gradient g
        with _WeakBN(self.features, cfg.weak_bn_mode):
            feats = self.features(weak_x).to(W0.dtype)
        loss0, A, gW, gb = last_layer_grad(feats, weak_y, W0, b0)
        # 3, 4. doubling bracket for eta_max, then the grid's best eta*, on z(eta) = A - eta B
        B = feats @ gW.T + gb
        search = line_search(A, B, weak_y, float(loss0), cfg)
        # 5. gamma ~ U(0, gamma_max) and delta = -gamma eta* g (none when the search ran away)
        if gamma is None:
            gamma = float(torch.rand((), generator=gen)) * cfg.gamma_max
        rejected = search.eta_max >= cfg.rejection_cap
        scale = 0.0 if rejected else gamma * search.eta_star
        dW, db = -scale * gW, -scale * gb
        if self.perturbation == "random":  # the ablation: the same length, a Gaussian direction
            rW = torch.randn(gW.shape, generator=gen).to(W0)
            rb = torch.randn(gb.shape, generator=gen).to(W0)
            length = torch.sqrt((dW**2).sum() + (db**2).sum())
            norm = torch.sqrt((rW**2).sum() + (rb**2).sum())
            dW, db = rW * (length / norm), rb * (length / norm)
        return Perturbation(
            delta_W=dW,
            delta_b=db,
            weak_index=weak_index,
            weak_y=weak_y,
            A=A,
            B=B,
            grad_W=gW,
            grad_b=gb,
            search=search,
            weak_loss=float(loss0),
            grad_norm=float(torch.sqrt((gW**2).sum() + (gb**2).sum())),
            gamma=gamma,
            delta_norm=float(torch.sqrt((dW**2).sum() + (db**2).sum())),
            rejected=bool(rejected),
        )

    def feature_step(
        self, x: torch.Tensor, y: torch.Tensor, p: Perturbation | None
    ) -> PoFStepRecord:
        """Step 6: one optimizer step on theta for the loss on (x, y) under w0 + delta (under w0
        when p is None). w0 + delta is a new tensor: w0 itself is never written, so the next step
        starts from it exactly, with nothing to restore."""
        W, b = self.head.weight, self.head.bias
        if p is not None:
            with torch.no_grad():
                W, b = W + p.delta_W, b + p.delta_b
        logits = F.linear(self.features_train(x), W, b)
        loss = F.cross_entropy(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return PoFStepRecord(loss.item(), int((logits.argmax(1) == y).sum()), p)


# --- the pieces, public for the analysis and the tests ------------------------------------------


def last_layer_grad(feats: torch.Tensor, y: torch.Tensor, W: torch.Tensor, b: torch.Tensor):
    """Mean cross-entropy at (W, b) and its exact gradient, in closed form: (loss, logits, gW, gb).
    dL/dz = (softmax(z) - onehot(y)) / N, so gW = (dL/dz)^T F and gb = dL/dz summed over the batch.
    """
    logits = feats @ W.T + b
    loss = F.cross_entropy(logits, y)
    dz = torch.softmax(logits, dim=1)
    dz[torch.arange(len(y), device=y.device), y] -= 1
    dz /= len(y)
    return loss, logits, dz.T @ feats, dz.sum(0)


def losses_along(
    A: torch.Tensor, B: torch.Tensor, y: torch.Tensor, etas: list[float]
) -> torch.Tensor:
    """Mean cross-entropy of logits A - eta B for every eta, in one batched call: (len(etas),).
    Per sample, logsumexp(z) - z_y: the same arithmetic as log_softmax at the label, never
    negative, and 3x faster on a CPU than cross_entropy on the (K, N, C) tensor."""
    eta = torch.tensor(etas, dtype=A.dtype, device=A.device).view(-1, 1, 1)
    z = A.unsqueeze(0) - eta * B.unsqueeze(0)  # (K, N, C)
    z_y = z.gather(2, y.view(1, -1, 1).expand(len(etas), -1, 1)).squeeze(2)
    return (torch.logsumexp(z, dim=2) - z_y).mean(1)


def line_search(
    A: torch.Tensor, B: torch.Tensor, y: torch.Tensor, loss0: float, cfg: PoFConfig
) -> LineSearch:
    """Steps 3 and 4 of docs/method.md on affine logits.

    Bracket: eta = init; while L(eta) <= L(0) and eta < max: eta *= 2. The sequence of etas the
    loop can visit is known in advance (init * 2^k up to the first one >= max), so all of them are
    evaluated at once and the loop's stopping point is read off; then the grid k * eta_max / P."""
    # the etas are exact Python floats (init * 2^k, then k * eta_max / P), as a loop makes them
    etas = [cfg.line_search_init_lr]
    while etas[-1] < cfg.line_search_max_lr:
        etas.append(etas[-1] * 2)
    losses = losses_along(A, B, y, etas).tolist()
    stop = next(
        i
        for i, (e, v) in enumerate(zip(etas, losses, strict=True))
        if v > loss0 or e >= cfg.line_search_max_lr
    )
    eta_max = etas[stop]
    grid = [k * eta_max / cfg.num_partitions for k in range(1, cfg.num_partitions + 1)]
    grid_losses = losses_along(A, B, y, grid).tolist()
    k = grid_losses.index(min(grid_losses))  # the first minimum, as a loop with a strict "<" keeps
    return LineSearch(
        eta_max, grid[k], grid_losses[k], etas[: stop + 1], losses[: stop + 1], grid, grid_losses
    )


class _WeakBN:
    """Batch-norm mode for the weak-batch forward (see PoFConfig.weak_bn_mode)."""

    def __init__(self, module: nn.Module, mode: str):
        self.module, self.mode = module, mode
        self.bns = [
            m
            for m in module.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
        ]

    def __enter__(self):
        self.was = self.module.training
        if self.mode == "eval":
            self.module.eval()
        elif self.mode == "batch":
            self.saved = [
                (m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone())
                for m in self.bns
            ]

    def __exit__(self, *exc):
        if self.mode == "eval":
            self.module.train(self.was)
        elif self.mode == "batch":
            for m, (mean, var, n) in zip(self.bns, self.saved, strict=True):
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
                m.num_batches_tracked.copy_(n)
