"""Curvature over time after the fact: a run's curvature series computed from its saved checkpoints.

A training job started with --track records its series live (RUN/curvature.jsonl). Any run can
have one afterwards, from the checkpoints it kept: initial (epoch 0), every epoch-NNNN present
(--save-every) and final, measured by the same pof.curvature.tracker.Tracker, on the same probe
subset (pof.curvature.tracker.probe_indices with the run's seed and, for a tracked run, its probe
count), warm-started from checkpoint to checkpoint, at the learning rate each epoch ended with
(the run's epoch records) and against the stability threshold of the run's optimizer. Each point
is measured with the step the live tracker would have given it (epoch x steps per epoch), so
its random vectors are the live tracker's: for a run tracked once per epoch with --save-every 1
the two series coincide.

The series never replaces a live one: it is its own job folder, RUN/analysis/track/ (a run folder
like the Compare page's analysis parts: config, status with progress, log), holding the same two
files, curvature.json (how it was measured, with "source": "checkpoints") and curvature.jsonl (one
point per checkpoint, with the checkpoint's name), read by pof.runs.run.Run like a live series.
`series(RUN)` is what a reader wants: the live series if there is one, else this.

A running job may be measured: the series then covers the checkpoints saved so far, and the same
command run again later recomputes it whole.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from analysis import cache
from analysis.configs import TrackRunConfig
from analysis.reports import load_model
from pof.config import TrackConfig
from pof.curvature.tracker import Tracker, probe_indices
from pof.data.batches import Batches
from pof.models.loading import data_for
from pof.models.metadata import unreadable
from pof.models.split import split_model
from pof.progress import Stopped
from pof.runs.run import Run, RunError

JOB = "track"  # RUN/analysis/track
SOURCES = ("live", "checkpoints")
EPOCH_FILE = re.compile(r"epoch-(\d{4,})\.safetensors")


def job_dir(run_dir: str | Path) -> Path:
    """The folder of a run's checkpoint series (a job folder of its own)."""
    return Path(run_dir) / "analysis" / JOB


@dataclass(frozen=True)
class Series:
    """A run's curvature series and where it came from ("live": recorded by the training job;
    "checkpoints": computed afterwards by `python -m analysis track`)."""

    source: str
    setup: dict
    points: list[dict]


def series(run_dir: str | Path) -> Series | None:
    """The run's curvature series: the live one when the job recorded points, else the one computed
    from its checkpoints when that job finished on the run's current checkpoints; None when neither
    exists (or is readable). Never raises for what the files hold."""
    run = Run(run_dir)
    points = run.curvature()
    if points:
        return Series("live", run.curvature_setup() or {}, points)
    job = Run(job_dir(run_dir))
    if job.status().get("state") != "done":
        return None
    setup, points = job.curvature_setup(), job.curvature()
    if not setup or not points or not _current(run, setup):
        return None
    return Series("checkpoints", setup, points)


def _current(run: Run, setup: dict) -> bool:
    """Whether the checkpoints the series was measured on are still the run's (by content)."""
    digests = setup.get("digests")
    if not isinstance(digests, dict) or not digests:
        return False
    try:
        return all(cache.file_digest(run.checkpoint(n)) == d for n, d in digests.items())
    except (OSError, TypeError):
        return False


# --- what a run offers: refused here, before anything is written ------------------------------


@dataclass(frozen=True)
class Plan:
    """A run's checkpoint series, ready to measure: every refusal happens while this is made."""

    run: Run
    checkpoints: list[tuple[str, int, Path]]  # (name, epoch, file), in epoch order
    steps_per_epoch: int
    lrs: dict[int, float]  # the rate each epoch ended with (epoch 0: the first step's)
    samples: int
    probes: int
    seed: int
    optimizer: dict  # momentum, nesterov, weight_decay: the stability threshold's
    state: str  # the run's state when the series was planned
    dataset: object
    config: dict


