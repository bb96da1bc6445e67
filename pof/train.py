"""Training loops: pre-training (SGD or SAM, the baselines PoF post-trains) and the shared epoch
loop that writes a run folder, detects divergence, honours cancel requests and resumes exactly.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from . import __version__
from . import validate as check
from .checkpoints import read_safetensors, save_checkpoint, write_safetensors
from .data import Batches, Dataset, load_dataset, parse_augment
from .models import arch_args, build_model, count_parameters
from .runs import Run, RunError
from .sam import SAM
from .validate import ConfigError

Progress = Callable[[dict], None]
ShouldStop = Callable[[], bool]

# The paper's step schedule, 0.2x at epochs 60/120/160/200 of 250, as fractions of the run.
PAPER_MILESTONES = (0.24, 0.48, 0.64, 0.8)


class Diverged(Exception):
    pass


def check_device(name) -> None:
    """Refuse a device name torch cannot parse, or a CUDA/MPS device this machine lacks, up front."""
    hint = "; use auto, cpu, cuda or cuda:N"
    if not isinstance(name, str) or not name:
        raise ConfigError(f"device must be a name such as auto, cpu or cuda, got {name!r}{hint}.")
    if name == "auto":
        return
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError) as e:
        raise ConfigError(f"device {name!r} is not a device name ({e}){hint}.") from None
    if dev.type == "cuda" and not (
        torch.cuda.is_available() and (dev.index or 0) < torch.cuda.device_count()
    ):
        raise ConfigError(
            f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s){hint}."
        )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {name!r}: MPS is not available on this machine{hint}.")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device {name!r}: this tool runs on cpu, cuda or mps{hint}.")


def pick_device(name: str = "auto") -> torch.device:
    if name != "auto":
        check_device(name)
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@torch.no_grad()
def evaluate(model: nn.Module, batches: Batches, num_classes: int) -> dict:
    """Mean cross-entropy, accuracy and per-class accuracy, in eval mode (BN running statistics)."""
    was = model.training
    model.eval()
    loss_sum, correct = 0.0, torch.zeros(num_classes)
    counts = torch.zeros(num_classes)
    for xb, yb in batches:
        logits = model(xb)
        loss_sum += F.cross_entropy(logits, yb, reduction="sum").item()
        hit = (logits.argmax(1) == yb).float().cpu()
        correct.index_add_(0, yb.cpu(), hit)
        counts.index_add_(0, yb.cpu(), torch.ones_like(hit))
    model.train(was)
    n = counts.sum().item()
    return {
        "loss": loss_sum / n,
        "acc": correct.sum().item() / n,
        "per_class_acc": (correct / counts.clamp_min(1)).tolist(),
    }


# --- the shared epoch loop ---------------------------------------------------------------------


@dataclass
class Loop:
    """Everything the epoch loop needs. `step(x, y, lr)` trains on one batch and returns at least
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
    eval_train: Batches | None = (
        None  # clean (unaugmented) train set, evaluated each epoch if given
    )
    on_epoch_start: Callable[[int], None] | None = None
    is_main: bool = True  # distributed: only rank 0 writes the run folder
    # distributed: combine (stop, diverged) flags over all ranks so that every rank stops together
    sync_flags: Callable[[bool, bool], tuple[bool, bool]] = lambda stop, bad: (stop, bad)


