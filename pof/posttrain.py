"""Post-training of a trained classifier: PoF and its fair controls, single process or torchrun.

Methods (POF.md, "What to compare it against"), all with the same data order, seeds, learning rate
and optimizer, so that their differences are the methods':
    pof               features trained under the perturbed last layer w0 + delta (delta: weak batch)
    finetune-frozen   identical, delta = 0
    finetune          all layers trained
    sam               all layers trained with SAM (rho)
    random-direction  delta of PoF's length |gamma eta* g| in a Gaussian direction
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from . import __version__
from . import validate as check
from .checkpoints import CheckpointError, data_for, dataset_of, file_sha256, load_checkpoint
from .data import Batches, parse_augment
from .device import pick_device
from .loading import ModelSource
from .loop import Loop, fit
from .method import PERTURBATION_OF_METHOD, PoF, PoFConfig
from .models import split_model
from .optim import plain_step, sam_step
from .options import option
from .runs import Run, RunError
from .sam import SAM
from .shared_config import (
    AUGMENT_HELP,
    DATA_OPTIONS_HELP,
    DATA_ROOT_HELP,
    DATASET_HELP,
    DEVICE_HELP,
    SVHN_EXTRA_HELP,
    check_bools,
    validate_common,
)
from .validate import ConfigError

METHODS = ("pof", "finetune-frozen", "finetune", "sam", "random-direction")
FROZEN_METHODS = ("pof", "finetune-frozen", "random-direction")
PAPER_POST_LR = 0.1 * 0.2**4  # 1.6e-4: the paper's schedule continued past its last decay


@dataclass
class PostTrainConfig:
    checkpoint: str = option(
        "",
        "trained model: a checkpoint of this project, or any model file with --arch and "
        "--dataset (not needed with --resume)",
        cli=False,  # the positional CHECKPOINT
    )
    dataset: str | None = option(None, DATASET_HELP + " (default: the checkpoint's dataset)")
    data_root: str | None = option(None, DATA_ROOT_HELP)
    data_options: dict = option(help=DATA_OPTIONS_HELP, factory=dict, cli=False)
    svhn_extra: bool = option(False, SVHN_EXTRA_HELP)
    arch: str | None = option(
        None,
        "its architecture: a registry name (mlp, cnn-small, resnet20, resnet56, wrn-16-4, "
        "wrn-28-10, resnet18-cifar), torchvision:NAME (any torchvision classification model), or "
        "your own factory path/to/file.py:function or package.module:function (this runs your "
        "code). Not needed for a torch.export .pt2, which carries its architecture",
    )
    arch_args: dict = option(
        help="argument for the architecture, e.g. width=16, num_classes=10 (repeatable; JSON "
        "values)",
        factory=dict,
        cli=False,
    )
    classifier: str | None = option(
        None,
        "the last linear layer PoF perturbs, e.g. head.fc (default: the last nn.Linear)",
        metavar="LAYER",
    )
    key_map: list = option(
        help="rename a key prefix of the file's weights (repeatable); a prefix shared by all "
        "keys (module., model., ...) is stripped without it",
        factory=list,
        cli=False,
    )
    method: str = option(
        "pof",
        "pof; finetune-frozen (same, no perturbation); finetune (all layers); sam (all layers, "
        "SAM); random-direction (PoF's perturbation length, random direction)",
        choices=METHODS,
    )
    epochs: int = option(10, "post-training epochs (paper: 10 for CIFAR, 50 for SVHN)")
    batch_size: int | None = option(
        None,
        "global training batch (default: the pre-training batch size in the checkpoint, else 256)",
    )
    lr: float | None = option(
        None,
        "learning rate (default: the rate the checkpoint's pre-training schedule ended with, as "
        "the paper continues it: 0.1 x 0.2^4 = 1.6e-4 for its schedule)",
    )
    momentum: float = option(0.9, "SGD momentum")
    nesterov: bool = option(True, "Nesterov momentum (--no-nesterov: plain momentum)")
    weight_decay: float = option(5e-4, "L2 weight decay")
    rho: float = option(0.05, "SAM radius (--method sam)")
    pof: PoFConfig = option(
        help="PoF's own options (their flags: the PoF group)", factory=PoFConfig, cli=False
    )
    augment: str = option("default", AUGMENT_HELP)
    drop_last: bool = option(
        False, "drop the last incomplete batch (torchrun always does: equal shards)"
    )
    sync_bn: bool = option(False, "torchrun: SyncBatchNorm across processes (GPU only)")
    seed: int = option(0, "seed for data order, weak batches and gamma")
    device: str = option("auto", DEVICE_HELP)
    save_every: int = option(0, "also keep a checkpoint every N epochs")

    def __post_init__(self):
        if isinstance(self.pof, dict):
            try:
                self.pof = PoFConfig(**self.pof)
            except TypeError as e:
                raise ConfigError(f"pof: {e}") from None
        if not isinstance(self.pof, PoFConfig):
            raise ConfigError(f"pof must be a PoFConfig, got {self.pof!r}.")
        check.choice("method", self.method, METHODS)
        if not isinstance(self.checkpoint, (str, os.PathLike)):
            raise ConfigError(f"checkpoint must be a path, got {self.checkpoint!r}.")
        validate_common(self, dataset_optional=True)
        if self.lr is not None:
            check.finite("lr", self.lr, 0, check.MAX_LR, lo_open=True)
        for name in ("arch", "classifier"):
            check.optional_str(name, getattr(self, name))
        if not isinstance(self.arch_args, dict) or not isinstance(self.key_map, list):
            raise ConfigError("arch_args must be a dict and key_map a list of OLD=NEW strings.")
        check_bools(self, ("nesterov", "drop_last", "sync_bn", "svhn_extra"))


def _refuse_overwriting_source(out: Path, ckpt: Path) -> None:
    """--overwrite empties --out: refuse when the checkpoint we start from lies inside it."""
    try:
        inside = ckpt.resolve().is_relative_to(out.resolve())
    except OSError:
        return
    if inside:
        raise RunError(
            f"--overwrite would delete the checkpoint it starts from: {ckpt} lies in {out}. "
            f"Give another --out (or copy the checkpoint out of {out} first)."
        )


def _recorded_batch_size(meta: dict) -> int | None:
    size = (meta.get("provenance") or {}).get("batch_size")
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= 1 else None


def default_post_lr(meta: dict) -> tuple[float, str]:
    """The learning rate the pre-training schedule ends with (the paper continues it: 0.1 x
    0.2^4)."""
    try:
        lr, why = _default_post_lr(meta)
        lr = float(lr)
    except (KeyError, TypeError, ValueError, AttributeError, ZeroDivisionError) as e:
        raise CheckpointError(
            f"the checkpoint's recorded training schedule cannot be read ({type(e).__name__}: "
            f"{e}); give the learning rate with --lr."
        ) from None
    if not (math.isfinite(lr) and lr > 0):
        raise CheckpointError(
            f"the learning rate derived from the checkpoint's schedule is {lr}; give --lr."
        )
    return lr, why


def _default_post_lr(meta: dict) -> tuple[float, str]:
    prov = meta.get("provenance") or {}
    if prov.get("kind") == "post-train":  # post-training a post-trained model again: keep its rate
        return prov[
            "lr"
        ], f"the rate of the post-training that made this checkpoint ({prov['lr']:g})"
    sched = prov.get("schedule")
    if not sched:
        return PAPER_POST_LR, "no schedule recorded in the checkpoint: the paper's 1.6e-4"
    if sched["type"] == "step":
        lr = sched["lr"] * sched["decay"] ** len(sched["milestones"])
        return (
            lr,
            f"the pre-training step schedule's last rate ({sched['lr']:g} x "
            f"{sched['decay']:g}^{len(sched['milestones'])})",
        )
    if sched["type"] == "constant":
        return sched["lr"], "the pre-training's constant rate"
    # a cosine schedule ends at 0: use the paper's ratio to the initial rate
    lr = sched["lr"] * 0.2**4
    return lr, f"cosine pre-training: its initial rate x 0.2^4 as in the paper ({lr:g})"


# --- distributed -------------------------------------------------------------------------------


@dataclass
class Dist:
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def sync_flags(self, stop: bool, bad: bool) -> tuple[bool, bool]:
        if self.world == 1:
            return stop, bad
        t = torch.tensor([float(stop), float(bad)])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t[0]), bool(t[1])


def init_distributed(device_name: str) -> tuple[Dist, torch.device]:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; NCCL on GPUs, gloo on CPUs."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist(), pick_device(device_name)
    device = pick_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size()), device


class ShardedBatches(Batches):
    """Each rank takes its equal slice of every global batch: the mean of the ranks' gradients is
    then the gradient of the whole global batch, as in a single process."""

    def __init__(self, *args, rank: int, world: int, **kw):
        super().__init__(*args, drop_last=True, **kw)
        if self.batch_size % world:
            raise ConfigError(
                f"--batch-size {self.batch_size} must be divisible by the {world} processes."
            )
        self.rank, self.world = rank, world

    def _prepare(self, idx, gen):
        per = len(idx) // self.world
        # augment the whole global batch (same random draws on every rank), then keep this rank's
        # part
        x, y = super()._prepare(idx, gen)
        return x[self.rank * per : (self.rank + 1) * per], y[
            self.rank * per : (self.rank + 1) * per
        ]


# --- the job -----------------------------------------------------------------------------------


def post_train(
    cfg: PostTrainConfig,
    run_dir,
    resume: bool = False,
    overwrite: bool = False,
    progress=None,
    should_stop=None,
) -> Run:
    """Post-train the checkpoint cfg.checkpoint into the run folder `run_dir` (see the module).
    Under torchrun every rank calls this; rank 0 writes the folder."""
    if resume:
        run = Run(run_dir)
        cfg = check.saved_config(PostTrainConfig, run, "post-train")
    elif not isinstance(cfg, PostTrainConfig):
        raise ConfigError(f"post_train takes a PostTrainConfig, got {type(cfg).__name__}.")
    if not str(cfg.checkpoint).strip():
        raise ConfigError("post-training needs a checkpoint to start from.")
    ckpt = Path(cfg.checkpoint)
    if not resume:
        check.output_dir("--out", run_dir)
        if overwrite:
            _refuse_overwriting_source(Path(run_dir), ckpt)
    # everything that can be refused is checked before the run folder is created
    ddp, device = init_distributed(cfg.device)
    dataset_name = dataset_of(ckpt, cfg.dataset)
    dataset = data_for(ckpt, cfg.dataset, cfg.data_root, cfg.data_options, cfg.svhn_extra)
    model, meta = load_checkpoint(
        ckpt,
        dataset=dataset,
        source=ModelSource(cfg.arch, cfg.arch_args, cfg.classifier, cfg.key_map),
    )
    for warning in meta["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    if meta["nonfinite"]:
        raise CheckpointError(
            f"{ckpt} holds NaN or infinite weights ({', '.join(meta['nonfinite'][:3])}): "
            f"post-training would only spread them. Start from a checkpoint of an earlier epoch."
        )
    if meta["classifier"] is None:
        raise CheckpointError(f"PoF needs the model's last linear layer: {meta['split']}")
    lr, lr_reason = (cfg.lr, "given") if cfg.lr is not None else default_post_lr(meta)
    batch_size = cfg.batch_size or _recorded_batch_size(meta) or 256
    augment = parse_augment(cfg.augment, dataset.augment)
    torch.manual_seed(cfg.seed)
    if cfg.sync_bn and ddp.world > 1:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device).train()
    split = split_model(model, classifier=meta["classifier"])
    frozen = cfg.method in FROZEN_METHODS
    if frozen:
        split.classifier.requires_grad_(False)  # w0 is read, never written
    trainable = [p for p in model.parameters() if p.requires_grad]
    sgd = dict(
        lr=lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov and cfg.momentum > 0,
        weight_decay=cfg.weight_decay,
    )
    optimizer = (
        SAM(trainable, torch.optim.SGD, rho=cfg.rho, **sgd)
        if cfg.method == "sam"
        else torch.optim.SGD(trainable, **sgd)
    )

    if resume:
        if ddp.is_main:
            run.begin_resume()
    elif ddp.is_main:
        run = Run.create(
            run_dir,
            {
                "command": "post-train",
                "config": asdict(cfg),
                "checkpoint": str(ckpt),
                "checkpoint_sha256": file_sha256(ckpt),
                "model": meta["arch"],
                "dataset": dataset_name,
                "epochs": cfg.epochs,
                "method": cfg.method,
                "lr": lr,
                "lr_reason": lr_reason,
                "batch_size": batch_size,
                "world_size": ddp.world,
                "split": split.describe(),
                "version": __version__,
            },
            overwrite=overwrite,
        )
    else:
        run = Run(run_dir)
    if ddp.world > 1:
        dist.barrier()  # the folder exists before anyone reads or writes it

    mean, std = meta["mean"], meta["std"]  # the model's input normalization, recorded with it
    common = dict(
        mean=mean, std=std, batch_size=batch_size, device=device, augment=augment, seed=cfg.seed
    )
    if ddp.world > 1:
        train = ShardedBatches(
            dataset.x_train, dataset.y_train, rank=ddp.rank, world=ddp.world, **common
        )
    else:
        train = Batches(dataset.x_train, dataset.y_train, drop_last=cfg.drop_last, **common)
    test = Batches(dataset.x_test, dataset.y_test, mean, std, 1024, device, shuffle=False)
    eval_train = Batches(dataset.x_train, dataset.y_train, mean, std, 1024, device, shuffle=False)

    wrap = (
        (
            lambda m: nn.parallel.DistributedDataParallel(
                m, device_ids=[device.index] if device.type == "cuda" else None
            )
        )
        if ddp.world > 1
        else (lambda m: m)
    )
    if frozen:
        weak = Batches(
            dataset.x_train,
            dataset.y_train,
            mean,
            std,
            cfg.pof.weak_batch_size,
            device,
            augment=augment,
            seed=cfg.seed,
        )
        unit = PoF(  # pof, finetune-frozen and random-direction: one unit, one switch
            split.features,
            split.classifier,
            optimizer,
            weak,
            cfg.pof,
            perturbation=PERTURBATION_OF_METHOD[cfg.method],
            seed=cfg.seed,
            rank=ddp.rank,
            features_train=wrap(split.features),
        )
        step = lambda xb, yb: unit.step(xb, yb).metrics()
        on_epoch_start = unit.start_epoch
    else:
        step = (sam_step if cfg.method == "sam" else plain_step)(wrap(model), optimizer)
        on_epoch_start = None

    post_meta = {k: v for k, v in meta.items() if k not in ("format", "version", "metrics")}
    post_meta["dataset"] = (
        dataset_name  # the data it was post-trained on (may be another copy of the source's)
    )
    post_meta["data_options"] = {k: v for k, v in cfg.data_options.items() if v is not None}
    post_meta["provenance"] = {
        "kind": "post-train",
        "method": cfg.method,
        "source": str(ckpt),
        "source_sha256": file_sha256(ckpt),
        "source_provenance": meta.get("provenance"),
        "lr": lr,
        "epochs": cfg.epochs,
        "batch_size": batch_size,
        "seed": cfg.seed,
        "pof": cfg.pof.to_dict() if frozen else None,
        "rho": cfg.rho if cfg.method == "sam" else None,
        "world_size": ddp.world,
    }
    loop = Loop(
        run,
        model,
        optimizer,
        step,
        train,
        test,
        dataset,
        cfg.epochs,
        lambda t: lr,
        post_meta,
        cfg.save_every,
        eval_train=eval_train,
        on_epoch_start=on_epoch_start,
        is_main=ddp.is_main,
        sync_flags=ddp.sync_flags,
    )
    fit(loop, resume=resume, progress=progress if ddp.is_main else None, should_stop=should_stop)
    return run
