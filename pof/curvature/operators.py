"""Curvature as linear operators: a symmetric matrix known only through its products with vectors.

`HessianOperator` is the Hessian of the mean loss (cross-entropy by default) over a fixed list of
batches, in eval mode (batch norm uses its running statistics, so it is the Hessian of the
deterministic eval-mode loss); `BlockOperator` is one layer's diagonal block of it. `layer_groups`
groups a model's parameters by the module that owns them (a layer with its bias).

The Hessian-vector products are written here rather than taken from PyHessian (PyPI 0.1), whose
public API cannot serve them: it offers a product only as `dataloader_hv_product`, which rebuilds
the graph for every product; its single-batch graph is reachable only through its attributes; its
constructor accumulates into `.grad` (stale gradients double the result) and leaves the model in
eval mode. Here the gradient graph is built with `torch.autograd.grad`, never stored in `.grad`,
and the model's mode is restored on `close()`. The products are the same arithmetic as PyHessian's
(batches weighted by their size), so the numbers agree with it to rounding
(benchmarks/analysis_speed.py measures both).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn


class CurvatureOperator(Protocol):
    """A symmetric matrix over some parameters, known through products with flat vectors."""

    params: list[torch.Tensor]  # the parameters it acts on, in order (a flat vector spans them)
    n_samples: int  # the examples its loss averages over

    @property
    def dim(self) -> int: ...

    def matvec(self, flat: torch.Tensor) -> torch.Tensor: ...


class HessianOperator:
    """v -> H v for the mean cross-entropy over `batches` (weighted by batch size), in eval mode.
    `loss` replaces the cross-entropy (a mean over the batch, called as loss(outputs, targets)),
    e.g. for a regression loss."""

    def __init__(
        self,
        model: nn.Module,
        batches: list[tuple[torch.Tensor, torch.Tensor]],
        loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
    ):
        self.model = model
        self.loss = loss
        self.was_training = model.training
        model.eval()
        self.batches = list(batches)
        self.n_samples = sum(len(y) for _, y in self.batches)
        self.names = [n for n, p in model.named_parameters() if p.requires_grad]
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.n_hvp = 0
        # one batch: its gradient graph is built once and reused by every product
        self._grads = self._gradient(*self.batches[0]) if len(self.batches) == 1 else None

    def _gradient(self, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor | None]:
        loss = self.loss(self.model(x), y)
        return list(torch.autograd.grad(loss, self.params, create_graph=True, allow_unused=True))

    def _grad_of_grad(self, grads, v, retain: bool) -> list[torch.Tensor]:
        """d(grads . v)/d params; a parameter the loss does not depend on gets zeros."""
        used = [(g, u) for g, u in zip(grads, v, strict=True) if g is not None and g.requires_grad]
        if not used:
            return [torch.zeros_like(p) for p in self.params]
        hv = torch.autograd.grad(
            [g for g, _ in used],
            self.params,
            [u for _, u in used],
            retain_graph=retain,
            allow_unused=True,
        )
        return [
            torch.zeros_like(p) if h is None else h for p, h in zip(self.params, hv, strict=True)
        ]

    @property
    def dim(self) -> int:
        return sum(p.numel() for p in self.params)

    def hvp(self, v: list[torch.Tensor]) -> list[torch.Tensor]:
        """H v with v shaped like the parameters."""
        self.n_hvp += 1
        if self._grads is not None:
            return self._grad_of_grad(self._grads, v, retain=True)
        total = [torch.zeros_like(p) for p in self.params]
        for x, y in self.batches:
            hv = self._grad_of_grad(self._gradient(x, y), v, retain=False)
            total = [t + h * float(len(y)) for t, h in zip(total, hv, strict=True)]
        return [t / float(self.n_samples) for t in total]

    def unflatten(self, flat: torch.Tensor) -> list[torch.Tensor]:
        out, i = [], 0
        for p in self.params:
            out.append(flat[i : i + p.numel()].view_as(p).to(p.dtype))
            i += p.numel()
        return out

    def matvec(self, flat: torch.Tensor) -> torch.Tensor:
        """H v on flat vectors (the Krylov methods below work on one vector, not a list)."""
        return torch.cat([h.reshape(-1) for h in self.hvp(self.unflatten(flat))]).to(flat.dtype)

    def close(self) -> None:
        """Free the kept gradient graph and give the model its mode back."""
        self._grads = None
        self.model.zero_grad(set_to_none=True)
        self.model.train(self.was_training)


class BlockOperator:
    """The diagonal block of H for a subset of parameters: v_block -> (H [v_block; 0])_block."""

    def __init__(self, op: CurvatureOperator, idx: list[int]):
        self.op, self.idx = op, idx
        self.params = [op.params[j] for j in idx]
        self.n_samples = op.n_samples

    @property
    def dim(self) -> int:
        return sum(p.numel() for p in self.params)

    def matvec(self, flat: torch.Tensor) -> torch.Tensor:
        full, i = [torch.zeros_like(p) for p in self.op.params], 0
        for j in self.idx:
            n = self.op.params[j].numel()
            full[j] = flat[i : i + n].view_as(self.op.params[j]).to(self.op.params[j].dtype)
            i += n
        hv = self.op.hvp(full)
        return torch.cat([hv[j].reshape(-1) for j in self.idx]).to(flat.dtype)


def rademacher(n: int, gen, like: torch.Tensor) -> torch.Tensor:
    return (torch.randint(0, 2, (n,), generator=gen) * 2 - 1).to(like)


_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm, nn.LocalResponseNorm)


def kind_of(mod: nn.Module) -> str:
    """conv, linear, batchnorm, norm (other normalizations) or other, by class; modules that are not
    torch.nn layers (a torch.export program's submodules are plain `Module`s, a user's own layer)
    are recognized by their weight: 3-D and more conv, 2-D linear, 1-D a normalization (batchnorm
    when it keeps running statistics)."""
    if isinstance(mod, nn.modules.conv._ConvNd):
        return "conv"
    if isinstance(mod, nn.Linear):
        return "linear"
    if isinstance(mod, nn.modules.batchnorm._BatchNorm):
        return "batchnorm"
    if isinstance(mod, _NORMS):
        return "norm"
    if type(mod) is not nn.Module and type(mod).__module__.startswith("torch.nn.modules"):
        # a torch.nn layer of another kind (embedding, attention, ...): its shapes would mislead
        return "other"
    weight = mod._parameters.get("weight")
    if weight is None:
        return "other"
    if weight.ndim >= 3:
        return "conv"
    if weight.ndim == 2:
        return "linear"
    return "batchnorm" if "running_var" in mod._buffers else "norm"


def layer_groups(model: nn.Module, names: list[str]) -> list[tuple[str, str, list[int]]]:
    """Parameters grouped by the module that owns them: (module name, kind, indices into names),
    in the order the parameters are registered. A layer's bias is folded into its layer;
    batch-norm scale and shift form their own group."""
    modules = dict(model.named_modules())
    groups: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        groups.setdefault(n.rpartition(".")[0], []).append(i)
    return [(g, kind_of(modules[g]) if g in modules else "other", idx) for g, idx in groups.items()]
