"""SAM (Foret et al., ICLR 2021) and its adaptive form ASAM (Kwon et al., ICML 2021), as a thin
wrapper around an ordinary optimizer, so its state is the base optimizer's state.

Usage:
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.05, lr=0.1, momentum=0.9)
    loss_fn(model(x), y).backward(); opt.first_step()    # climb to w + e(w)
    loss_fn(model(x), y).backward(); opt.second_step()   # descend from w, gradient at w + e(w)
"""

from __future__ import annotations

import torch


class SAM:
    def __init__(
        self, params, base_optimizer_cls, rho: float = 0.05, adaptive: bool = False, **kwargs
    ):
        if rho < 0:
            raise ValueError(f"rho must be non-negative, got {rho}")
        self.base = base_optimizer_cls(params, **kwargs)
        self.rho, self.adaptive = rho, adaptive
        self._saved: list[tuple[torch.Tensor, torch.Tensor]] = []  # (parameter, w before the climb)

    @property
    def param_groups(self):
        return self.base.param_groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.base.zero_grad(set_to_none)

    def _params(self):
        return [p for g in self.param_groups for p in g["params"] if p.grad is not None]

    @torch.no_grad()
    def first_step(self) -> None:
        params = self._params()
        # ASAM scales the ball by |w| per coordinate: e = rho * w^2 g / ||w g||.
        scaled = [(p.abs() * p.grad if self.adaptive else p.grad) for p in params]
        norms = torch.stack([torch.linalg.vector_norm(s) for s in scaled])
        norm = torch.linalg.vector_norm(norms)
        scale = self.rho / (norm + 1e-12)
        # Keep w itself: w + e - e is not w in floating point (about 7 % of float32 weights came
        # back one ulp off when the offset was subtracted), and the descent must start from w.
        self._saved = [(p, p.detach().clone()) for p in params]
        for p, s in zip(params, scaled, strict=True):
            p.add_((p.abs() * s if self.adaptive else s) * scale)
        self.zero_grad()

    @torch.no_grad()
    def second_step(self) -> None:
        for p, w in self._saved:
            p.copy_(w)
        self._saved = []
        self.base.step()
        self.zero_grad()

    def state_dict(self):
        return self.base.state_dict()

    def load_state_dict(self, state):
        self.base.load_state_dict(state)
