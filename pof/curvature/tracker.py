"""Curvature over time: what a training job records, point by point, on a fixed probe subset.

At each point (every K optimizer steps or at each epoch's end, once before the first step and once
after the last)
the tracker measures on the same probe subset of the training data, in eval mode:

- the whole network's top Hessian eigenvalue with its residual, by Lanczos warm-started from the
  previous point's eigenvector (weights move little between points; on the digits CNN at the
  tracker's tolerance this takes 0.70 times the products of a cold start, benchmarks/RESULTS.md);
- Hutchinson's trace of the whole network with its standard error, and every layer's trace from
  the same probe vectors (each layer's diagonal block: the layer's sharpness);
- the last linear layer's top eigenvalue and trace, exactly (the closed form of
  pof.curvature.lastlayer), when the model has one;
- the learning rate in force and the stability threshold it sets.

Tracking never changes training: the probe subset and every random vector come from generators of
their own (seeded from the run's seed and the step), the model's mode is restored and nothing is
written into `.grad`. A point depends only on (weights, step, previous eigenvector), so a resumed
run, given the eigenvector saved with its resume state, records the same series.

The stability threshold (Cohen et al., ICLR 2021): gradient descent at rate eta on a quadratic
diverges along a direction of curvature lambda once lambda > 2/eta; with heavy-ball momentum beta
the bound is (2 + 2 beta)/eta, with Nesterov momentum (2 + 2 beta)/((1 + 2 beta) eta). L2 weight
decay wd adds wd to every eigenvalue of the loss's Hessian, so the bound on the loss's own
eigenvalue is lowered by wd. It is exact for full-batch gradient descent; with minibatches the top
eigenvalue usually settles below it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..results import Result
from .lanczos import top_eigenvalues
from .lastlayer import features_and_probs, last_layer_hessian
from .operators import HessianOperator
from .trace import LayerCurvature, hutchinson_trace

TOL = 1e-3  # Lanczos stops once the Ritz residual is below TOL * lambda
MAX_STEPS = 60  # ... or after this many products
PROBE_STREAM = 0x5EED  # the probe subset's generator is (seed, this): never the training's


def stability_threshold(lr: float, momentum: float = 0.0, nesterov: bool = False, wd=0.0) -> float:
    """The largest eigenvalue of the loss's Hessian that (momentum) gradient descent at rate `lr`
    keeps stable on a quadratic; see the module."""
    if nesterov and momentum > 0:
        bound = (2 + 2 * momentum) / ((1 + 2 * momentum) * lr)
    else:
        bound = (2 + 2 * momentum) / lr
    return bound - wd


def threshold_rule(momentum: float, nesterov: bool, wd: float) -> str:
    """The threshold's formula, in words a figure can show."""
    if momentum <= 0:
        rule = "2/η"
    elif nesterov:
        rule = f"(2+2β)/((1+2β)η), β = {momentum:g} (Nesterov)"
    else:
        rule = f"(2+2β)/η, β = {momentum:g}"
    return rule + (f" − wd ({wd:g})" if wd else "")


@dataclass(frozen=True)
class CurvaturePoint(Result):
    step: int  # optimizer steps done when it was measured (0: before training)
    epoch: float  # step / steps per epoch
    lr: float  # the learning rate in force
    threshold: float  # the stability threshold at that rate (see the module)
    top_eigenvalue: float  # the whole network's, by Lanczos
    top_residual: float  # |H v - lambda v|, |v| = 1
    top_converged: bool
    lanczos_steps: int
    warm: bool  # started from the previous point's eigenvector
    trace: float  # Hutchinson, whole network
    trace_stderr: float
    layers: list[LayerCurvature]  # each layer's block trace (same probes), in network order
    last_layer_top: float | None  # exact; None when the model has no linear classifier
    last_layer_trace: float | None
    hvp: int  # Hessian-vector products this point cost (Lanczos + residual + trace probes)
    seconds: float


