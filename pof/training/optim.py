"""The pieces a training step is made of: the learning-rate schedule, the optimizer (Nesterov SGD
or SAM around it), and one step of each (SAM with its batch-norm statistics held still)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..method.sam import SAM


def lr_schedule(lr: float, schedule: str, epochs: int, milestones: list[int], decay: float):
    """The learning rate at a fractional epoch t: "constant", "cosine" (annealed to 0 at `epochs`)
    or "step" (times `decay` at each milestone reached)."""

    def at(t: float) -> float:
        if schedule == "constant":
            return lr
        if schedule == "cosine":
            return 0.5 * lr * (1 + math.cos(math.pi * min(t, epochs) / epochs))
        return lr * decay ** sum(int(t) >= m for m in milestones)

    return at


def make_optimizer(params, cfg) -> object:
    """SGD (Nesterov where momentum > 0) with cfg's rate, momentum and weight decay; SAM around it
    when cfg.optimizer is "sam"."""
    kwargs = dict(
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov and cfg.momentum > 0,
        weight_decay=cfg.weight_decay,
    )
    if cfg.optimizer == "sam":
        return SAM(params, torch.optim.SGD, rho=cfg.rho, adaptive=cfg.adaptive, **kwargs)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, **kwargs)
    raise ValueError(f"Unknown optimizer {cfg.optimizer!r}; use sgd or sam.")


class FrozenBNStats:
    """Keep BN running statistics unchanged during SAM's second forward pass (it sees perturbed
    weights)."""

    def __init__(self, model):
        self.bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def __enter__(self):
        self.saved = [m.momentum for m in self.bns]
        for m in self.bns:
            m.momentum = 0.0

    def __exit__(self, *exc):
        for m, mom in zip(self.bns, self.saved, strict=True):
            m.momentum = mom


def _result(loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> dict:
    return {"loss": loss.item(), "correct": (logits.argmax(1) == y).sum().item()}


def plain_step(model, optimizer):
    """One optimizer step on a batch's mean cross-entropy."""

    def step(xb, yb):
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return _result(loss, logits, yb)

    return step


def sam_step(model, optimizer: SAM):
    """SAM's two passes on one batch: climb along the gradient, descend with the gradient there."""

    def step(xb, yb):
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
        loss.backward()
        optimizer.first_step()
        with FrozenBNStats(model):
            F.cross_entropy(model(xb), yb).backward()
        optimizer.second_step()
        return _result(loss, logits, yb)

    return step