def _set_lr(optimizer, lr: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = lr


def _save_resume(loop: Loop, epoch: int, best_acc: float) -> None:
    """Model and optimizer state in one file, so a kill can never leave them out of step."""
    tensors = {f"model.{k}": v for k, v in loop.model.state_dict().items()}
    sd = loop.optimizer.state_dict()
    scalars = {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optim.{idx}.{k}"] = v
            else:
                scalars[f"{idx}.{k}"] = v
    write_safetensors(
        tensors,
        {
            "epoch": epoch,
            "best_acc": best_acc,
            "param_groups": sd["param_groups"],
            "scalars": scalars,
        },
        loop.run.checkpoint("resume"),
    )


def _load_resume(loop: Loop) -> tuple[int, float]:
    path = loop.run.checkpoint("resume")
    if not path.exists():  # stopped in its first epoch: start again from the saved initial weights
        initial = loop.run.checkpoint("initial")
        if not initial.exists():
            raise RunError(
                f"{loop.run.path} has neither resume state nor an initial checkpoint; start it again."
            )
        loop.model.load_state_dict(read_safetensors(initial)[0])
        return 0, -1.0
    tensors, meta = read_safetensors(path)
    loop.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            idx, _, name = k[6:].partition(".")
            state.setdefault(int(idx), {})[name] = v
    for k, v in meta["scalars"].items():
        idx, _, name = k.partition(".")
        state.setdefault(int(idx), {})[name] = v
    loop.optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    return int(meta["epoch"]), float(meta["best_acc"])


def _checkpoint_meta(loop: Loop, epoch: int, metrics: dict) -> dict:
    meta = dict(loop.meta)
    meta["metrics"] = metrics
    meta["provenance"] = {**meta.get("provenance", {}), "epoch": epoch, "run": str(loop.run.path)}
    return meta


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
    """
    try:
        return _fit(loop, resume, progress, should_stop)
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


def _fit(
    loop: Loop, resume: bool, progress: Progress | None, should_stop: ShouldStop | None
) -> str:
    run, model, main = loop.run, loop.model, loop.is_main
    steps_per_epoch = len(loop.train)
    total = loop.epochs * steps_per_epoch
    if resume:
        start, best_acc = _load_resume(loop)
        if main:
            run.log("event", event="resume", epoch=start)
    else:
        start, best_acc = 0, -1.0
        init = evaluate(model, loop.test, loop.dataset.num_classes)
        record = {
            "epoch": 0,
            "test_loss": init["loss"],
            "test_acc": init["acc"],
            "lr": loop.lr_at(0.0),
        }
        if loop.eval_train is not None:
            tr = evaluate(model, loop.eval_train, loop.dataset.num_classes)
            record.update(train_eval_loss=tr["loss"], train_eval_acc=tr["acc"])
        if main:
            save_checkpoint(run.checkpoint("initial"), model, _checkpoint_meta(loop, 0, record))
            run.log("epoch", **record)
    if main:
        run.set_status(
            "running",
            progress=start / max(loop.epochs, 1),
            epoch=start,
            epochs=loop.epochs,
            step=start * steps_per_epoch,
            total_steps=total,
            error=None,
        )
    stop = should_stop or run.cancel_requested
    for epoch in range(start, loop.epochs):
        model.train()
        if loop.on_epoch_start:
            loop.on_epoch_start(epoch)
        t0 = time.time()
        loss_sum, correct, seen = 0.0, 0, 0
        diag_sums: dict[str, float] = {}
        bool_keys: set[str] = set()
        for i, (xb, yb) in enumerate(loop.train.epoch(epoch)):
            cancel, _ = loop.sync_flags(main and stop(), False)
            if cancel:
                if main:
                    run.log("event", event="cancelled", epoch=epoch, step=i)
                    run.set_status(
                        "cancelled",
                        error=None,
                        message=f"cancelled during epoch {epoch + 1}; "
                        f"the last finished epoch ({epoch}) can be resumed with --resume",
                    )
                return "cancelled"
            lr = loop.lr_at(epoch + i / steps_per_epoch)
            _set_lr(loop.optimizer, lr)
            out = loop.step(xb, yb)
            _, bad = loop.sync_flags(False, not math.isfinite(out["loss"]))
            if bad:
                msg = (
                    f"training diverged at epoch {epoch + 1}, step {i + 1}: loss is {out['loss']}. "
                    f"Lower the learning rate (now {lr:g}). The checkpoints of the last finished "
                    f"epoch ({epoch}) are kept in {run.checkpoints}."
                )
                if main:
                    run.log("event", event="diverged", epoch=epoch, step=i, loss=str(out["loss"]))
                    run.set_status("failed", error=msg)
                raise Diverged(msg)
            n = len(yb)
            loss_sum += out["loss"] * n
            correct += out["correct"]
            seen += n
            extras = {k: v for k, v in out.items() if k not in ("loss", "correct")}
            for k, v in extras.items():
                diag_sums[k] = diag_sums.get(k, 0.0) + float(v)
                if isinstance(v, bool):
                    bool_keys.add(k)
            gstep = epoch * steps_per_epoch + i + 1
            info = {
                "epoch": epoch,
                "epochs": loop.epochs,
                "step": gstep,
                "total_steps": total,
                "loss": out["loss"],
            }
            if main:
                run.log(
                    "step",
                    epoch=epoch,
                    step=i,
                    global_step=gstep,
                    lr=lr,
                    loss=out["loss"],
                    acc=out["correct"] / n,
                    **extras,
                )
                run.heartbeat(progress=gstep / total, epoch=epoch, step=gstep, total_steps=total)
                if progress:
                    progress(info)
        test = evaluate(model, loop.test, loop.dataset.num_classes)
        record = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / seen,
            "train_acc": correct / seen,
            "test_loss": test["loss"],
            "test_acc": test["acc"],
            "lr": lr,
            "epoch_time": time.time() - t0,
        }
        record.update({f"{k}_mean": v / steps_per_epoch for k, v in diag_sums.items()})
        record.update(
            {f"{k}_count": int(diag_sums[k]) for k in bool_keys}
        )  # e.g. PoF's rejected steps
        if loop.eval_train is not None:
            tr = evaluate(model, loop.eval_train, loop.dataset.num_classes)
            record.update(train_eval_loss=tr["loss"], train_eval_acc=tr["acc"])
        if main:
            run.log("epoch", **record)
            meta = _checkpoint_meta(
                loop, epoch + 1, {**record, "per_class_test_acc": test["per_class_acc"]}
            )
            save_checkpoint(run.checkpoint("last"), model, meta)
            if test["acc"] > best_acc:
                save_checkpoint(run.checkpoint("best"), model, meta)
            if loop.save_every and (epoch + 1) % loop.save_every == 0:
                save_checkpoint(run.checkpoint(f"epoch-{epoch + 1:04d}"), model, meta)
        best_acc = max(best_acc, test["acc"])
        if main:
            _save_resume(loop, epoch + 1, best_acc)
            run.set_status(
                "running",
                progress=(epoch + 1) / loop.epochs,
                epoch=epoch + 1,
                step=(epoch + 1) * steps_per_epoch,
                total_steps=total,
            )
            if progress:
                progress({**info, "epoch_done": record})
    if main:
        epochs = run.epochs()
        save_checkpoint(
            run.checkpoint("final"),
            model,
            _checkpoint_meta(loop, loop.epochs, epochs[-1] if epochs else {}),
        )
        run.set_status("done", progress=1.0, error=None)
    return "done"


# --- pre-training ------------------------------------------------------------------------------


@dataclass
class PretrainConfig:
    model: str = "cnn-small"
    arch_args: dict = field(default_factory=dict)
    dataset: str = "digits"
    data_root: str | None = None
    data_options: dict = field(
        default_factory=dict
    )  # load_dataset's classes, label_column, mean, std
    svhn_extra: bool = False
    epochs: int = 30
    batch_size: int = 128
    optimizer: str = "sgd"  # "sgd" (Nesterov) or "sam"
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "step"  # "step", "cosine" or "constant"
    milestones: list[int] | None = None  # epochs; None = the paper's fractions of `epochs`
    lr_decay: float = 0.2
    rho: float = 0.05
    adaptive: bool = False
    augment: str = "default"
    seed: int = 0
    device: str = "auto"
    save_every: int = 0

    def __post_init__(self):
        validate_common(self)
        from .models import ARCHS

        check.choice("model", self.model, list(ARCHS))
        check.arch_args("arch_args", self.arch_args, ARCHS[self.model].defaults)
        check.choice("optimizer", self.optimizer, ("sgd", "sam"))
        check.choice("schedule", self.schedule, ("step", "cosine", "constant"))
        check.finite("lr", self.lr, 0, check.MAX_LR, lo_open=True)
        check.positive_int("batch_size", self.batch_size)
        check.finite("lr_decay", self.lr_decay, 0, 1, lo_open=True)
        if self.milestones is not None:
            if not isinstance(self.milestones, list) or not self.milestones:
                raise ConfigError(f"milestones must be a list of epochs, got {self.milestones!r}.")
            for m in self.milestones:
                check.positive_int("milestones (epochs at which the rate decays)", m)
        for name in ("nesterov", "adaptive", "svhn_extra"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}.")

    def resolved_milestones(self) -> list[int]:
        if self.milestones is not None:
            return sorted(self.milestones)
        return [max(1, round(f * self.epochs)) for f in PAPER_MILESTONES]


def validate_common(cfg) -> None:
    """The options pre-training and post-training share (their meaning is the same in both)."""
    check.positive_int("epochs", cfg.epochs)
    if cfg.batch_size is not None:
        check.positive_int("batch_size", cfg.batch_size)
    check.finite("momentum", cfg.momentum, 0, 1, hi_open=True)
    check.finite("weight_decay", cfg.weight_decay, 0, 1)
    check.finite("rho (the SAM radius)", cfg.rho, 0, 1e3)
    check.positive_int("seed", cfg.seed, 0)
    if cfg.seed >= 2**32:
        raise ConfigError(f"seed must be below 2^32, got {cfg.seed}.")
    check.positive_int("save_every (epochs; 0 = off)", cfg.save_every, 0)
    check.augment("augment", cfg.augment)
    check_device(cfg.device)
    dataset_optional = not isinstance(
        cfg, PretrainConfig
    )  # post-training: None = the checkpoint's own
    if not (isinstance(cfg.dataset, str) and cfg.dataset.strip()) and not (
        dataset_optional and cfg.dataset is None
    ):
        raise ConfigError(f"dataset must name a dataset, got {cfg.dataset!r}.")
    check.optional_str("data_root", cfg.data_root)
    if not isinstance(cfg.data_options, dict):
        raise ConfigError(f"data_options must be a dict, got {cfg.data_options!r}.")


def lr_schedule(lr: float, schedule: str, epochs: int, milestones: list[int], decay: float):
    def at(t: float) -> float:  # t: fractional epoch
        if schedule == "constant":
            return lr
        if schedule == "cosine":
            return 0.5 * lr * (1 + math.cos(math.pi * min(t, epochs) / epochs))
        return lr * decay ** sum(int(t) >= m for m in milestones)

    return at


def make_optimizer(params, cfg) -> object:
    kwargs = dict(
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov and cfg.momentum > 0,
        weight_decay=cfg.weight_decay,
    )
    if cfg.optimizer == "sam":
        return SAM(params, torch.optim.SGD, rho=cfg.rho, adaptive=cfg.adaptive, **kwargs)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, **kwargs)
    raise ValueError(f"Unknown optimizer {cfg.optimizer!r}; use sgd or sam.")


class FrozenBNStats:
    """Keep BN running statistics unchanged during SAM's second forward pass (it sees perturbed weights)."""

    def __init__(self, model):
        self.bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def __enter__(self):
        self.saved = [m.momentum for m in self.bns]
        for m in self.bns:
            m.momentum = 0.0

    def __exit__(self, *exc):
        for m, mom in zip(self.bns, self.saved):
            m.momentum = mom


def plain_step(model, optimizer):
    def step(xb, yb):
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"loss": loss.item(), "correct": (logits.argmax(1) == yb).sum().item()}

    return step


def sam_step(model, optimizer: SAM):
    def step(xb, yb):
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
        loss.backward()
        optimizer.first_step()
        with FrozenBNStats(model):
            F.cross_entropy(model(xb), yb).backward()
        optimizer.second_step()
        return {"loss": loss.item(), "correct": (logits.argmax(1) == yb).sum().item()}

    return step


def _model_meta(cfg: PretrainConfig, dataset: Dataset, full_args: dict) -> dict:
    return {
        "arch": cfg.model,
        "arch_args": full_args,
        "num_classes": dataset.num_classes,
        "input_shape": list(dataset.input_shape),
        "mean": list(dataset.mean),
        "std": list(dataset.std),
        "dataset": cfg.dataset,
        "class_names": list(dataset.classes),
        "data_options": {k: v for k, v in cfg.data_options.items() if v is not None},
    }


def build(model: str, input_shape, num_classes: int, args: dict) -> nn.Module:
    """A registry model, sized first on the meta device: arguments that cannot build it, or a model
    that would not fit in memory, are refused before any weight is allocated."""
    try:
        with torch.device("meta"):
            n = count_parameters(build_model(model, input_shape, num_classes, **args))
    except (
        Exception
    ):  # some architectures read sizes off real tensors: they are sized by the real build
        n = 0
    need = n * 4 * 4  # weights, gradients, momentum and SAM's copy, float32
    have = (
        os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else None
    )
    if have and need > have:
        raise ConfigError(
            f"{model} with {args} has {n:.3g} parameters: training needs about {need / 2**30:.3g} GiB "
            f"but this machine has {have / 2**30:.3g} GiB; use a smaller width or depth."
        )
    try:
        return build_model(model, input_shape, num_classes, **args)
    except (TypeError, ValueError, RuntimeError) as e:
        raise ConfigError(
            f"cannot build {model} with {args} for inputs {tuple(input_shape)}: {e}"
        ) from None


def pretrain(
    cfg: PretrainConfig,
    run_dir,
    resume: bool = False,
    overwrite: bool = False,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
    dataset: Dataset | None = None,
) -> Run:
    """Train a model from scratch into the run folder `run_dir`; returns the Run.

    With `resume`, the configuration is read back from the folder and training continues from
    the last finished epoch with the same optimizer state and data order.
    """
    if resume:
        run = Run(run_dir)
        cfg = check.saved_config(PretrainConfig, run, "pretrain")
    elif not isinstance(cfg, PretrainConfig):
        raise ConfigError(f"pretrain takes a PretrainConfig, got {type(cfg).__name__}.")
    else:
        check.output_dir("--out", run_dir)
    # everything that can be refused is checked before the run folder exists
    dataset = dataset or load_dataset(
        cfg.dataset, cfg.data_root, svhn_extra=cfg.svhn_extra, **cfg.data_options
    )
    device = pick_device(cfg.device)
    augment = parse_augment(cfg.augment, dataset.augment)
    torch.manual_seed(cfg.seed)
    full_args = arch_args(cfg.model, **cfg.arch_args)
    model = build(cfg.model, dataset.input_shape, dataset.num_classes, full_args).to(device)
    milestones = cfg.resolved_milestones()
    if resume:
        run.begin_resume()
    else:
        run = Run.create(
            run_dir,
            {
                "command": "pretrain",
                "config": asdict(cfg),
                "milestones": milestones,
                "model": cfg.model,
                "dataset": cfg.dataset,
                "epochs": cfg.epochs,
                "parameters": count_parameters(model),
                "version": __version__,
            },
            overwrite=overwrite,
        )
    optimizer = make_optimizer(model.parameters(), cfg)
    lr_at = lr_schedule(cfg.lr, cfg.schedule, cfg.epochs, milestones, cfg.lr_decay)
    train = Batches(
        dataset.x_train,
        dataset.y_train,
        dataset.mean,
        dataset.std,
        cfg.batch_size,
        device,
        augment=augment,
        shuffle=True,
        seed=cfg.seed,
    )
    test = Batches(
        dataset.x_test, dataset.y_test, dataset.mean, dataset.std, 1024, device, shuffle=False
    )
    meta = _model_meta(cfg, dataset, full_args)
    meta["provenance"] = {
        "kind": "pretrain",
        "optimizer": cfg.optimizer,
        "rho": cfg.rho if cfg.optimizer == "sam" else None,
        "schedule": {
            "lr": cfg.lr,
            "type": cfg.schedule,
            "milestones": milestones,
            "decay": cfg.lr_decay,
            "epochs": cfg.epochs,
        },
        "final_lr": lr_at(cfg.epochs - 1),
        "momentum": cfg.momentum,
        "nesterov": cfg.nesterov,
        "weight_decay": cfg.weight_decay,
        "batch_size": cfg.batch_size,
        "augment": augment,
        "seed": cfg.seed,
    }
    step = sam_step(model, optimizer) if cfg.optimizer == "sam" else plain_step(model, optimizer)
    loop = Loop(
        run, model, optimizer, step, train, test, dataset, cfg.epochs, lr_at, meta, cfg.save_every
    )
    fit(loop, resume=resume, progress=progress, should_stop=should_stop)
    return run