def plan(run_dir: str | Path, cfg: TrackRunConfig) -> Plan:
    """Read and check everything the series needs (RunError, CheckpointError, ConfigError with a
    message saying what to do); nothing is written."""
    run = Run(run_dir)
    if not run.path.is_dir():
        raise RunError(f"{run.path} is not a folder; give a run folder (python -m pof ... --out).")
    if not run.config_file.is_file():
        raise RunError(
            f"{run.path} is not a run folder (no config.json); give the --out folder of a "
            f"pretrain or post-train run."
        )
    config = run.config()  # RunError naming the file when it is unreadable
    command = config.get("command")
    inner = config.get("config")
    if command not in ("pretrain", "post-train") or not isinstance(inner, dict):
        raise RunError(
            f"{run.path} is a {command or 'unknown'} folder, not a pretrain or post-train run: "
            f"only a training run has checkpoints over time."
        )
    state = run.status().get("state", "unknown")
    checkpoints = _checkpoints(run, config)
    if len(checkpoints) < 1:
        raise RunError(
            f"{run.path} has no checkpoints (checkpoints/initial.safetensors is missing): "
            f"nothing to measure. A run keeps them unless they were deleted."
        )
    for _, _, path in checkpoints:  # a truncated or foreign file is refused before any work
        _check_readable(path)
    live = run.curvature_setup() or {}
    tracking = inner.get("tracking") if isinstance(inner.get("tracking"), dict) else {}
    samples = cfg.samples or live.get("samples") or tracking.get("track_samples") or 256
    probes = cfg.probes or live.get("probes") or tracking.get("track_probes") or 8
    TrackConfig(track=True, track_samples=samples, track_probes=probes)  # the same limits
    seed = cfg.seed if cfg.seed is not None else int(inner.get("seed", 0))
    dataset = data_for(
        checkpoints[0][2],
        config.get("dataset") or inner.get("dataset"),
        inner.get("data_root"),
        inner.get("data_options") or {},
        bool(inner.get("svhn_extra", False)),
    )
    n = len(dataset.y_train)
    if samples > n:
        raise RunError(
            f"--samples {samples} is more than the {n} training examples of {run.path}; use at "
            f"most {n}."
        )
    momentum = float(inner.get("momentum", 0.0) or 0.0)
    return Plan(
        run=run,
        checkpoints=checkpoints,
        steps_per_epoch=_steps_per_epoch(run, config, n),
        lrs=_rates(run, config),
        samples=int(samples),
        probes=int(probes),
        seed=int(seed),
        optimizer={
            "momentum": momentum,
            "nesterov": bool(inner.get("nesterov", False)) and momentum > 0,
            "weight_decay": float(inner.get("weight_decay", 0.0) or 0.0),
        },
        state=state,
        dataset=dataset,
        config=config,
    )


def _checkpoints(run: Run, config: dict) -> list[tuple[str, int, Path]]:
    """initial (0), every epoch-NNNN, and final (the run's last epoch) unless an epoch-NNNN of
    that epoch already holds the same weights."""
    found = []
    if run.checkpoint("initial").is_file():
        found.append(("initial", 0, run.checkpoint("initial")))
    try:
        names = sorted(p.name for p in run.checkpoints.iterdir())
    except OSError:
        names = []
    for name in names:
        m = EPOCH_FILE.fullmatch(name)
        if m and int(m.group(1)) > 0:
            found.append(
                (name.removesuffix(".safetensors"), int(m.group(1)), run.checkpoints / name)
            )
    final = run.checkpoint("final")
    epochs = config.get("epochs")
    if final.is_file() and isinstance(epochs, int) and epochs not in {e for _, e, _ in found}:
        found.append(("final", epochs, final))
    if not found or found[0][0] != "initial":
        return []
    return sorted(found, key=lambda c: c[1])


def _check_readable(path: Path) -> None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            f.keys()
    except Exception as e:
        raise unreadable(path, e) from None


def _steps_per_epoch(run: Run, config: dict, n_train: int) -> int:
    """Optimizer steps per epoch, as the job counted them (its step records), else from the batch
    size."""
    steps = [r.get("step") for r in run.metrics("step")]
    steps = [s for s in steps if isinstance(s, int) and not isinstance(s, bool) and s >= 0]
    if steps:
        return max(steps) + 1
    inner = config.get("config", {})
    batch = config.get("batch_size") or inner.get("batch_size") or 256
    return max(1, math.ceil(n_train / int(batch)))


