"""The Learn page's results (analysis.learn): frozen dataclasses in the style of analysis.results,
so that `to_dict()` gives their plain form and `from_dict()` reads it back. They hold numbers, lists
and the analysis's own results (TopEigen, TraceResult, LastLayerHessian, Sharpness, Landscape);
the one tensor-valued field (a kept eigenvector) is in memory only. Every one pickles, so the app
can cache them (st.cache_data).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from analysis.measures.hessian import TopEigen, TraceResult
from analysis.measures.landscape import Landscape
from analysis.measures.sharpness import Sharpness
from analysis.reports import HessianReport
from analysis.results import UNSAVED, Result
from pof.curvature.lastlayer import LastLayerHessian


@dataclass(frozen=True)
class TrainingSummary(Result):
    """How the training of a recipe ended (analysis.learn.Trained without its model)."""

    steps: int
    reached_target: bool
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    diverged: bool = False  # the training loss became NaN or infinite


@dataclass(frozen=True)
class Curvature(Result):
    """Top Hessian eigenvalue (Lanczos, with its residual), Hutchinson trace (with its standard
    error) and the exact last-layer Hessian (without its full spectrum)."""

    top: TopEigen
    trace: TraceResult
    last_layer: LastLayerHessian
    # the top eigenvector as a {parameter name: tensor} direction, on request (in memory only)
    vector: dict[str, torch.Tensor] | None = field(
        default=None, repr=False, compare=False, metadata=UNSAVED
    )

    def hessian(self) -> HessianReport:
        """The same numbers as the report type the app's Hessian figure reads."""
        return HessianReport(self.top, trace=self.trace, last_layer=self.last_layer)


@dataclass(frozen=True, kw_only=True)
class RecipeCurvature(Curvature):
    """A recipe's curvature on its training set, with its worst-case sharpness, plain and adaptive
    (the latter blind to rescaling layers)."""

    sharpness: Sharpness
    adaptive: Sharpness


@dataclass(frozen=True)
class EigenSlice(Result):
    """The training loss along the unit top eigenvector and its quadratic model
    L(0) + L'(0) t + eigenvalue t^2 / 2."""

    t: list[float]
    loss: list[float]
    quadratic: list[float]
    eigenvalue: float  # the top eigenvalue (Lanczos): the quadratic model's curvature
    slope: float  # L'(0), by central differences
    second_derivative: float  # L''(0), by central differences


@dataclass(frozen=True)
class TrainTestSlice(Result):
    """Training and test loss along one filter-normalized random direction."""

    t: list[float]
    train: list[float]
    test: list[float]
    test_min_t: float  # where along the direction the test loss is lowest
    test_at_w: float  # the test loss at the trained weights (t = 0)
    test_min: float
    shift_rise: float  # the training loss at -shift minus that at 0


@dataclass(frozen=True)
class DecisionMap(Result):
    """P(class 1) on a grid (p[j][i] at x[i], y[j]), in the data's own coordinates."""

    x: list[float]
    y: list[float]
    p: list[list[float]]


@dataclass(frozen=True)
class Points(Result):
    """2-D points and their labels."""

    x: list[float]
    y: list[float]
    label: list[int]


@dataclass(frozen=True)
class DigitsPair(Result):
    """The bundled digits models' LastLayerSummary by label (SGD, SAM)."""

    models: dict[str, LastLayerSummary]


@dataclass(frozen=True)
class Picture(Result):
    """A network's decision map over its training points."""

    map: DecisionMap
    points: Points


@dataclass(frozen=True)
class LastLayerSummary(Result):
    """The last layer's exact Hessian (top eigenvalue, trace) on the training set, with the model's
    training and test loss and accuracy."""

    top: float
    trace: float
    loss: float  # training
    acc: float  # training
    n_samples: int  # training examples the Hessian averages over
    test_loss: float
    test_acc: float


@dataclass(frozen=True)
class PerturbationInfo(Result):
    """The numbers of one PoF perturbation (pof.method.pof.Perturbation.diagnostics())."""

    eta_max: float
    eta_star: float
    gamma: float
    delta_norm: float
    grad_norm: float
    weak_loss: float
    weak_loss_star: float
    rejected: bool


@dataclass(frozen=True)
class EtaCurve(Result):
    """The weak-batch loss at steps eta along -g."""

    eta: list[float]
    loss: list[float]


@dataclass(frozen=True)
class PoFWalkthrough(Result):
    """docs/method.md's steps on a 2-D classifier, every intermediate kept."""

    weak: Points  # the weak batch
    info: PerturbationInfo
    loss0: float  # the weak-batch loss at w0
    curve: EtaCurve  # the loss along -g, densely
    bracket: EtaCurve  # the doubling search up to eta_max
    grid: EtaCurve  # the points in (0, eta_max] eta* is chosen from
    boundary: DecisionMap  # with w0
    boundary_perturbed: DecisionMap  # with w0 + delta
    boundary_after: DecisionMap | None  # with w0 after the feature steps; None without any
    before: LastLayerSummary
    after: LastLayerSummary


@dataclass(frozen=True)
class RescaledModel(Result):
    """One model of the rescaling experiment: curvature, a filter-normalized slice and worst-case
    sharpness, plain and adaptive."""

    curvature: Curvature
    slice: Landscape
    sharpness: Sharpness
    adaptive: Sharpness


@dataclass(frozen=True)
class RescalingReport(Result):
    """The same function before and after rescaling ({label: RescaledModel}, the original first)."""

    models: dict[str, RescaledModel]
    max_logit_change: float  # the largest change of any output on the training points


@dataclass(frozen=True)
class FlatnessRow(Result):
    """One recipe's flatness and generalization."""

    recipe: str
    top_eigenvalue: float
    train_loss: float
    test_loss: float
    test_acc: float
    steps: int
    reached_target: bool


@dataclass(frozen=True)
class FlatnessTable(Result):
    """Several recipes and the Spearman rank correlation of top eigenvalue and test loss."""

    rows: list[FlatnessRow]
    spearman: float


@dataclass(frozen=True)
class EdgeOfStability(Result):
    """Full-batch gradient descent at step size eta, measured every few steps: the training loss
    and the top Hessian eigenvalue of the full-batch loss (Lanczos, with its residual
    |H v - lambda v| and whether it met its tolerance). Gradient descent on a quadratic with
    curvature lambda diverges once lambda > 2 / eta: `threshold`."""

    eta: float
    steps: list[int]  # the steps measured (0: the initialization)
    loss: list[float]  # the full-batch training loss at each
    lam_max: list[float]  # the top Hessian eigenvalue at each
    residual: list[float]  # its residual |H v - lambda v| (unit v)
    converged: list[bool]  # residual <= tol * lambda
    hvps: int  # Hessian-vector products spent on all the eigenvalues together
    threshold: float  # 2 / eta
    diverged: bool = False  # the loss became NaN or infinite (measured up to there)
    settings: str = ""  # the data, network and loss, in words
