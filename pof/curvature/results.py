"""What the curvature measurements return: frozen results of numbers and lists, importable without
torch, so that a saved result can be read and drawn (the app's Learn page, a report) before torch is
loaded. The functions that compute them live beside this module (lanczos, trace, lastlayer)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..results import UNSAVED, Result


@dataclass(frozen=True)
class TopEigen(Result):
    """Lanczos's top eigenvalues (lanczos.top_eigenvalues)."""

    eigenvalues: list[float]  # largest first
    residuals: list[float]  # |H v - lambda v| with |v| = 1, computed with one more product each
    converged: list[bool]  # residual <= tol * max(|lambda_1|, 1e-12)
    iterations: int  # Lanczos steps (one Hessian-vector product each)
    tol: float
    n_samples: int
    mode: str = "eval"
    # unit eigenvectors (flat torch tensors), on request; in memory only
    vectors: list | None = field(default=None, repr=False, compare=False, metadata=UNSAVED)


@dataclass(frozen=True)
class LayerCurvature(Result):
    name: str  # module name, e.g. "features.0" (weight and bias together) or "features.1" (BN)
    kind: str  # "conv", "linear", "batchnorm", "norm" (other normalizations), "other"
    n_params: int
    trace: float
    trace_stderr: float
    trace_per_param: float
    top_eigenvalue: float | None = None
    top_residual: float | None = None


@dataclass(frozen=True)
class TraceResult(Result):
    """Hutchinson's trace with its standard error (trace.hutchinson_trace), and every layer's."""

    trace: float
    stderr: float
    n_probes: int
    n_samples: int
    layers: list[LayerCurvature] = field(default_factory=list)


@dataclass(frozen=True)
class LastLayerHessian(Result):
    """The last linear layer's exact Hessian (lastlayer.last_layer_hessian)."""

    top_eigenvalues: list[float]  # largest first
    trace: float
    n_samples: int
    dim: int  # C (D+1)
    method: str  # "dense" or "matrix-free"
    spectrum: list[float] | None = None  # every eigenvalue, largest first (dense only)
    eval_set: str = ""  # what it was computed on, stated