def _rates(run: Run, config: dict) -> dict[int, float]:
    """The learning rate each epoch ended with, from the run's epoch records."""
    out = {}
    for r in run.epochs():
        e, lr = r.get("epoch"), r.get("lr")
        if isinstance(e, int) and isinstance(lr, (int, float)) and lr > 0:
            out[e] = float(lr)
    return out


def _rate_at(plan: Plan, epoch: int) -> float:
    """The recorded rate of `epoch`, else the closest earlier epoch's, else the configured one."""
    earlier = [e for e in plan.lrs if e <= epoch]
    if earlier:
        return plan.lrs[max(earlier)]
    lr = plan.config.get("lr") or plan.config.get("config", {}).get("lr")
    return float(lr) if isinstance(lr, (int, float)) and lr > 0 else float("nan")


# --- the job ------------------------------------------------------------------------------------


def track_run(
    run_dir: str | Path, cfg: TrackRunConfig, progress=None, should_stop=None, planned=None
) -> Run:
    """Measure the run's checkpoint series into RUN/analysis/track; returns that job's folder.
    `progress(done, total, label)` after each checkpoint; `should_stop` (default: the job's cancel
    file) is polled between checkpoints."""
    from pof.device import pick_device
    from pof.files import write_json_atomic

    p = planned or plan(run_dir, cfg)
    device = pick_device(cfg.device)
    first_model, first_meta = load_model(p.checkpoints[0][2], p.dataset)
    n = len(p.dataset.y_train)
    idx = probe_indices(n, p.samples, p.seed)
    batches = Batches(
        p.dataset.x_train, p.dataset.y_train, first_meta["mean"], first_meta["std"], 1, device
    )
    at = torch.tensor(idx, device=device)
    x, y = batches.normalize(batches.x[at]), batches.y[at]
    digests = {name: cache.file_digest(path) for name, _, path in p.checkpoints}
    job = Run.create(
        job_dir(p.run.path),
        {
            "command": "analysis",
            "part": JOB,
            "run": str(p.run.path),
            "config": asdict(cfg),
            "checkpoints": digests,
        },
        overwrite=True,
    )
    for old in (job.curvature_file, job.curvature_setup_file):
        old.unlink(missing_ok=True)  # a series is recomputed whole
    stop = should_stop or job.cancel_requested
    total = len(p.checkpoints)
    job.set_status("running", progress=0.0, stage=f"0/{total} checkpoints")
    try:
        tracker = Tracker(first_model, x, y, None, p.probes, p.seed, **p.optimizer, split=None)
        for i, (name, epoch, path) in enumerate(p.checkpoints):
            if stop():
                raise Stopped()
            model, meta = (first_model, first_meta) if i == 0 else load_model(path, p.dataset)
            model.to(device)
            split = (
                split_model(model, classifier=meta["classifier"]) if meta["classifier"] else None
            )
            tracker.model, tracker.split = model, split
            tracker.missing_last_layer = None if split else meta.get("split")
            if i == 0:
                setup = {
                    **tracker.setup(),
                    "every": "checkpoint",
                    "source": "checkpoints",
                    "probe_indices": idx,
                    "seed": p.seed,
                    "steps_per_epoch": p.steps_per_epoch,
                    "checkpoints": [c[0] for c in p.checkpoints],
                    "digests": digests,
                    "run_state": p.state,
                }
                write_json_atomic(job.curvature_setup_file, setup)
            point = tracker.point(epoch * p.steps_per_epoch, float(epoch), _rate_at(p, epoch))
            job.log_curvature({**point.to_dict(), "checkpoint": name})
            job.heartbeat(progress=(i + 1) / total, stage=f"{i + 1}/{total} checkpoints ({name})")
            if progress:
                progress(i + 1, total, "checkpoints")
            if model is not first_model:
                del model
    except (Stopped, KeyboardInterrupt):
        job.set_status("cancelled", message="stopped; start it again to recompute the series")
        return job
    except BaseException as e:
        job.set_status("failed", error=f"{type(e).__name__}: {e}")
        raise
    job.set_status("done", progress=1.0)
    return job


__all__ = [
    "JOB",
    "SOURCES",
    "Plan",
    "Series",
    "job_dir",
    "plan",
    "series",
    "track_run",
]
