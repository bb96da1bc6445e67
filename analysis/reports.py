"""One function per report, the only place each is composed; the command line (analysis.cli), the
report jobs (analysis.compare) and, through those jobs, the app all call these:

- `hessian_report`: whole-network top eigenvalues, trace, density, and the exact last layer;
- `last_layer_report`: the last layer's exact Hessian on the whole training set;
- `layer_report` (analysis.measures.layers): per-layer sharpness;
- `evaluate_grid` (analysis.measures.landscape): 1-D and 2-D landscapes along given directions;
- `interpolate` (analysis.measures.landscape): the line between two checkpoints;
- `sharpness_report`: worst-case (plain, adaptive) and average-case sharpness.

Each returns a frozen result (analysis.results); `KINDS` names the result type of each kind of
saved file. `EvalData` is a checkpoint's model with its fixed evaluation tensor; `hessian_of`,
`layers_of`, `sharpness_of`, `landscape_of` and `interpolation_of` compute a report on an EvalData
with the options of its config (analysis.configs), each config's fields mapped onto its function
here, once (and `directions_of` a landscape's random directions).
"""

from __future__ import annotations

import dataclasses
import sys

from torch import nn

from analysis.configs import (
    HessianConfig,
    InterpolationConfig,
    LandscapeConfig,
    LayersConfig,
    SharpnessConfig,
)
from analysis.measures.crosscheck import CrossCheck, cross_check
from analysis.measures.hessian import (
    HessianOperator,
    hutchinson_trace,
    per_layer_top_eigenvalues,
    spectral_density,
    top_eigenvalues,
)
from analysis.measures.landscape import (
    Directions,
    Landscape,
    eval_tensors,
    evaluate_grid,
    interpolate,
    random_directions,
)
from analysis.measures.layers import LayerCost, LayerReport, layer_cost, layer_report
from analysis.measures.results import HessianReport, SharpnessReport
from analysis.measures.sharpness import average_case_sharpness, worst_case_sharpness
from pof.curvature.lastlayer import LastLayerHessian, features_and_probs, last_layer_hessian
from pof.progress import Progress, ShouldStop

__all__ = [
    "KINDS",
    "EvalData",
    "HessianReport",
    "SharpnessReport",
    "directions_of",
    "evaluate_grid",
    "hessian_of",
    "hessian_report",
    "interpolate",
    "interpolation_of",
    "landscape_of",
    "last_layer_report",
    "layer_report",
    "layers_of",
    "load_model",
    "sharpness_of",
    "sharpness_report",
]

# the result type of each kind of saved result (a file's "kind")
KINDS: dict[str, type] = {
    "hessian": HessianReport,
    "layers": LayerReport,
    "landscape": Landscape,
    "landscape-1d": Landscape,
    "landscape-2d": Landscape,
    "interpolation": Landscape,
    "sharpness": SharpnessReport,
    "crosscheck": CrossCheck,
}


def load_model(path, dataset, source=None) -> tuple[nn.Module, dict]:
    """A checkpoint's model and metadata; refused (CheckpointError) with NaN or infinite weights,
    whose curvature and landscape would be meaningless."""
    from pof.models.formats import CheckpointError
    from pof.models.loading import load_checkpoint

    model, meta = load_checkpoint(path, dataset=dataset, source=source)
    if meta["nonfinite"]:
        raise CheckpointError(
            f"{path} holds NaN or infinite weights ({', '.join(meta['nonfinite'][:3])}): its "
            f"curvature and landscape are meaningless. Analyse a checkpoint of an earlier epoch."
        )
    return model, meta


