"""The options of every analysis, declared once: each field's `option(default, help)` makes its
command-line flag (pof.options), and each config checks its own values when it is built, so a
notebook, the app and the command line are refused the same way, before any work starts."""

from __future__ import annotations

from dataclasses import dataclass

from analysis.measures.landscape import grid
from analysis.measures.layers import MAX_STEPS, PROBES, TOL
from pof import validate as check
from pof.options import option


def hessian_options(
    top_k=1, probes=2, density_steps=2, density_runs=1, tol=1e-4, seed=0, min_probes=1
) -> None:
    """Ranges shared by every Hessian measurement. Lanczos keeps one vector of all parameters per
    step, so step counts are capped where the basis alone would outgrow memory."""
    check.positive_int("top_k", top_k)
    if top_k > 100:
        raise check.ConfigError(
            f"top_k is {top_k}: Lanczos finds at most ~100 of the largest eigenvalues reliably "
            f"in its 200 steps; use at most 100."
        )
    why = " (Hutchinson probes)" if min_probes < 2 else " (two for a standard error)"
    check.positive_int("probes", probes, min_probes, why)
    if probes > 100_000:
        raise check.ConfigError(
            f"probes is {probes}: each is a Hessian-vector product; use at most 100000."
        )
    check.positive_int("density_steps", density_steps, 2)
    if density_steps > 2000:
        raise check.ConfigError(
            f"density_steps is {density_steps}: the Lanczos basis holds that many copies of the "
            f"parameters; use at most 2000."
        )
    check.positive_int("density_runs", density_runs)
    if density_runs > 1000:
        raise check.ConfigError(f"density_runs is {density_runs}; use at most 1000.")
    check.finite("tol", tol, 0, 1, lo_open=True)
    check.positive_int("seed", seed, 0)
    if seed >= 2**32:
        raise check.ConfigError(f"seed must be below 2^32, got {seed}.")


def _max_steps(name: str, steps: int) -> None:
    check.positive_int(name, steps)
    if steps > 10_000:
        raise check.ConfigError(
            f"{name} is {steps}: each step keeps a vector of every parameter; use at most 10000."
        )


@dataclass(frozen=True)
class EvalConfig:
    """What a single-checkpoint command measures on, and where."""

    split: str = option("train", "which split to evaluate on", choices=("train", "test"))
    samples: int | None = option(None, "use this many images (a seeded subset; default all)")
    batch_size: int | None = option(
        None,
        "evaluation batch size (default: the largest that fits, found by halving; "
        "hessian and layers: 1000)",
    )
    seed: int = option(0, "seed for subsets, probes and directions")
    device: str = option("auto", "cpu, cuda, mps or auto (CUDA when present)")

    def __post_init__(self):
        from pof.device import check_device

        for name in ("samples", "batch_size"):
            if getattr(self, name) is not None:
                check.positive_int(f"--{name.replace('_', '-')}", getattr(self, name))
        check_device(self.device)

    @property
    def hessian_batch(self) -> int:
        return self.batch_size or 1000


@dataclass(frozen=True)
class HessianConfig(EvalConfig):
    samples: int | None = option(1000, "use this many images (a seeded subset)")
    top_k: int = option(1, "how many of the largest eigenvalues")
    tol: float = option(1e-4, "relative residual for the eigenvalues")
    trace: bool = option(False, "Hutchinson trace with its standard error")
    probes: int = option(100, "Rademacher probes for the trace")
    per_layer: bool = option(False, "each layer's block trace and top eigenvalue")
    density: bool = option(False, "spectral density (stochastic Lanczos quadrature)")
    density_steps: int = option(80, "Lanczos steps of the density")
    density_runs: int = option(1, "Lanczos runs (random starts) averaged by the density")
    cross_check: bool = option(
        False,
        "also run PyHessian's own eigenvalues() and trace() on the same model, data, seed and "
        "number of probes (implies --trace), and show both with their agreement",
    )

    def __post_init__(self):
        super().__post_init__()
        hessian_options(
            self.top_k, self.probes, self.density_steps, self.density_runs, self.tol, self.seed
        )


