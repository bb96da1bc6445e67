"""Before vs after for one post-training run, one background job per analysis.

Each part is its own run folder, RUN/analysis/PART/, with its own status and progress and its
result in RUN/analysis/PART/result.json, so the app can start, watch and show each one separately
and a finished part is read back instantly. Before = RUN/checkpoints/initial.safetensors, after =
RUN/checkpoints/final.safetensors. The landscapes use directions drawn from the *before* model
with a fixed seed, so two runs post-trained from the same checkpoint (PoF and its control) are
drawn along the same directions and can be overlaid.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from pof.checkpoints import dataset_of, load_checkpoint
from pof.data import Batches, load_dataset
from pof.runs import Run

from .hessian import HessianOperator, Stopped, hutchinson_trace, spectral_density, top_eigenvalues
from .landscape import Directions, eval_tensors, evaluate_grid, grid, interpolate, random_directions
from .lastlayer import features_and_probs, last_layer_hessian

PARTS = ("hessian", "landscape-1d", "landscape-2d", "interpolation")


@dataclass
class ReportConfig:
    # sized so that a small model's whole comparison takes a few minutes on 2 CPU cores; the trace
    # and the eigenvalues report their own standard error and residuals, so a user sees the cost
    samples: int = 500  # training images for the whole-network Hessian
    top_k: int = 5
    probes: int = 30
    density_steps: int = 30
    eval_samples: int = 2000  # test images for the landscapes
    steps_1d: int = 41
    steps_2d: int = 17
    span: float = 1.0  # landscape coordinates in [-span, span]
    seed: int = 0


def part_dir(run_dir: str | Path, part: str) -> Path:
    return Path(run_dir) / "analysis" / part


def _hessian(models, dataset, meta, cfg, progress, stop) -> dict:
    xtr, ytr, _, train_set = eval_tensors(dataset, meta["mean"], meta["std"], "train", cfg.samples, cfg.seed)
    full = Batches(dataset.x_train, dataset.y_train, meta["mean"], meta["std"], 2048, shuffle=False)
    out = {}
    for i, (name, (model, path)) in enumerate(models.items()):
        def cb(done, total, label, i=i):
            progress((i + done / max(total, 1)) / 2, f"{name}: {label}")
        op = HessianOperator(model, [(xtr[j:j + 1000], ytr[j:j + 1000]) for j in range(0, len(xtr), 1000)])
        out[name] = {"checkpoint": str(path), "eval_set": train_set,
                     "top": top_eigenvalues(op, cfg.top_k, seed=cfg.seed, progress=cb, should_stop=stop).to_dict(),
                     "trace": hutchinson_trace(op, cfg.probes, seed=cfg.seed, progress=cb, should_stop=stop).to_dict(),
                     "density": spectral_density(op, cfg.density_steps, seed=cfg.seed, progress=cb, should_stop=stop).to_dict(),
                     "last_layer": last_layer_hessian(*features_and_probs(model, full), top_k=cfg.top_k).to_dict()}
        op.close()
    return out


def _landscape(dims, models, dataset, meta, cfg, progress, stop) -> dict:
    xte, yte, _, test_set = eval_tensors(dataset, meta["mean"], meta["std"], "test", cfg.eval_samples, cfg.seed)
    dirs = random_directions(models["before"][0], 2, cfg.seed)
    d = Directions(dirs.vectors[:dims], dirs.meta)
    axes = [grid(-cfg.span, cfg.span, cfg.steps_1d if dims == 1 else cfg.steps_2d)] * dims
    out = {}
    for i, (name, (model, _)) in enumerate(models.items()):
        def cb(done, total, label, i=i):
            progress((i + done / max(total, 1)) / 2, f"{name}: {label}")
        out[name] = evaluate_grid(model, d, axes, xte, yte, test_set, progress=cb, should_stop=stop).to_dict()
    return out


def _interpolation(models, dataset, meta, cfg, progress, stop) -> dict:
    xte, yte, _, test_set = eval_tensors(dataset, meta["mean"], meta["std"], "test", cfg.eval_samples, cfg.seed)
    return interpolate(models["before"][0], models["after"][0], grid(-0.5, 1.5, 41), xte, yte, test_set,
                       progress=lambda done, total, label: progress(done / max(total, 1), label),
                       should_stop=stop).to_dict()


def report(run_dir: str | Path, cfg: ReportConfig, part: str, progress=None, should_stop=None) -> Run:
    """Compute one part of the comparison into RUN/analysis/PART; returns that job's run folder."""
    if part not in PARTS:
        raise ValueError(f"unknown analysis {part!r}; one of {', '.join(PARTS)}")
    src = Run(run_dir)
    before, after = src.checkpoint("initial"), src.checkpoint("final")
    if not after.exists():
        raise FileNotFoundError(f"{src.path} has no final checkpoint yet; wait for the run to finish.")
    job = Run.create(part_dir(src.path, part), {"command": "analysis", "part": part, "config": asdict(cfg),
                                                "run": str(src.path), "before": str(before), "after": str(after),
                                                "checkpoints": _stamp(before, after)}, overwrite=True)
    job.set_status("running", progress=0.0, stage="loading the data and both checkpoints")

    def prog(fraction: float, label: str) -> None:
        job.heartbeat(progress=fraction, stage=label)
        if progress:
            progress(int(fraction * 1000), 1000, label)

    try:
        dataset = load_dataset(dataset_of(after))
        loaded = {name: load_checkpoint(path, dataset=dataset) for name, path in (("before", before), ("after", after))}
        models = {name: (model, before if name == "before" else after) for name, (model, _) in loaded.items()}
        meta = loaded["after"][1]
        stop = should_stop or job.cancel_requested
        if part == "hessian":
            result = _hessian(models, dataset, meta, cfg, prog, stop)
        elif part == "interpolation":
            result = _interpolation(models, dataset, meta, cfg, prog, stop)
        else:
            result = _landscape(int(part[-2]), models, dataset, meta, cfg, prog, stop)
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


def _stamp(*paths: Path) -> list:
    """Size and modification time of each checkpoint: a result is stale once they change."""
    return [[p.stat().st_size, p.stat().st_mtime_ns] for p in paths]


def load_report(run_dir: str | Path) -> dict:
    """The finished parts of a run's comparison that were computed on its current checkpoints."""
    src, out = Run(run_dir), {}
    for part in PARTS:
        job = Run(part_dir(run_dir, part))
        path = job.path / "result.json"
        try:
            fresh = job.config().get("checkpoints") == _stamp(src.checkpoint("initial"), src.checkpoint("final"))
        except (FileNotFoundError, json.JSONDecodeError):
            fresh = False
        if fresh and path.exists():
            out[part] = json.loads(path.read_text())
    return out
