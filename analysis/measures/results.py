"""What the measurements and reports return: frozen results of numbers and lists, importable
without torch (as pof.curvature.results), so that a saved result is read and drawn before torch is
loaded — the app's Learn page shows its stored experiments this way. The functions that compute
them live in the modules beside this one (hessian, sharpness, landscape, crosscheck) and in
analysis.reports."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pof.curvature.results import LastLayerHessian, TopEigen, TraceResult
from pof.results import Result

MODE = "eval (BN running statistics)"


@dataclass(frozen=True)
class Density(Result):
    """The Hessian's spectral density, stochastic Lanczos quadrature (hessian.spectral_density)."""

    nodes: list[list[float]]  # per run: Ritz values (eigenvalues of the Lanczos tridiagonal)
    weights: list[list[float]]  # per run: squared first components; each run sums to 1
    grid: list[float]
    density: list[float]  # Gaussian-smoothed, averaged over runs, integrates to 1 over the grid
    sigma: float
    steps: int
    n_samples: int


@dataclass(frozen=True)
class Sharpness(Result):
    """A loss increase around the weights (sharpness.worst_case_sharpness, average_case_...)."""

    kind: str  # "worst-case", "adaptive worst-case" or "average-case"
    radius: float  # rho (worst case) or sigma (average case)
    base_loss: float
    increase: float  # max (worst case) or mean (average case) loss increase
    increase_stderr: float | None  # average case only
    max_increase: float | None  # average case: the largest of the samples
    steps: int  # ascent steps or noise samples
    eval_set: str


@dataclass(frozen=True)
class Landscape(Result):
    """Loss and accuracy on a 1-D or 2-D grid along directions (landscape.evaluate_grid)."""

    axes: list[list[float]]  # coordinates along each direction
    # len(axes[0]) values (1-D) or a len(axes[0]) x len(axes[1]) grid; NaN = not computed yet
    loss: list
    accuracy: list
    eval_set: str  # what it was evaluated on, stated
    directions: dict  # the directions' metadata
    done: int = 0
    total: int = 0
    extra: dict = field(default_factory=dict)

    def origin_loss(self) -> float:
        """The loss at coordinates 0 (the grid's middle when 0 is not on it)."""
        i0 = tuple(a.index(0.0) if 0.0 in a else len(a) // 2 for a in self.axes)
        return float(np.array(self.loss, dtype=float)[i0])


@dataclass(frozen=True)
class Agreement(Result):
    """One quantity, estimated by both (this project and PyHessian), with each one's uncertainty."""

    quantity: str  # "top eigenvalue 1", ..., "trace"
    ours: float
    ours_error: float  # residual (eigenvalue) or standard error (trace)
    pyhessian: float
    pyhessian_error: float
    relative_difference: float  # |ours - pyhessian| / max(|ours|, |pyhessian|)
    bound: float  # the largest difference the uncertainties allow
    within: bool  # |ours - pyhessian| <= bound


@dataclass(frozen=True)
class CrossCheck(Result):
    """PyHessian's numbers beside this project's (crosscheck.cross_check)."""

    rows: list[Agreement]
    eval_set: str = ""
    seed: int = 0
    probes: int = 0
    how: str = ""  # how PyHessian was called, stated


@dataclass(frozen=True)
class HessianReport(Result):
    """analysis.reports.hessian_report's result."""

    top: TopEigen  # the largest eigenvalues, sorted, with residuals
    eval_set: str = ""  # what the whole-network numbers were measured on, stated
    parameters: int = 0
    trace: TraceResult | None = None  # Hutchinson, with its standard error (and layers on request)
    density: Density | None = None
    last_layer: LastLayerHessian | None = None  # exact; None without a linear last layer
    split: str = ""  # how the model splits into features and a classifier (or why it does not)
    hessian_vector_products: int = 0
    mode: str = MODE
    cross_check: CrossCheck | None = None  # PyHessian's numbers beside these, on request


@dataclass(frozen=True)
class SharpnessReport(Result):
    """analysis.reports.sharpness_report's result."""

    measures: list[Sharpness]  # worst case, adaptive worst case, average case
