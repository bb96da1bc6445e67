"""Post-training of a trained classifier: PoF and its fair controls, single process or torchrun.

Methods (docs/method.md, "Controls"), all with the same data order, seeds, learning rate
and optimizer, so that their differences are the methods':
    pof               features trained under the perturbed last layer w0 + delta (delta: weak batch)
    finetune-frozen   identical, delta = 0
    finetune          all layers trained
    sam               all layers trained with SAM (rho)
    random-direction  delta of PoF's length |gamma eta* g| in a Gaussian direction

Its configuration (PostTrainConfig, METHODS, default_post_lr) lives in pof.config (no torch).
"""

from __future__ import annotations

import gc
import os
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from .. import __version__
from .. import validate as check
from ..config import FROZEN_METHODS, PostTrainConfig, default_post_lr
from ..data.batches import Batches
from ..data.names import parse_augment
from ..device import pick_device
from ..method.pof import PERTURBATION_OF_METHOD, PoF
from ..method.sam import SAM
from ..models.formats import CheckpointError, ModelSource
from ..models.loading import data_for, load_checkpoint
from ..models.metadata import dataset_of, file_sha256
from ..models.split import split_model
from ..runs.run import Run, RunError
from ..validate import ConfigError
from .loop import Loop, fit
from .optim import plain_step, sam_step
from .tracking import make_tracker


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


def _check_source_unchanged(run: Run, ckpt: Path) -> None:
    """A resume continues from the weights the run started from, or is refused saying why."""
    saved = run.config().get("checkpoint_sha256")
    try:
        digest = file_sha256(ckpt)
    except FileNotFoundError:
        where = "" if ckpt.is_absolute() else " (relative to the folder it was started from)"
        raise CheckpointError(
            f"{run.path} started from {ckpt}{where}, which is no longer there (moved or deleted). "
            f"Put it back there to resume, or start the run again with --overwrite."
        ) from None
    except OSError as e:
        raise CheckpointError(f"{ckpt}, the checkpoint {run.path} started from: {e}") from None
    if isinstance(saved, str) and digest != saved:
        raise CheckpointError(
            f"{ckpt} has changed since {run.path} started from it (sha256 {digest[:12]}..., was "
            f"{saved[:12]}...): resuming would mix two models. Put the original back, or start "
            f"the run again with --overwrite."
        )


def _recorded_batch_size(meta: dict) -> int | None:
    size = (meta.get("provenance") or {}).get("batch_size")
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= 1 else None


# --- distributed -------------------------------------------------------------------------------


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    owned: bool = False  # this run made the process group, so it takes it down at the end

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
    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), owned), device


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
        cfg = run.saved_config(PostTrainConfig, "post-train")
    elif not isinstance(cfg, PostTrainConfig):
        raise ConfigError(f"post_train takes a PostTrainConfig, got {type(cfg).__name__}.")
    if not str(cfg.checkpoint).strip():
        raise ConfigError("post-training needs a checkpoint to start from.")
    ckpt = Path(cfg.checkpoint).expanduser()
    if resume:
        _check_source_unchanged(run, ckpt)
    else:
        # saved absolute, with its hash: a resume works from any folder and notices a swapped file
        ckpt = ckpt.absolute()
        cfg = replace(cfg, checkpoint=str(ckpt))
        check.output_dir("--out", run_dir)
        if overwrite:
            _refuse_overwriting_source(Path(run_dir), ckpt)
    ddp, device = init_distributed(cfg.device)
    try:
        run = _post_train(cfg, ckpt, run_dir, resume, overwrite, progress, should_stop, ddp, device)
    except BaseException:
        if ddp.owned:
            _leave_process_group(succeeded=False)
        raise
    if ddp.owned:
        _leave_process_group(succeeded=True)
    return run


def _leave_process_group(succeeded: bool) -> None:
    """DDP's reducer keeps the process group alive past destroy_process_group; if it is only
    freed while the interpreter shuts down, gloo's threads abort the rank ("terminate called
    without an active exception", SIGABRT) after a finished run. So: free it now, wait for every
    rank (one still writing must not lose its peers), then take the group down."""
    gc.collect()
    if succeeded:
        dist.barrier()
    dist.destroy_process_group()


def _post_train(cfg, ckpt, run_dir, resume, overwrite, progress, should_stop, ddp, device) -> Run:
    # everything that can be refused is checked before the run folder is created
    run = Run(run_dir) if resume else None
    dataset_name = dataset_of(ckpt, cfg.dataset)
    dataset = data_for(ckpt, cfg.dataset, cfg.data_root, cfg.data_options, cfg.svhn_extra)
    model, meta = load_checkpoint(
        ckpt,
        dataset=dataset,
        source=ModelSource(cfg.arch, cfg.arch_args, cfg.classifier, cfg.key_map, cfg.weights_key),
    )
    for note in meta["notes"]:
        print(f"note: {note}", file=sys.stderr)
    for warning in meta["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    if meta["nonfinite"]:
        raise CheckpointError(
            f"{ckpt} holds NaN or infinite weights ({', '.join(meta['nonfinite'][:3])}): "
            f"post-training would only spread them. Start from a checkpoint of an earlier epoch."
        )
    if meta["classifier"] is None:
        # PoF and its controls perturb or freeze the last linear layer: say why this model has none
        raise CheckpointError(f"{ckpt} cannot be post-trained: {meta['split']}")
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

    # the probe subset is checked (size, memory) before the run folder exists
    tracked = (
        make_tracker(
            cfg.tracking,
            model,
            Batches(dataset.x_train, dataset.y_train, meta["mean"], meta["std"], 1, device),
            cfg.seed,
            sgd,
            split=split,
        )
        if ddp.is_main
        else None
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
    post_meta["data_options"] = {  # with the loader's choices (a CSV's drawn split)
        **{k: v for k, v in cfg.data_options.items() if v is not None},
        **dataset.options,
    }
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
        tracker=tracked[0] if tracked else None,
        probe_indices=tracked[1] if tracked else None,
    )
    progress = progress if ddp.is_main else None
    fit(loop, resume=resume, progress=progress, should_stop=should_stop)
    return run
