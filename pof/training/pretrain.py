"""Pre-training: a model trained from scratch (Nesterov SGD or SAM), the baseline PoF post-trains.

A driver of the epoch loop (pof.training.loop): it checks the configuration, loads the data,
builds the model and the optimizer, creates the run folder and hands them to `fit`. Its
configuration, PretrainConfig, lives in pof.config (no torch).
"""

from __future__ import annotations

import os
from dataclasses import asdict

import torch
from torch import nn

from .. import __version__
from .. import validate as check
from ..config import PretrainConfig
from ..data.batches import Batches
from ..data.dataset import Dataset
from ..data.load import load_dataset
from ..data.names import parse_augment
from ..device import pick_device
from ..models.networks import arch_args, build_model, count_parameters
from ..models.split import split_model
from ..progress import Progress, ShouldStop
from ..runs.run import Run
from ..validate import ConfigError
from .loop import Loop, fit
from .optim import lr_schedule, make_optimizer, plain_step, sam_step
from .tracking import make_tracker


def build(model: str, input_shape, num_classes: int, args: dict) -> nn.Module:
    """A registry model, sized first on the meta device: arguments that cannot build it, or a model
    that would not fit in memory, are refused before any weight is allocated."""
    try:
        with torch.device("meta"):
            n = count_parameters(build_model(model, input_shape, num_classes, **args))
    except Exception:  # some architectures read sizes off real tensors: the real build sizes them
        n = 0
    need = n * 4 * 4  # weights, gradients, momentum and SAM's copy, float32
    have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0
    if have and need > have:
        raise ConfigError(
            f"{model} with {args} has {n:.3g} parameters: training needs about "
            f"{need / 2**30:.3g} GiB but this machine has {have / 2**30:.3g} GiB; use a smaller "
            f"width or depth."
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
        cfg = run.saved_config(PretrainConfig, "pretrain")
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
    # the probe subset is checked (size, memory) before the run folder exists
    tracked = make_tracker(
        cfg.tracking,
        model,
        train,
        cfg.seed,
        dict(momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay),
        split=split_model(model),
    )
    if resume:
        run.begin_resume()
    else:
        run = Run.create(run_dir, _run_config(cfg, model, milestones), overwrite=overwrite)
    optimizer = make_optimizer(model.parameters(), cfg)
    lr_at = lr_schedule(cfg.lr, cfg.schedule, cfg.epochs, milestones, cfg.lr_decay)
    test = Batches(
        dataset.x_test, dataset.y_test, dataset.mean, dataset.std, 1024, device, shuffle=False
    )
    meta = _model_meta(cfg, dataset, full_args)
    meta["provenance"] = _provenance(cfg, milestones, lr_at, augment)
    step = sam_step(model, optimizer) if cfg.optimizer == "sam" else plain_step(model, optimizer)
    loop = Loop(
        run,
        model,
        optimizer,
        step,
        train,
        test,
        dataset,
        cfg.epochs,
        lr_at,
        meta,
        cfg.save_every,
        tracker=tracked[0] if tracked else None,
        probe_indices=tracked[1] if tracked else None,
    )
    fit(loop, resume=resume, progress=progress, should_stop=should_stop)
    return run


def _run_config(cfg: PretrainConfig, model: nn.Module, milestones: list[int]) -> dict:
    return {
        "command": "pretrain",
        "config": asdict(cfg),
        "milestones": milestones,
        "model": cfg.model,
        "dataset": cfg.dataset,
        "epochs": cfg.epochs,
        "parameters": count_parameters(model),
        "version": __version__,
    }


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
        # with the options the loader chose (a CSV's drawn split), so that the data comes back
        "data_options": {
            **{k: v for k, v in cfg.data_options.items() if v is not None},
            **dataset.options,
        },
    }


def _provenance(cfg: PretrainConfig, milestones: list[int], lr_at, augment) -> dict:
    """How the checkpoint was trained: post-training continues this schedule (default_post_lr)."""
    return {
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
