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
Each result.json is in analysis.results' format and names the checkpoints' content digests; a part
whose checkpoints have changed since, or of another schema version, is not shown (and is offered
again). The parts are composed by analysis.reports' functions, the same as the command line's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path

from analysis import cache, results
from analysis.configs import ReportConfig, hessian_options
from analysis.measures.landscape import (
    Directions,
    eval_tensors,
    evaluate_grid,
    grid,
    interpolate,
    random_directions,
)
from analysis.measures.layers import layer_cost, layer_report
from analysis.reports import KINDS, hessian_report, last_layer_report, load_model
from pof import validate as check
from pof.models.formats import CheckpointError, ModelSource
from pof.models.loading import data_for
from pof.models.metadata import dataset_of
from pof.progress import Stopped
from pof.runs.run import Run, RunError

__all__ = [
    "ON_REQUEST",
    "PAIR_ONLY",
    "PARTS",
    "ReportConfig",
    "Subject",
    "comparison_dir",
    "compute",
    "hessian_options",
    "labels_for",
    "load_part",
    "load_report",
    "load_results",
    "part_dir",
    "report",
    "run_subject",
]

PARTS = ("layers", "hessian", "landscape-1d", "landscape-2d", "interpolation")
PAIR_ONLY = ("interpolation",)  # needs two checkpoints
# asked for on its own (the Inspect page's button), never among the analyses computed by default
ON_REQUEST = ("crosscheck",)


@dataclass
class Subject:
    """What is compared: labelled checkpoints, the data they are measured on and how to read
    them."""

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
    key = cache.key(
        "compare",
        subject.checkpoints.values(),
        labels=list(subject.checkpoints),
        dataset=subject.dataset,
        data_files=cache.data_digests(subject.dataset),
        data=subject.data_options,
        # an unset weights key is left out: results cached before it existed keep their key
        source={k: v for k, v in asdict(subject.source).items() if v or k != "weights_key"},
        config=asdict(cfg),
    )
    return Path(root) / "compare" / key.removeprefix("compare-")


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
        if i == 0:  # the job's first line: how long it will take, measured on the first model
            cost = layer_cost(
                model,
                batches,
                probes=cfg.probes,
                max_steps=cfg.layer_steps,
                block_eigenvalues=not cfg.layer_traces_only,
            )
            estimate = "expected " + cost.text(len(models))
            progress(0.0, estimate, estimate=estimate)
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
        out[label] = dataclasses.replace(rep, eval_set=train_set)
    return out


def _hessian(models, dataset, cfg, progress, stop) -> dict:
    out = {}
    for i, (label, (model, meta)) in enumerate(models.items()):
        batches, train_set = _train_batches(dataset, meta, cfg)
        out[label] = hessian_report(
            model,
            batches,
            train_set,
            top_k=cfg.top_k,
            trace_layers=True,
            probes=cfg.probes,
            density_steps=cfg.density_steps,
            seed=cfg.seed,
            last_layer=last_layer_report(model, dataset, meta, cfg.top_k),
            split=meta.get("split", ""),
            progress=_share(progress, i, len(models), label),
            should_stop=stop,
        )
    return out


def _crosscheck(models, dataset, cfg, progress, stop) -> dict:
    """PyHessian's eigenvalues and trace beside this project's, on the Hessian part's data."""
    out = {}
    for i, (label, (model, meta)) in enumerate(models.items()):
        batches, train_set = _train_batches(dataset, meta, cfg)
        out[label] = hessian_report(
            model,
            batches,
            train_set,
            top_k=cfg.top_k,
            probes=cfg.probes,
            density=False,
            seed=cfg.seed,
            pyhessian=True,
            progress=_share(progress, i, len(models), label),
            should_stop=stop,
        ).cross_check
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
        )
    return out


def _interpolation(models, dataset, cfg, progress, stop) -> dict:
    (label_a, (a, meta)), (label_b, (b, _)) = list(models.items())[:2]
    xte, yte, _, test_set = eval_tensors(
        dataset, meta["mean"], meta["std"], "test", cfg.eval_samples, cfg.seed
    )
    line = interpolate(
        a,
        b,
        grid(-0.5, 1.5, 41),
        xte,
        yte,
        test_set,
        progress=_share(progress, 0, 1, "interpolation"),
        should_stop=stop,
    )
    return {interpolation_label(label_a, label_b): line}


