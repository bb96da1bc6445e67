"""The epoch loop every training job runs on (pre-training and post-training are drivers of it).

`fit(loop)` trains `loop.epochs` epochs of `loop.step` and keeps the run folder current: a status
with progress and a heartbeat, a metrics line per step and per epoch, the checkpoints (initial,
last, best, every `save_every` epochs, final) and the resume state of the last finished epoch. It
stops at the next step when a cancel is requested, fails on a non-finite loss (Diverged), and with
`resume` continues from the last finished epoch exactly: same weights, optimizer state, data order.
Under torchrun every rank runs the loop; only the main rank writes, and the ranks agree on stopping.
With a curvature `tracker` (pof.curvature.tracker) the main rank also records a curvature point
before the first step and whenever one is due, into the run's curvature series; the tracker's
state is saved with the resume state, so a resumed run records the same series.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from ..curvature.tracker import Tracker
from ..data.batches import Batches
from ..data.dataset import Dataset
from ..models.checkpoints import load_resume_state, save_checkpoint, save_resume_state
from ..models.tensors import read_safetensors
from ..progress import Diverged, Progress, ShouldStop
from ..runs.run import Run, RunError
from ..signals import terminated
from .evaluation import evaluate


def _agree(stop: bool, bad: bool) -> tuple[bool, bool]:
    return stop, bad


@dataclass
class Loop:
    """Everything the epoch loop needs. `step(x, y)` trains on one batch and returns at least
    {"loss": float, "correct": int}; other keys are logged as per-step diagnostics."""

    run: Run
    model: nn.Module
    optimizer: object
    step: Callable[[torch.Tensor, torch.Tensor], dict]
    train: Batches
    test: Batches
    dataset: Dataset
    epochs: int
    lr_at: Callable[[float], float]  # fractional epoch -> learning rate
    meta: dict  # checkpoint metadata (arch, shapes, provenance ...)
    save_every: int = 0
    eval_train: Batches | None = None  # the clean (unaugmented) train set, evaluated each epoch
    on_epoch_start: Callable[[int], None] | None = None
    is_main: bool = True  # distributed: only rank 0 writes the run folder
    # distributed: combine (stop, diverged) flags over all ranks so that every rank stops together
    sync_flags: Callable[[bool, bool], tuple[bool, bool]] = _agree
    tracker: Tracker | None = None  # curvature over time (main rank only)
    probe_indices: list[int] | None = None  # the tracker's probe subset, recorded in the run

    @property
    def steps_per_epoch(self) -> int:
        return len(self.train)

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch


@dataclass
class EpochSums:
    """What one epoch's steps add up to: the mean loss and accuracy, and per-step diagnostics."""

    loss: float = 0.0
    correct: int = 0
    seen: int = 0
    diagnostics: dict[str, float] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)  # boolean diagnostics, reported as counts
    lr: float = 0.0  # the rate of the latest step
    started: float = field(default_factory=time.time)

    def add(self, out: dict, n: int) -> dict:
        """Count one step's result on `n` samples; returns its diagnostics."""
        self.loss += out["loss"] * n
        self.correct += out["correct"]
        self.seen += n
        extras = {k: v for k, v in out.items() if k not in ("loss", "correct")}
        for k, v in extras.items():
            self.diagnostics[k] = self.diagnostics.get(k, 0.0) + float(v)
            if isinstance(v, bool):
                self.flags.add(k)
        return extras


def fit(
    loop: Loop,
    resume: bool = False,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
) -> str:
    """Train for loop.epochs epochs, writing status, metrics and checkpoints into loop.run.

    Returns the final state: "done" or "cancelled". Raises Diverged on a non-finite loss (the
    status says so and the checkpoints of the last finished epoch are kept). Ctrl-C marks the run
    cancelled and any other error marks it failed with the reason, so readers never see it running.
    `progress(step, total_steps, "epoch E/N", loss=...)` follows every step, and once more with
    `epoch_done=record` after each epoch; `should_stop` (default: the run's cancel file) is polled
    before every step.
    """
    try:
        return _fit(loop, resume, progress, should_stop or loop.run.cancel_requested)
    except Diverged:
        raise
    except KeyboardInterrupt:
        if loop.is_main:
            loop.run.set_status("cancelled", message="interrupted; resume with --resume")
        raise
    except BaseException as e:
        if loop.is_main:
            loop.run.set_status("failed", error=f"{type(e).__name__}: {e}")
        raise