@dataclass(frozen=True)
class LayersConfig(EvalConfig):
    samples: int | None = option(1000, "use this many images (a seeded subset)")
    probes: int = option(PROBES, "Rademacher probes of the one trace pass")
    tol: float = option(TOL, "relative Ritz residual that stops each Lanczos run")
    traces_only: bool = option(
        False,
        "leave out the blocks' top eigenvalues: every layer's trace for --probes products in all "
        "(for large models, where each block's eigenvalue costs a few full-network products)",
    )
    max_steps: int = option(MAX_STEPS, "at most this many Lanczos steps per eigenvalue")

    def __post_init__(self):
        super().__post_init__()
        hessian_options(probes=self.probes, tol=self.tol, seed=self.seed, min_probes=2)
        _max_steps("--max-steps", self.max_steps)


def _range(name: str, lo_hi) -> None:
    if not isinstance(lo_hi, (list, tuple)) or len(lo_hi) != 2:
        raise check.ConfigError(f"{name} takes two numbers, LO and HI.")
    lo, hi = (check.finite(f"{name} {end}", x) for end, x in zip(("LO", "HI"), lo_hi, strict=True))
    if not lo < hi:
        raise check.ConfigError(f"{name} {lo:g} {hi:g}: LO must be below HI.")


@dataclass(frozen=True)
class LandscapeConfig(EvalConfig):
    split: str = option("test", "which split to evaluate on", choices=("train", "test"))
    samples: int | None = option(2000, "use this many images (a seeded subset)")
    dims: int = option(1, "a 1-D slice or a 2-D surface", choices=(1, 2))
    range: tuple[float, float] = option(
        (-1.0, 1.0), "coordinates from LO to HI along each direction", cli=False
    )
    steps: int = option(41, "points per axis")
    normalization: str = option(
        "filter", "how directions are scaled", choices=("filter", "layer", "none")
    )
    include_bias_bn: bool = option(False, "move biases and BN parameters too")
    # option() returns a dataclasses.Field (default None), not a shared list
    layers: list[str] | None = option(
        None, "only these parameter-name prefixes move, e.g. classifier"
    )

    def __post_init__(self):
        super().__post_init__()
        hessian_options(seed=self.seed)
        _range("--range", self.range)
        check.grid_size("--steps", self.steps, self.dims, self.samples)

    @property
    def axes(self) -> list[list[float]]:
        """The grid's coordinates along each of the `dims` directions."""
        return [grid(self.range[0], self.range[1], self.steps)] * self.dims


@dataclass(frozen=True)
class InterpolationConfig(EvalConfig):
    split: str = option("test", "which split to evaluate on", choices=("train", "test"))
    range: tuple[float, float] = option(
        (-0.5, 1.5),
        "coefficients from LO to HI (0: the first checkpoint, 1: the second)",
        cli=False,
    )
    steps: int = option(41, "points on the line")

    def __post_init__(self):
        super().__post_init__()
        hessian_options(seed=self.seed)
        _range("--range", self.range)
        check.grid_size("--steps", self.steps, 1, self.samples)

    @property
    def alphas(self) -> list[float]:
        """The coefficients of the line's points."""
        return grid(self.range[0], self.range[1], self.steps)


@dataclass(frozen=True)
class SharpnessConfig(EvalConfig):
    samples: int | None = option(2000, "use this many images (a seeded subset)")
    rho: float = option(0.05, "L2 radius of the worst case (adaptive: of |w|-scaled)")
    steps: int = option(5, "projected-gradient ascent steps")
    sigma: float = option(0.01, "standard deviation of the Gaussian weight noise")
    noise_samples: int = option(20, "Gaussian noise draws of the average case")

    def __post_init__(self):
        super().__post_init__()
        hessian_options(seed=self.seed)
        check.finite("--rho", self.rho, 0, lo_open=True)
        check.finite("--sigma", self.sigma, 0, lo_open=True)
        check.positive_int("--steps", self.steps)
        check.positive_int("--noise-samples", self.noise_samples)
        if self.steps > 10_000 or self.noise_samples > 100_000:
            raise check.ConfigError(
                "--steps (at most 10000) or --noise-samples (at most 100000) is too large: each "
                "is a full evaluation of the model."
            )