def interpolation_label(a: str, b: str) -> str:
    """The interpolation part's one line, from the first checkpoint to the second."""
    return f"{a} → {b}"


def _share(progress, i: int, n: int, label: str):
    """Progress of model i of n, as a fraction of the whole part."""
    return lambda done, total, what, **_: progress(
        (i + done / max(total, 1)) / n, f"{label}: {what}"
    )


COMPUTE = {
    "layers": _layers,
    "hessian": _hessian,
    "landscape-1d": lambda *a: _landscape(1, *a),
    "landscape-2d": lambda *a: _landscape(2, *a),
    "interpolation": _interpolation,
    "crosscheck": _crosscheck,
}


# --- the job --------------------------------------------------------------------------------------


def _digests(paths) -> list[str]:
    return [cache.file_digest(p) for p in paths]


def compute(
    out: str | Path, subject: Subject, cfg: ReportConfig, part: str, progress=None, should_stop=None
) -> Run:
    """Compute one part of the comparison into OUT/PART; returns that job's run folder."""
    if part not in PARTS + ON_REQUEST:
        raise check.ConfigError(
            f"unknown analysis {part!r}; one of {', '.join(PARTS + ON_REQUEST)}"
        )
    if part in PAIR_ONLY and len(subject.checkpoints) < 2:
        raise check.ConfigError(f"{part} needs two checkpoints.")
    if not isinstance(cfg, ReportConfig):
        raise check.ConfigError(f"compute takes a ReportConfig, got {type(cfg).__name__}.")
    paths = [Path(p) for p in subject.checkpoints.values()]
    for path in paths:  # a missing file is refused before a part folder is made for it
        if not path.is_file():
            raise CheckpointError(f"no such checkpoint file: {path}")
    check.output_dir("the results folder", out)
    digests = _digests(paths)
    job = Run.create(
        part_dir(out, part),
        {
            "command": "analysis",
            "part": part,
            "config": asdict(cfg),
            "subject": asdict(subject),
            "checkpoints": digests,
        },
        overwrite=True,
    )
    job.set_status("running", progress=0.0, stage="loading the data and the checkpoints")

    def prog(fraction: float, label: str, **fields) -> None:
        if fields:  # the estimate: written at once, and it stays in the status
            job.set_status("running", progress=fraction, stage=label, **fields)
        else:
            job.heartbeat(progress=fraction, stage=label)
        if progress:
            progress(int(fraction * 1000), 1000, label)

    try:
        dataset = data_for(paths[0], subject.dataset, options=subject.data_options)
        models = {}
        for label, path in subject.checkpoints.items():
            try:
                models[label] = load_model(path, dataset, subject.source)
            except CheckpointError as e:
                raise CheckpointError(f"{label}: {e}") from None
        found = COMPUTE[part](models, dataset, cfg, prog, should_stop or job.cancel_requested)
        results.save(job.path / "result.json", part, found, checkpoints=digests)
    except (Stopped, KeyboardInterrupt):  # a cancel, Ctrl-C or SIGTERM (pof.signals)
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


def load_results(out: str | Path, checkpoints: list[str | Path]) -> dict[str, dict]:
    """The finished parts under OUT computed on these checkpoints' current content, typed:
    {part: {label: result}} (the interpolation's one label names its two ends). A part of other
    checkpoints, of another schema version or unreadable is left out: the page offers it again."""
    try:
        digests = _digests(checkpoints)
    except OSError:
        return {}
    found = {}
    for part in PARTS:
        saved = _load(out, part, digests)
        if saved is not None:
            found[part] = saved
    return found


def _load(out, part: str, digests: list[str]) -> dict | None:
    saved = results.load(part_dir(out, part) / "result.json", part, KINDS[part])
    fresh = saved is not None and saved.about.get("checkpoints") == digests
    return saved.results if fresh else None


def load_part(out: str | Path, checkpoints: list[str | Path], part: str) -> dict | None:
    """One part's results ({label: result}) under OUT, computed on these checkpoints' current
    content; None when absent, stale or unreadable."""
    try:
        return _load(out, part, _digests(checkpoints))
    except OSError:
        return None


def load_report(run_dir: str | Path) -> dict[str, dict]:
    """The finished parts of a post-training run's comparison, computed on its current
    checkpoints."""
    src = Run(run_dir)
    return load_results(
        Path(run_dir) / "analysis", [src.checkpoint("initial"), src.checkpoint("final")]
    )
