"""The Learn page's recipes and results (analysis.learn), importable without torch: the page
draws its stored results before torch is loaded. The results are frozen dataclasses in the style of
analysis.results, so that `to_dict()` gives their plain form and `from_dict()` reads it back. They
hold numbers, lists and the analysis's own results (TopEigen, TraceResult, LastLayerHessian,
Sharpness, Landscape); the one tensor-valued field (a kept eigenvector) is in memory only. Every
one pickles, so the app can cache them (st.cache_data).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from analysis.measures.results import HessianReport, Landscape, Sharpness
from analysis.results import UNSAVED, Result
from pof.curvature.results import LastLayerHessian, TopEigen, TraceResult


@dataclass(frozen=True)
class Recipe:
    """How a tiny MLP is trained on a 2-D point set: until its training loss first falls to
    `target_loss` (checked after every step) or `max_steps` pass, so that two recipes can be
    compared at the same training loss rather than after the same number of epochs."""

    dataset: str = "moons"
    points: int = 400  # half for training, half for testing
    noise: float = 0.25
    hidden: tuple[int, ...] = (32, 32)
    optimizer: str = "sgd"  # "sgd" (heavy-ball momentum) or "sam"
    batch_size: int = 8
    lr: float = 0.1
    momentum: float = 0.9
    rho: float = 0.05  # SAM's radius
    target_loss: float = 0.1
    max_steps: int = (
        2000  # the slowest recipe (SAM, batch 4) then trains in about a second on 2 cores
    )
    seed: int = 0

    def describe(self) -> str:
        opt = f"SAM (rho {self.rho:g})" if self.optimizer == "sam" else "SGD"
        return f"{opt}, batch {self.batch_size}, lr {self.lr:g}"


# The edge-of-stability experiment (analysis.learn.edge_of_stability).
# Cohen et al. (ICLR 2021) saw it most cleanly with a squared loss and smooth activations on small
# training sets; these settings show it within a few hundred steps (tests/test_learn.py measures):
EOS_DATA = ("moons", 200, 0.25)  # its 100 training points, normalized: the inputs
EOS_HIDDEN = (32, 32)  # 2 -> 32 -> 32 -> 1, tanh, PyTorch's default initialization (seed 0)
EOS_STEPS = 1200  # full-batch gradient descent steps, no momentum, no weight decay
EOS_EVERY = 20  # lambda_max and the loss every 20 steps
EOS_TOL = 1e-3  # Lanczos' relative residual tolerance
EOS_SETTINGS = (
    "100 two-moons points (normalized) regressed onto sin(2 x1) cos(2 x2); MLP 2-32-32-1 with "
    "tanh; loss ½ · mean squared error; full-batch gradient descent, no momentum"
)


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
    # the top eigenvector as a {parameter name: torch tensor} direction, on request (in memory only)
    vector: dict | None = field(default=None, repr=False, compare=False, metadata=UNSAVED)

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