def _fit(loop: Loop, resume: bool, progress: Progress | None, should_stop: ShouldStop) -> str:
    start, best_acc = _load_resume(loop) if resume else _start(loop)
    _announce(loop, start)
    for epoch in range(start, loop.epochs):
        sums = _train_epoch(loop, epoch, progress, should_stop)
        if sums is None:
            return "cancelled"
        best_acc = _end_epoch(loop, epoch, sums, best_acc, progress)
    _finish(loop)
    return "done"


def _start(loop: Loop) -> tuple[int, float]:
    """A new run: epoch 0 is the untrained model, evaluated and saved as the initial checkpoint."""
    record = {"epoch": 0, **_test_metrics(_evaluate_test(loop)), "lr": loop.lr_at(0.0)}
    record.update(_train_eval(loop))
    if loop.is_main:
        save_checkpoint(
            loop.run.checkpoint("initial"), loop.model, _checkpoint_meta(loop, 0, record)
        )
        loop.run.log("epoch", **record)
        if loop.tracker:
            _begin_tracking(loop)
    return 0, -1.0


def _begin_tracking(loop: Loop) -> None:
    from ..files import write_json_atomic

    setup = {**loop.tracker.setup(), "probe_indices": loop.probe_indices}
    write_json_atomic(loop.run.curvature_setup_file, setup)
    _track(loop, 0)


def _track(loop: Loop, step: int) -> None:
    """Record the curvature point after `step` optimizer steps, with the rate of the step that led
    there (before the first step: the first step's)."""
    spe = loop.steps_per_epoch
    point = loop.tracker.point(step, step / spe, loop.lr_at(max(step - 1, 0) / spe))
    loop.run.log_curvature(point.to_dict())


def _load_resume(loop: Loop) -> tuple[int, float]:
    """(first epoch to train, best test accuracy so far) of a run continued from its folder."""
    path = loop.run.checkpoint("resume")
    if path.exists():
        start, best_acc, extra = load_resume_state(path, loop.model, loop.optimizer)
        if loop.tracker:
            loop.tracker.load_state({k[6:]: v for k, v in extra.items() if k.startswith("track.")})
    else:  # stopped in its first epoch: start again from the saved initial weights
        initial = loop.run.checkpoint("initial")
        if not initial.exists():
            raise RunError(
                f"{loop.run.path} has neither resume state nor an initial checkpoint; "
                f"start it again."
            )
        loop.model.load_state_dict(read_safetensors(initial)[0])
        start, best_acc = 0, -1.0
        if loop.tracker and loop.is_main and not loop.run.curvature_setup_file.exists():
            _begin_tracking(loop)  # killed before its first point
    if loop.is_main:
        loop.run.log("event", event="resume", epoch=start)
    return start, best_acc


def _announce(loop: Loop, start: int) -> None:
    if loop.is_main:
        loop.run.set_status(
            "running",
            progress=start / max(loop.epochs, 1),
            epoch=start,
            epochs=loop.epochs,
            step=start * loop.steps_per_epoch,
            total_steps=loop.total_steps,
            error=None,
        )


def _train_epoch(
    loop: Loop, epoch: int, progress: Progress | None, should_stop: ShouldStop
) -> EpochSums | None:
    """One pass over the training batches; None when a cancel stopped it (the run says so)."""
    loop.model.train()
    if loop.on_epoch_start:
        loop.on_epoch_start(epoch)
    sums = EpochSums()
    for i, (xb, yb) in enumerate(loop.train.epoch(epoch)):
        cancel, _ = loop.sync_flags(loop.is_main and should_stop(), False)
        if cancel:
            _mark_cancelled(loop, epoch, i)
            return None
        sums.lr = loop.lr_at(epoch + i / loop.steps_per_epoch)
        for g in loop.optimizer.param_groups:
            g["lr"] = sums.lr
        out = loop.step(xb, yb)
        _, bad = loop.sync_flags(False, not math.isfinite(out["loss"]))
        if bad:
            _diverge(loop, epoch, i, out["loss"], sums.lr)
        extras = sums.add(out, len(yb))
        if loop.is_main:
            _report_step(loop, epoch, i, out, len(yb), sums.lr, extras, progress)
            done = epoch * loop.steps_per_epoch + i + 1
            if loop.tracker and loop.tracker.due(done, loop.steps_per_epoch, loop.total_steps):
                _track(loop, done)
    return sums


def _report_step(loop, epoch, i, out, n, lr, extras, progress) -> None:
    run, total = loop.run, loop.total_steps
    done = epoch * loop.steps_per_epoch + i + 1
    acc = out["correct"] / n
    run.log(
        "step", epoch=epoch, step=i, global_step=done, lr=lr, loss=out["loss"], acc=acc, **extras
    )
    run.heartbeat(progress=done / total, epoch=epoch, step=done, total_steps=total)
    if progress:
        progress(done, total, _label(loop, epoch), loss=out["loss"])