@dataclass
class Tracker:
    """Measures `CurvaturePoint`s of `model` on the probe batch (x, y); see the module.

    `classifier`: the model's last linear layer as a pof.models.split.Split (None: the last-layer
    numbers are left out and `missing_last_layer` says why)."""

    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    every: int | None  # optimizer steps between points; None: at each epoch's end
    probes: int  # Hutchinson probe vectors per point
    seed: int
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    split: object | None = None
    missing_last_layer: str | None = None
    vector: torch.Tensor | None = field(default=None, repr=False)  # the last top eigenvector

    def due(self, step: int, steps_per_epoch: int, total_steps: int) -> bool:
        """Whether a point is recorded after `step` optimizer steps: at the cadence, and at the
        end of training whatever the cadence."""
        return step % (self.every or steps_per_epoch) == 0 or step == total_steps

    def point(self, step: int, epoch: float, lr: float) -> CurvaturePoint:
        started = time.perf_counter()
        modes = [(m, m.training) for m in self.model.modules()]  # each module's, as training set it
        # the whole network's Hessian, also over layers the job keeps frozen (PoF's classifier),
        # so that every method's series measures the same matrix
        frozen = [p for p in self.model.parameters() if not p.requires_grad]
        for p in frozen:
            p.requires_grad_(True)
        try:
            return self._point(step, epoch, lr, started)
        finally:
            for p in frozen:
                p.requires_grad_(False)
                p.grad = None
            for m, training in modes:
                m.training = training

    def _point(self, step: int, epoch: float, lr: float, started: float) -> CurvaturePoint:
        op = HessianOperator(self.model, [(self.x, self.y)], F.cross_entropy)
        try:
            warm = self.vector is not None
            top = top_eigenvalues(
                op,
                1,
                tol=TOL,
                max_steps=MAX_STEPS,
                seed=_seed(self.seed, step, 1),
                start=self.vector,
                keep_vectors=True,
            )
            self.vector = top.vectors[0].detach().clone()
            tr = hutchinson_trace(op, self.probes, seed=_seed(self.seed, step, 2), per_layer=True)
            n_hvp = op.n_hvp
        finally:
            op.close()
        last_top = last_trace = None
        if self.split is not None:
            Ft, P = features_and_probs(self.model, [(self.x, self.y)], self.split)
            exact = last_layer_hessian(Ft, P, top_k=1)
            last_top, last_trace = exact.top_eigenvalues[0], exact.trace
        return CurvaturePoint(
            step=step,
            epoch=epoch,
            lr=lr,
            threshold=stability_threshold(lr, self.momentum, self.nesterov, self.weight_decay),
            top_eigenvalue=top.eigenvalues[0],
            top_residual=top.residuals[0],
            top_converged=top.converged[0],
            lanczos_steps=top.iterations,
            warm=warm,
            trace=tr.trace,
            trace_stderr=tr.stderr,
            layers=tr.layers,
            last_layer_top=last_top,
            last_layer_trace=last_trace,
            hvp=n_hvp,
            seconds=time.perf_counter() - started,
        )

    def state(self) -> dict[str, torch.Tensor]:
        """What a resume needs (saved with the run's resume state): the last eigenvector."""
        return {} if self.vector is None else {"vector": self.vector.contiguous()}

    def load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        v = tensors.get("vector")
        n = sum(p.numel() for p in self.model.parameters())
        self.vector = v if v is not None and v.numel() == n and bool(v.isfinite().all()) else None

    def setup(self) -> dict:
        """How the series is measured, stated once in the run folder."""
        return {
            "every": self.every,
            "samples": len(self.y),
            "probes": self.probes,
            "tol": TOL,
            "max_steps": MAX_STEPS,
            "mode": "eval (batch norm: running statistics), mean cross-entropy",
            "parameters": "all, frozen ones included",
            "momentum": self.momentum,
            "nesterov": self.nesterov,
            "weight_decay": self.weight_decay,
            "threshold_rule": threshold_rule(self.momentum, self.nesterov, self.weight_decay),
            "classifier": None if self.split is None else self.split.classifier_name,
            "missing_last_layer": self.missing_last_layer,
        }


def probe_indices(n_train: int, samples: int, seed: int) -> list[int]:
    """The probe subset: `samples` distinct training examples drawn by a generator of its own."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + PROBE_STREAM)
    return sorted(torch.randperm(n_train, generator=gen)[:samples].tolist())


def _seed(seed: int, step: int, stream: int) -> int:
    return (seed * 1_000_003 + step) * 7 + stream + 1_000_000_007


def probe_memory(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes a probe batch `x` needs for its Hessian-vector products, estimated from one sample's
    activations: the double-backward graph keeps about three copies of them."""
    sizes = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: sizes.append(_numel(out)))
        for m in model.modules()
        if not list(m.children())
    ]
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x[:1])
    finally:
        model.train(was)
        for h in hooks:
            h.remove()
    per_sample = sum(sizes) * x.element_size()
    params = sum(p.numel() for p in model.parameters()) * 4
    return 3 * per_sample * len(x) + (MAX_STEPS + 4) * params


def _numel(out) -> int:
    if isinstance(out, torch.Tensor):
        return out.numel()
    if isinstance(out, (tuple, list)):
        return sum(_numel(o) for o in out)
    return 0
