"""Before vs after for one post-training run: every analysis the comparison needs, as one job.

The job is itself a run folder, RUN/analysis, with its own status and a JSON result per analysis
(results/…json), so the app can start it in the background, watch it, and show what is finished.
Before = RUN/checkpoints/initial.safetensors, after = RUN/checkpoints/final.safetensors; the
landscapes of both are drawn along the same saved directions (RUN/analysis/directions.safetensors).
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


@dataclass
class ReportConfig:
    samples: int = 1000  # training images for the whole-network Hessian
    top_k: int = 5
    probes: int = 50
    density_steps: int = 60
    eval_samples: int = 2000  # test images for the landscapes
    steps_1d: int = 41
    steps_2d: int = 21
    span: float = 1.0  # landscape coordinates in [-span, span]
    seed: int = 0


def report(run_dir: str | Path, cfg: ReportConfig, progress=None, should_stop=None) -> Run:
    src = Run(run_dir)
    before, after = src.checkpoint("initial"), src.checkpoint("final")
    if not after.exists():
        raise FileNotFoundError(f"{src.path} has no final checkpoint yet; wait for the run to finish.")
    job = Run.create(src.path / "analysis", {"command": "analysis-report", "config": asdict(cfg),
                                             "before": str(before), "after": str(after)}, overwrite=True)
    job.set_status("running", progress=0.0)
    out = job.path / "results"
    out.mkdir(exist_ok=True)
    dataset = load_dataset(dataset_of(after))
    models = {name: load_checkpoint(path, dataset=dataset) for name, path in (("before", before), ("after", after))}
    meta = models["after"][1]
    stages = ["hessian-before", "hessian-after", "landscape-1d", "landscape-2d", "interpolation"]

    def stage_progress(i):
        def cb(done, total, label):
            job.heartbeat(progress=(i + done / max(total, 1)) / len(stages), stage=stages[i], detail=label)
            if progress:
                progress(i * 1000 + done, len(stages) * 1000, stages[i])
        return cb

    stop = should_stop or job.cancel_requested
    try:
        xtr, ytr, _, train_set = eval_tensors(dataset, meta["mean"], meta["std"], "train", cfg.samples, cfg.seed)
        full = Batches(dataset.x_train, dataset.y_train, meta["mean"], meta["std"], 2048, shuffle=False)
        for i, name in enumerate(("before", "after")):
            model = models[name][0]
            op = HessianOperator(model, [(xtr[j:j + 500], ytr[j:j + 500]) for j in range(0, len(xtr), 500)])
            cb = stage_progress(i)
            result = {"checkpoint": str(before if name == "before" else after), "eval_set": train_set,
                      "top": top_eigenvalues(op, cfg.top_k, seed=cfg.seed, progress=cb, should_stop=stop).to_dict(),
                      "trace": hutchinson_trace(op, cfg.probes, seed=cfg.seed, progress=cb, should_stop=stop).to_dict(),
                      "density": spectral_density(op, cfg.density_steps, seed=cfg.seed, progress=cb, should_stop=stop).to_dict(),
                      "last_layer": last_layer_hessian(*features_and_probs(model, full), top_k=cfg.top_k).to_dict()}
            op.close()
            (out / f"hessian-{name}.json").write_text(json.dumps(result))
        xte, yte, _, test_set = eval_tensors(dataset, meta["mean"], meta["std"], "test", cfg.eval_samples, cfg.seed)
        dirs_path = job.path / "directions.safetensors"
        dirs = random_directions(models["before"][0], 2, cfg.seed)
        dirs.save(dirs_path)
        for i, (dims, steps) in enumerate(((1, cfg.steps_1d), (2, cfg.steps_2d))):
            d = Directions(dirs.vectors[:dims], dirs.meta)
            axes = [grid(-cfg.span, cfg.span, steps)] * dims
            result = {name: evaluate_grid(models[name][0], d, axes, xte, yte, test_set, progress=stage_progress(2 + i),
                                          should_stop=stop).to_dict() for name in ("before", "after")}
            (out / f"landscape-{dims}d.json").write_text(json.dumps(result, allow_nan=True))
        res = interpolate(models["before"][0], models["after"][0], grid(-0.5, 1.5, 41), xte, yte, test_set,
                          progress=stage_progress(4), should_stop=stop)
        (out / "interpolation.json").write_text(json.dumps(res.to_dict()))
    except Stopped:
        job.set_status("cancelled", message="stopped; start it again to recompute")
        return job
    except BaseException as e:
        job.set_status("failed", error=f"{type(e).__name__}: {e}")
        raise
    job.set_status("done", progress=1.0)
    return job


def load_report(run_dir: str | Path) -> dict:
    """Whatever results of the report exist so far, by name."""
    folder = Path(run_dir) / "analysis" / "results"
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))} if folder.is_dir() else {}