class EvalData:
    """A checkpoint's model and a fixed, stated evaluation tensor (split, first N of a seeded
    order)."""

    def __init__(
        self,
        checkpoint: str,
        dataset: str | None,
        split: str,
        samples: int | None,
        data_root=None,
        device: str = "auto",
        seed: int = 0,
        source=None,
        data_options: dict | None = None,
    ):
        from pof.device import pick_device
        from pof.models.loading import data_for

        self.dataset = data_for(checkpoint, dataset, data_root, data_options)
        self.device = pick_device(device)
        self.source = source
        self.model, self.meta = load_model(checkpoint, self.dataset, source)
        for note in self.meta["notes"]:
            print(f"note: {note}", file=sys.stderr)
        for warning in self.meta["warnings"]:
            print(f"warning: {warning}", file=sys.stderr)
        self.model.to(self.device)
        self.x, self.y, n, self.eval_set = eval_tensors(
            self.dataset, self.meta["mean"], self.meta["std"], split, samples, seed, self.device
        )
        self.spec = {
            "dataset": self.dataset.name,
            "options": data_options or {},
            "split": split,
            "samples": n,
            "seed": seed,
        }

    def load_other(self, checkpoint: str) -> nn.Module:
        """A second checkpoint on the same data and device, read with the same model options."""
        model, _ = load_model(checkpoint, self.dataset, self.source)
        return model.to(self.device)

    def batches(self, batch_size: int):
        return [
            (self.x[i : i + batch_size], self.y[i : i + batch_size])
            for i in range(0, len(self.x), batch_size)
        ]


def last_layer_report(model: nn.Module, dataset, meta: dict, top_k: int) -> LastLayerHessian | None:
    """The exact Hessian of the last linear layer on the whole training split (its closed form,
    docs/method.md), or None when the model has no linear last layer to split off."""
    if not meta.get("classifier"):
        return None
    from pof.data.batches import Batches
    from pof.models.split import split_model

    device = next(model.parameters()).device
    train = Batches(
        dataset.x_train, dataset.y_train, meta["mean"], meta["std"], 2048, device, shuffle=False
    )
    split = split_model(model, classifier=meta["classifier"])
    exact = last_layer_hessian(*features_and_probs(model, train, split), top_k=top_k)
    stated = f"{dataset.name} train split, all {len(dataset.x_train)} images (exact)"
    return dataclasses.replace(exact, eval_set=stated)


def hessian_report(
    model: nn.Module,
    batches,
    eval_set: str,
    *,
    top_k: int = 1,
    tol: float = 1e-4,
    trace: bool = True,
    trace_layers: bool = False,
    layer_eigenvalues: bool = False,
    probes: int = 100,
    density: bool = True,
    density_steps: int = 80,
    density_runs: int = 1,
    seed: int = 0,
    last_layer: LastLayerHessian | None = None,
    split: str = "",
    pyhessian: bool = False,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
) -> HessianReport:
    """The whole network's curvature on `batches` (in eval mode): the `top_k` largest eigenvalues
    (Lanczos to relative residual `tol`), on request the Hutchinson trace over `probes` probes
    (with each layer's block trace, and each block's top eigenvalue), and the spectral density;
    `last_layer` (last_layer_report's) is carried along. With `pyhessian`, PyHessian's own
    eigenvalues and trace on the same batches, seed and probe count are set beside them."""
    trace = trace or pyhessian
    kw = {"seed": seed, "progress": progress, "should_stop": should_stop}
    op = HessianOperator(model, batches)
    try:
        top = top_eigenvalues(op, top_k, tol=tol, **kw)
        tr = None
        if trace or trace_layers or layer_eigenvalues:
            per_layer = trace_layers or layer_eigenvalues
            tr = hutchinson_trace(op, probes, per_layer=per_layer, **kw)
            if layer_eigenvalues:
                layers = per_layer_top_eigenvalues(op, tr.layers, **kw)
                tr = dataclasses.replace(tr, layers=layers)
        dens = spectral_density(op, density_steps, density_runs, **kw) if density else None
    finally:
        op.close()
    check = None
    if pyhessian:
        check = cross_check(model, batches, top, tr, eval_set=eval_set, tol=tol, **kw)
    return HessianReport(
        top, eval_set, op.dim, tr, dens, last_layer, split, op.n_hvp, cross_check=check
    )


def sharpness_report(
    model: nn.Module,
    x,
    y,
    eval_set: str,
    *,
    rho: float = 0.05,
    steps: int = 5,
    sigma: float = 0.01,
    noise_samples: int = 20,
    seed: int = 0,
    batch_size: int | None = None,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
) -> SharpnessReport:
    """The loss increase in the worst case within radius rho (plain and adaptive) and on average
    under Gaussian weight noise of standard deviation sigma."""
    kw = {
        "eval_set": eval_set,
        "batch_size": batch_size,
        "progress": progress,
        "should_stop": should_stop,
    }
    return SharpnessReport(
        [
            worst_case_sharpness(model, x, y, rho, steps, **kw),
            worst_case_sharpness(model, x, y, rho, steps, adaptive=True, **kw),
            average_case_sharpness(model, x, y, sigma, noise_samples, seed, **kw),
        ]
    )