def _label(loop: Loop, epoch: int) -> str:
    return f"epoch {epoch + 1}/{loop.epochs}"


def _mark_cancelled(loop: Loop, epoch: int, step: int) -> None:
    if loop.is_main:
        loop.run.log("event", event="cancelled", epoch=epoch, step=step)
        loop.run.set_status(
            "cancelled",
            error=None,
            message=f"{'stopped by SIGTERM' if terminated() else 'cancelled'} during epoch "
            f"{epoch + 1}; "
            f"the last finished epoch ({epoch}) can be resumed with --resume",
        )


def _diverge(loop: Loop, epoch: int, step: int, loss: float, lr: float) -> None:
    msg = (
        f"training diverged at epoch {epoch + 1}, step {step + 1}: loss is {loss}. "
        f"Lower the learning rate (now {lr:g}). The checkpoints of the last finished "
        f"epoch ({epoch}) are kept in {loop.run.checkpoints}."
    )
    if loop.is_main:
        loop.run.log("event", event="diverged", epoch=epoch, step=step, loss=str(loss))
        loop.run.set_status("failed", error=msg)
    raise Diverged(msg)


def _end_epoch(
    loop: Loop, epoch: int, sums: EpochSums, best_acc: float, progress: Progress | None
) -> float:
    """Evaluate, log and checkpoint a finished epoch; returns the best test accuracy so far."""
    test = _evaluate_test(loop)
    record = {
        "epoch": epoch + 1,
        "train_loss": sums.loss / sums.seen,
        "train_acc": sums.correct / sums.seen,
        **_test_metrics(test),
        "lr": sums.lr,
        "epoch_time": time.time() - sums.started,
    }
    record.update({f"{k}_mean": v / loop.steps_per_epoch for k, v in sums.diagnostics.items()})
    record.update({f"{k}_count": int(sums.diagnostics[k]) for k in sums.flags})  # e.g. rejections
    record.update(_train_eval(loop))
    if loop.is_main:
        _save_epoch(loop, epoch + 1, record, test, best_acc)
    best_acc = max(best_acc, test["acc"])
    if loop.is_main:
        extra = {f"track.{k}": v for k, v in loop.tracker.state().items()} if loop.tracker else {}
        save_resume_state(
            loop.run.checkpoint("resume"), loop.model, loop.optimizer, epoch + 1, best_acc, extra
        )
        loop.run.set_status(
            "running",
            progress=(epoch + 1) / loop.epochs,
            epoch=epoch + 1,
            step=(epoch + 1) * loop.steps_per_epoch,
            total_steps=loop.total_steps,
        )
        if progress:
            done = (epoch + 1) * loop.steps_per_epoch
            progress(done, loop.total_steps, _label(loop, epoch), epoch_done=record)
    return best_acc


def _save_epoch(loop: Loop, epoch: int, record: dict, test: dict, best_acc: float) -> None:
    run, model = loop.run, loop.model
    run.log("epoch", **record)
    meta = _checkpoint_meta(loop, epoch, {**record, "per_class_test_acc": test["per_class_acc"]})
    save_checkpoint(run.checkpoint("last"), model, meta)
    if test["acc"] > best_acc:
        save_checkpoint(run.checkpoint("best"), model, meta)
    if loop.save_every and epoch % loop.save_every == 0:
        save_checkpoint(run.checkpoint(f"epoch-{epoch:04d}"), model, meta)


def _finish(loop: Loop) -> None:
    if loop.is_main:
        epochs = loop.run.epochs()
        last = epochs[-1] if epochs else {}
        meta = _checkpoint_meta(loop, loop.epochs, last)
        save_checkpoint(loop.run.checkpoint("final"), loop.model, meta)
        loop.run.set_status("done", progress=1.0, error=None)


def _evaluate_test(loop: Loop) -> dict:
    return evaluate(loop.model, loop.test, loop.dataset.num_classes)


def _test_metrics(test: dict) -> dict:
    return {"test_loss": test["loss"], "test_acc": test["acc"]}


def _train_eval(loop: Loop) -> dict:
    """The clean training set's loss and accuracy, when the loop evaluates it."""
    if loop.eval_train is None:
        return {}
    tr = evaluate(loop.model, loop.eval_train, loop.dataset.num_classes)
    return {"train_eval_loss": tr["loss"], "train_eval_acc": tr["acc"]}


def _checkpoint_meta(loop: Loop, epoch: int, metrics: dict) -> dict:
    meta = dict(loop.meta)
    meta["metrics"] = metrics
    meta["provenance"] = {**meta.get("provenance", {}), "epoch": epoch, "run": str(loop.run.path)}
    return meta