@dataclass(frozen=True)
class ReportConfig:
    """The options of a comparison (analysis.compare). Sized so that a small model's whole
    comparison takes a few minutes on 2 CPU cores; the trace and the eigenvalues report their own
    standard error and residuals, so a user sees the cost."""

    samples: int = option(
        500, "training images for the whole-network Hessian and the per-layer table"
    )
    top_k: int = option(5, "how many of the largest eigenvalues")
    probes: int = option(30, "Hutchinson probes")
    density_steps: int = option(30, "Lanczos steps of the spectral density")
    eval_samples: int = option(2000, "test images for the landscapes and the interpolation")
    steps_1d: int = option(41, "points of the 1-D landscape")
    steps_2d: int = option(17, "points per axis of the 2-D landscape")
    span: float = option(1.0, "landscape coordinates in [-span, span]")
    layer_tol: float = option(
        1e-2, "per layer: relative residual that stops each block's Lanczos (reported per block)"
    )
    layer_steps: int = option(30, "per layer: at most this many Lanczos steps per block eigenvalue")
    layer_traces_only: bool = option(
        False, "per layer: traces only, no block eigenvalues (large models: --probes products)"
    )
    seed: int = option(0, "seed for subsets, probes and directions")

    def __post_init__(self):
        check.positive_int("samples", self.samples)
        check.positive_int("eval_samples", self.eval_samples)
        hessian_options(
            top_k=self.top_k, probes=self.probes, density_steps=self.density_steps, seed=self.seed
        )
        check.grid_size("steps_1d", self.steps_1d, 1, self.eval_samples)
        check.grid_size("steps_2d", self.steps_2d, 2, self.eval_samples)
        check.finite("span", self.span, 0, 1e6, lo_open=True)
        check.finite("layer_tol", self.layer_tol, 0, 1, lo_open=True)
        _max_steps("layer_steps", self.layer_steps)
        if not isinstance(self.layer_traces_only, bool):
            raise check.ConfigError(
                f"layer_traces_only must be true or false, got {self.layer_traces_only!r}."
            )


@dataclass(frozen=True)
class TrackRunConfig:
    """The options of a run's curvature series computed from its checkpoints (analysis.tracking).
    Left unset, each is the run's own: a tracked run's probe subset and probe count, its seed."""

    samples: int | None = option(
        None,
        "training examples in the probe subset (default: the run's --track-samples, else 256)",
    )
    probes: int | None = option(
        None, "Hutchinson probe vectors per point (default: the run's --track-probes, else 8)"
    )
    seed: int | None = option(
        None, "seed of the probe subset and the random vectors (default: the run's --seed)"
    )
    device: str = option("auto", "cpu, cuda, mps or auto (CUDA when present)")

    def __post_init__(self):
        from pof.config import TRACK_MAX_SAMPLES
        from pof.device import check_device

        if self.samples is not None:
            check.positive_int("--samples", self.samples)
            if self.samples > TRACK_MAX_SAMPLES:
                raise check.ConfigError(
                    f"--samples is {self.samples}: the probe subset is one batch of "
                    f"Hessian-vector products; use at most {TRACK_MAX_SAMPLES}."
                )
        if self.probes is not None:
            check.positive_int("--probes", self.probes, 2, " (two for a standard error)")
            if self.probes > 1000:
                raise check.ConfigError(
                    f"--probes is {self.probes}: each is a Hessian-vector product at every "
                    f"checkpoint; use at most 1000."
                )
        if self.seed is not None:
            hessian_options(seed=self.seed)
        check_device(self.device)