# --- a report of an EvalData with its config's options ------------------------------------------


def hessian_of(
    data: EvalData,
    cfg: HessianConfig,
    *,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
) -> HessianReport:
    """`hessian_report` on `data`'s evaluation set (in batches of `cfg.hessian_batch`), with the
    exact last layer on the whole training split."""
    return hessian_report(
        data.model,
        data.batches(cfg.hessian_batch),
        data.eval_set,
        top_k=cfg.top_k,
        tol=cfg.tol,
        trace=cfg.trace,
        layer_eigenvalues=cfg.per_layer,
        probes=cfg.probes,
        density=cfg.density,
        density_steps=cfg.density_steps,
        density_runs=cfg.density_runs,
        seed=cfg.seed,
        last_layer=last_layer_report(data.model, data.dataset, data.meta, cfg.top_k),
        split=data.meta["split"],
        pyhessian=cfg.cross_check,
        progress=progress,
        should_stop=should_stop,
    )


def layers_of(
    data: EvalData,
    cfg: LayersConfig,
    *,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
) -> LayerReport:
    """`layer_report` on `data`'s evaluation set, which it states."""
    report = layer_report(
        data.model,
        data.batches(cfg.hessian_batch),
        classifier=data.meta.get("classifier"),
        probes=cfg.probes,
        tol=cfg.tol,
        max_steps=cfg.max_steps,
        seed=cfg.seed,
        block_eigenvalues=not cfg.traces_only,
        progress=progress,
        should_stop=should_stop,
    )
    return dataclasses.replace(report, eval_set=data.eval_set)


def layers_cost_of(data: EvalData, cfg: LayersConfig) -> LayerCost:
    """What `layers_of` with `cfg` will cost on `data` (a few products timed)."""
    return layer_cost(
        data.model,
        data.batches(cfg.hessian_batch),
        probes=cfg.probes,
        max_steps=cfg.max_steps,
        block_eigenvalues=not cfg.traces_only,
    )


def sharpness_of(
    data: EvalData,
    cfg: SharpnessConfig,
    *,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
) -> SharpnessReport:
    """`sharpness_report` on `data`'s evaluation set."""
    return sharpness_report(
        data.model,
        data.x,
        data.y,
        data.eval_set,
        rho=cfg.rho,
        steps=cfg.steps,
        sigma=cfg.sigma,
        noise_samples=cfg.noise_samples,
        seed=cfg.seed,
        batch_size=cfg.batch_size,
        progress=progress,
        should_stop=should_stop,
    )


def directions_of(model: nn.Module, cfg: LandscapeConfig, count: int | None = None) -> Directions:
    """`count` (default `cfg.dims`) random directions for `model`, drawn and scaled as `cfg` says
    (seed, normalization, biases and BN, layers)."""
    count = cfg.dims if count is None else count
    return random_directions(
        model, count, cfg.seed, cfg.normalization, cfg.include_bias_bn, cfg.layers
    )


def landscape_of(
    data: EvalData,
    cfg: LandscapeConfig,
    model: nn.Module,
    dirs: Directions,
    *,
    partial: Landscape | None = None,
    save_partial=None,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
) -> Landscape:
    """`evaluate_grid` of `model` (data's own, or another on the same data) on `cfg.axes` along
    `dirs`, on `data`'s evaluation set; `partial` continued, `save_partial` called on the way."""
    return evaluate_grid(
        model,
        dirs,
        cfg.axes,
        data.x,
        data.y,
        data.eval_set,
        cfg.batch_size,
        partial,
        save_partial,
        progress,
        should_stop,
    )


def interpolation_of(
    data: EvalData,
    cfg: InterpolationConfig,
    other: nn.Module,
    *,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
) -> Landscape:
    """`interpolate` from `data`'s model (0) to `other` (1) at `cfg.alphas`, on `data`'s
    evaluation set."""
    return interpolate(
        data.model,
        other,
        cfg.alphas,
        data.x,
        data.y,
        data.eval_set,
        cfg.batch_size,
        progress,
        should_stop,
    )
