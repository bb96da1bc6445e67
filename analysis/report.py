"""Compare checkpoints, one background job per analysis: any one or two checkpoints, or before vs
after a post-training run.

Each part is its own run folder, OUT/PART/, with its own status and progress and its result in
OUT/PART/result.json, so the app can start, watch and show each one separately and a finished
part is read back instantly. A result is keyed by label: {label: data} for every part but the
interpolation (which has one line from the first checkpoint to the second). The landscapes use
directions drawn from the *first* model with a fixed seed, so comparisons that start from the same
checkpoint (PoF and its control) are drawn along the same directions and can be overlaid.

For a post-training run, OUT = RUN/analysis and the labels are "before" (checkpoints/initial) and
"after" (checkpoints/final). For any checkpoints, `comparison_dir` names OUT after their content.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pof import validate as check
from pof.checkpoints import CheckpointError, data_for, dataset_of, file_sha256, load_checkpoint
from pof.data import Batches
from pof.loading import ModelSource
from pof.runs import Run, RunError

from .hessian import HessianOperator, Stopped, hutchinson_trace, spectral_density, top_eigenvalues
from .landscape import Directions, eval_tensors, evaluate_grid, grid, interpolate, random_directions
from .lastlayer import features_and_probs, last_layer_hessian
from .layers import layer_report

PARTS = ("layers", "hessian", "landscape-1d", "landscape-2d", "interpolation")
PAIR_ONLY = ("interpolation",)  # needs two checkpoints


@dataclass
class ReportConfig:
    # sized so that a small model's whole comparison takes a few minutes on 2 CPU cores; the trace
    # and the eigenvalues report their own standard error and residuals, so a user sees the cost
    samples: int = 500  # training images for the whole-network Hessian and the per-layer table
    top_k: int = 5
    probes: int = 30
    density_steps: int = 30
    eval_samples: int = 2000  # test images for the landscapes
    steps_1d: int = 41
    steps_2d: int = 17
    span: float = 1.0  # landscape coordinates in [-span, span]
    layer_tol: float = (
        1e-2  # per layer: Lanczos stops at this relative residual (reported per block)
    )
    layer_steps: int = 30  # per layer: at most this many Lanczos steps per block eigenvalue
    layer_traces_only: bool = (
        False  # per layer: no block eigenvalues (large models: `probes` products in all)
    )
    seed: int = 0

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
        check.positive_int("layer_steps", self.layer_steps)
        if self.layer_steps > 10_000:
            raise check.ConfigError(
                f"layer_steps is {self.layer_steps}: each step keeps a vector of every parameter; "
                f"use at most 10000."
            )
        if not isinstance(self.layer_traces_only, bool):
            raise check.ConfigError(
                f"layer_traces_only must be true or false, got {self.layer_traces_only!r}."
            )


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
    check.positive_int(
        "probes",
        probes,
        min_probes,
        " (Hutchinson probes)" if min_probes < 2 else " (two for a standard error)",
    )
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


@dataclass
class Subject:
    """What is compared: labelled checkpoints, the data they are measured on and how to read them."""

    checkpoints: dict[str, str]  # label -> path, in order (the first one draws the directions)
    dataset: str
    data_options: dict = field(
        default_factory=dict
    )  # load_dataset's classes, label_column, mean, std
    source: ModelSource = field(
        default_factory=ModelSource
    )  # for files without this project's metadata

    def __post_init__(self):
        if isinstance(self.source, dict):
            self.source = ModelSource(**self.source)
        if not 1 <= len(self.checkpoints) <= 2:
            raise check.ConfigError(f"Compare one or two checkpoints, not {len(self.checkpoints)}.")


MODEL_SUFFIXES = (".safetensors", ".pt2", ".pt", ".pth", ".ckpt", ".bin")


def _without_model_suffix(name: str) -> str:
    """'sgd.safetensors' -> 'sgd', but 'SAM rho=0.05' and 'v1.2' stay as they are (Path.stem would
    cut them at their last dot)."""
    name = str(name).strip()
    for suffix in MODEL_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def labels_for(paths: list[str], names: list[str] | None = None) -> dict[str, str]:
    """Short, distinct labels for checkpoints: their file names without the model-file extension,
    or the `names` given (e.g. --label "SAM rho=0.05", an upload's original name) as they are, but
    for such an extension; with the folder when those clash."""
    names = [_without_model_suffix(n if names else Path(n).name) for n in (names or paths)]
    if len(set(names)) < len(names):
        names = [f"{Path(p).parent.name}/{Path(p).stem}" for p in paths]
    if len(set(names)) < len(names):
        names = [f"{chr(65 + i)}: {n}" for i, n in enumerate(names)]
    return dict(zip(names, paths, strict=True))


def part_dir(out: str | Path, part: str) -> Path:
    return Path(out) / part


def run_subject(run_dir: str | Path) -> Subject:
    """Before vs after of a post-training run."""
    src = Run(run_dir)
    before, after = src.checkpoint("initial"), src.checkpoint("final")
    if not src.config_file.is_file():
        raise RunError(
            f"{src.path} is not a run folder (no config.json); give a post-training run folder."
        )
    if not after.exists():
        raise RunError(
            f"{src.path} has no final checkpoint yet; wait for the run to finish (or give a "
            f"post-training run folder)."
        )
    return Subject({"before": str(before), "after": str(after)}, dataset_of(after))


def comparison_dir(root: str | Path, subject: Subject, cfg: ReportConfig) -> Path:
    """ROOT/compare/KEY: KEY depends on the checkpoints' content, the data and every option, so the
    same question asked again finds its answers, and another question never reads them."""
    parts = {
        "sha": [file_sha256(p) for p in subject.checkpoints.values()],
        "labels": list(subject.checkpoints),
        "dataset": subject.dataset,
        "data": subject.data_options,
        "source": asdict(subject.source),
        "config": asdict(cfg),
    }
    key = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Path(root) / "compare" / key


# --- the parts ------------------------------------------------------------------------------------


def _train_batches(dataset, meta, cfg):
    xtr, ytr, _, train_set = eval_tensors(
        dataset, meta["mean"], meta["std"], "train", cfg.samples, cfg.seed
    )
    return [(xtr[j : j + 1000], ytr[j : j + 1000]) for j in range(0, len(xtr), 1000)], train_set


def _layers(models, dataset, cfg, progress, stop) -> dict:
    out = {}
    for i, (label, (model, meta)) in enumerate(models.items()):
        batches, train_set = _train_batches(dataset, meta, cfg)
        rep = layer_report(
            model,
            batches,
            classifier=meta.get("classifier"),
            probes=cfg.probes,
            tol=cfg.layer_tol,
            max_steps=cfg.layer_steps,
            seed=cfg.seed,
            block_eigenvalues=not cfg.layer_traces_only,
            should_stop=stop,
            progress=_share(progress, i, len(models), label),
        )
        out[label] = {**rep.to_dict(), "eval_set": train_set}
    return out


def _hessian(models, dataset, cfg, progress, stop) -> dict:
    out = {}
    for i, (label, (model, meta)) in enumerate(models.items()):
        batches, train_set = _train_batches(dataset, meta, cfg)
        cb = _share(progress, i, len(models), label)
        op = HessianOperator(model, batches)
        out[label] = {
            "eval_set": train_set,
            "top": top_eigenvalues(
                op, cfg.top_k, seed=cfg.seed, progress=cb, should_stop=stop
            ).to_dict(),
            "trace": hutchinson_trace(
                op, cfg.probes, seed=cfg.seed, progress=cb, should_stop=stop
            ).to_dict(),
            "density": spectral_density(
                op, cfg.density_steps, seed=cfg.seed, progress=cb, should_stop=stop
            ).to_dict(),
        }
        op.close()
        if meta.get("classifier"):  # the exact last layer needs a linear last layer to split off
            from pof.models import split_model

            full = Batches(
                dataset.x_train, dataset.y_train, meta["mean"], meta["std"], 2048, shuffle=False
            )
            split = split_model(model, classifier=meta["classifier"])
            out[label]["last_layer"] = last_layer_hessian(
                *features_and_probs(model, full, split), top_k=cfg.top_k
            ).to_dict()
    return out


def _landscape(dims, models, dataset, cfg, progress, stop) -> dict:
    first_model, first_meta = next(iter(models.values()))
    xte, yte, _, test_set = eval_tensors(
        dataset, first_meta["mean"], first_meta["std"], "test", cfg.eval_samples, cfg.seed
    )
    dirs = random_directions(first_model, 2, cfg.seed)
    d = Directions(dirs.vectors[:dims], dirs.meta)
    axes = [grid(-cfg.span, cfg.span, cfg.steps_1d if dims == 1 else cfg.steps_2d)] * dims
    out = {}
    for i, (label, (model, _)) in enumerate(models.items()):
        out[label] = evaluate_grid(
            model,
            d,
            axes,
            xte,
            yte,
            test_set,
            should_stop=stop,
            progress=_share(progress, i, len(models), label),
        ).to_dict()
    return out


def _interpolation(models, dataset, cfg, progress, stop) -> dict:
    (_, (a, meta)), (_, (b, _)) = list(models.items())[:2]
    xte, yte, _, test_set = eval_tensors(
        dataset, meta["mean"], meta["std"], "test", cfg.eval_samples, cfg.seed
    )
    return interpolate(
        a,
        b,
        grid(-0.5, 1.5, 41),
        xte,
        yte,
        test_set,
        progress=lambda done, total, label: progress(done / max(total, 1), label),
        should_stop=stop,
    ).to_dict()


def _share(progress, i: int, n: int, label: str):
    """Progress of model i of n, as a fraction of the whole part."""
    return lambda done, total, what: progress((i + done / max(total, 1)) / n, f"{label}: {what}")


COMPUTE = {
    "layers": _layers,
    "hessian": _hessian,
    "landscape-1d": lambda *a: _landscape(1, *a),
    "landscape-2d": lambda *a: _landscape(2, *a),
    "interpolation": _interpolation,
}


# --- the job ------------------------------------------------------------------------------------------


def compute(
    out: str | Path, subject: Subject, cfg: ReportConfig, part: str, progress=None, should_stop=None
) -> Run:
    """Compute one part of the comparison into OUT/PART; returns that job's run folder."""
    if part not in PARTS:
        raise check.ConfigError(f"unknown analysis {part!r}; one of {', '.join(PARTS)}")
    if part in PAIR_ONLY and len(subject.checkpoints) < 2:
        raise check.ConfigError(f"{part} needs two checkpoints.")
    if not isinstance(cfg, ReportConfig):
        raise check.ConfigError(f"compute takes a ReportConfig, got {type(cfg).__name__}.")
    paths = [Path(p) for p in subject.checkpoints.values()]
    for path in paths:  # a missing file is refused before a part folder is made for it
        if not path.is_file():
            raise CheckpointError(f"no such checkpoint file: {path}")
    check.output_dir("the results folder", out)
    job = Run.create(
        part_dir(out, part),
        {
            "command": "analysis",
            "part": part,
            "config": asdict(cfg),
            "subject": asdict(subject),
            "checkpoints": _stamp(*paths),
        },
        overwrite=True,
    )
    job.set_status("running", progress=0.0, stage="loading the data and the checkpoints")

    def prog(fraction: float, label: str) -> None:
        job.heartbeat(progress=fraction, stage=label)
        if progress:
            progress(int(fraction * 1000), 1000, label)

    try:
        dataset = data_for(paths[0], subject.dataset, options=subject.data_options)
        models = {
            label: load_checkpoint(path, dataset=dataset, source=subject.source)
            for label, path in subject.checkpoints.items()
        }
        for label, (_, meta) in models.items():
            if meta["nonfinite"]:
                raise CheckpointError(
                    f"{label} ({subject.checkpoints[label]}) holds NaN or infinite weights "
                    f"({', '.join(meta['nonfinite'][:3])}): its curvature and landscape are "
                    f"meaningless. Analyse a checkpoint of an earlier epoch."
                )
        result = COMPUTE[part](models, dataset, cfg, prog, should_stop or job.cancel_requested)
        tmp = job.path / "result.json.tmp"
        tmp.write_text(json.dumps(result, allow_nan=True))
        tmp.replace(job.path / "result.json")
    except Stopped:
        job.set_status("cancelled", message="stopped; start it again to recompute")
        return job
    except BaseException as e:
        job.set_status("failed", error=f"{type(e).__name__}: {e}")
        raise
    job.set_status("done", progress=1.0)
    return job


def report(
    run_dir: str | Path, cfg: ReportConfig, part: str, progress=None, should_stop=None
) -> Run:
    """One part of before vs after for a post-training run, into RUN/analysis/PART."""
    return compute(
        Path(run_dir) / "analysis", run_subject(run_dir), cfg, part, progress, should_stop
    )


def _stamp(*paths: Path) -> list:
    """Size and modification time of each checkpoint: a result is stale once they change."""
    return [[p.stat().st_size, p.stat().st_mtime_ns] for p in paths]


def load_results(out: str | Path, checkpoints: list[str | Path]) -> dict:
    """The finished parts under OUT that were computed on these checkpoints as they are now."""
    results = {}
    try:
        stamp = _stamp(*map(Path, checkpoints))
    except OSError:
        return results
    for part in PARTS:
        job = Run(part_dir(out, part))
        path = job.path / "result.json"
        try:
            if job.config().get("checkpoints") == stamp and path.exists():
                results[part] = json.loads(path.read_text())
        except (OSError, ValueError, RunError):  # RunError: a part never started has no config.json
            continue  # a broken or half-written part is offered again, not shown
    return results


def load_report(run_dir: str | Path) -> dict:
    """The finished parts of a post-training run's comparison, computed on its current checkpoints."""
    src = Run(run_dir)
    return load_results(
        Path(run_dir) / "analysis", [src.checkpoint("initial"), src.checkpoint("final")]
    )
