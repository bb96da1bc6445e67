"""The engine's configurations, in pure Python: what a page, the command line and a saved run need
to name, default and check a job's options without importing torch (the jobs themselves live in
pof.training.pretrain, pof.training.posttrain and pof.method).

    PretrainConfig    pre-training (SGD or SAM) of a registry model
    PostTrainConfig   post-training with PoF or a control; METHODS, default_post_lr
    PoFConfig         PoF's own options (the line search, gamma, the weak batch)
    TrackConfig       curvature recorded during either job (cadence, probe subset)
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass

from . import validate as check
from .data.names import DATASETS
from .models.formats import CheckpointError
from .models.registry import ARCHS
from .options import option
from .validate import ConfigError

# --- what both jobs share: options with one meaning, and their help ----------------------------

DATASET_HELP = (
    f"one of {', '.join(DATASETS)}; imagefolder:PATH (PATH/train/<class>/*, PATH/test/<class>/*); "
    f"npz:PATH (your arrays x_train, y_train, x_test, y_test in an .npz or safetensors file); "
    f"csv:PATH (a CSV with a header, a label column and a split column of train/test, or none: "
    f"a seeded split stratified by label, see --test-fraction) or csv:TRAIN.csv,TEST.csv"
)
DATA_ROOT_HELP = (
    "folder for torchvision downloads and decoded image-folder caches "
    "(default: $POF_DATA or ~/.cache/pof/data)"
)
SVHN_EXTRA_HELP = "SVHN: add the 531k 'extra' images to training, as the paper does"
DATA_OPTIONS_HELP = (
    "load_dataset's classes, label_column, mean, std, test_fraction and split_seed (flags "
    "--classes, --label-column, --mean, --std, --test-fraction, --split-seed)"
)
AUGMENT_HELP = "'default' (per dataset), 'none', or e.g. 'crop=4,flip,cutout=16'"
DEVICE_HELP = "auto (CUDA, else MPS, else CPU), cpu, cuda, cuda:1 ..."


BATCH_WHY = "a batch is held in memory at once, so a batch this large never finishes a step"


def validate_common(cfg, dataset_optional: bool = False) -> None:
    """Check the options both configurations have; `dataset_optional`: None names no dataset (a
    post-training then uses the checkpoint's own)."""
    check.positive_int("epochs", cfg.epochs)
    check.at_most("epochs", cfg.epochs, check.MAX_EPOCHS, "no run would ever finish")
    if cfg.batch_size is not None:
        check.positive_int("batch_size", cfg.batch_size)
        check.at_most("batch_size", cfg.batch_size, check.MAX_BATCH, BATCH_WHY)
    check.finite("momentum", cfg.momentum, 0, 1, hi_open=True)
    check.finite("weight_decay", cfg.weight_decay, 0, 1)
    check.finite("rho (the SAM radius)", cfg.rho, 0, 1e3)
    check.positive_int("seed", cfg.seed, 0)
    if cfg.seed >= 2**32:
        raise ConfigError(f"seed must be below 2^32, got {cfg.seed}.")
    check.positive_int("save_every (epochs; 0 = off)", cfg.save_every, 0)
    check.augment("augment", cfg.augment)
    if cfg.device != "auto":  # naming a device needs torch; "auto" (the default) does not
        from .device import check_device

        check_device(cfg.device)
    named = isinstance(cfg.dataset, str) and cfg.dataset.strip()
    if not named and not (dataset_optional and cfg.dataset is None):
        raise ConfigError(f"dataset must name a dataset, got {cfg.dataset!r}.")
    check.optional_str("data_root", cfg.data_root)
    if not isinstance(cfg.data_options, dict):
        raise ConfigError(f"data_options must be a dict, got {cfg.data_options!r}.")


def check_bools(cfg, names: tuple[str, ...]) -> None:
    for name in names:
        if not isinstance(getattr(cfg, name), bool):
            raise ConfigError(f"{name} must be true or false, got {getattr(cfg, name)!r}.")


# --- PoF ---------------------------------------------------------------------------------------


@dataclass
class PoFConfig:
    weak_batch_size: int = option(256, "size of the weak batch B' (paper: 256)")
    line_search_init_lr: float = option(1.0, "first eta of the doubling bracket")
    line_search_max_lr: float = option(100.0, "doubling stops once eta reaches this")
    num_partitions: int = option(
        16, "grid points k * eta_max / num_partitions in (0, eta_max], k = 1..num_partitions"
    )
    gamma_max: float = option(
        2.0, "gamma ~ U(0, gamma_max); 2 = the 'opposite bank' of a parabolic valley"
    )
    weak_bn_mode: str = option(
        "train",
        "batch norm in the weak forward: train = batch statistics and running statistics "
        "updated (the authors' code); batch = batch statistics, running statistics untouched; "
        "eval = running statistics",
        choices=("train", "batch", "eval"),
    )
    rejection_cap: float = option(
        1e4,
        "skip the perturbation when eta_max reaches this (counted and reported; the authors' "
        "multi-GPU path)",
    )

    def __post_init__(self):
        check.positive_int("weak_batch_size", self.weak_batch_size)
        check.at_most("weak_batch_size", self.weak_batch_size, check.MAX_BATCH, BATCH_WHY)
        check.finite("line_search_init_lr", self.line_search_init_lr, 0, lo_open=True)
        check.finite("line_search_max_lr", self.line_search_max_lr, self.line_search_init_lr)
        # the doubling bracket evaluates init * 2^k up to max: bound k, so a step stays one pass
        ratio = self.line_search_max_lr / self.line_search_init_lr
        if ratio > 2.0**60:
            raise ConfigError(
                f"line_search_max_lr / line_search_init_lr is {ratio:.3g}: more than 60 doublings; "
                f"bring them closer (the paper: 1 and 100)."
            )
        check.positive_int("num_partitions", self.num_partitions)
        if self.num_partitions > 100_000:
            raise ConfigError(
                f"num_partitions is {self.num_partitions}: each is a loss evaluation at every "
                f"step; use at most 100000 (the paper: 16)."
            )
        check.finite("gamma_max", self.gamma_max, 0)
        check.choice("weak_bn_mode", self.weak_bn_mode, ("train", "batch", "eval"))
        check.finite("rejection_cap", self.rejection_cap, 0, lo_open=True)

    def to_dict(self) -> dict:
        return asdict(self)


# --- curvature over time ----------------------------------------------------------------------

TRACK_MAX_SAMPLES = 8192  # a probe subset is one batch of Hessian-vector products; more is a job


@dataclass
class TrackConfig:
    """Curvature recorded during a training job (pof.curvature.tracker)."""

    track: bool = option(
        False,
        "record curvature during training: the top Hessian eigenvalue against the stability "
        "threshold, the last layer's exact numbers and every layer's trace, on a fixed probe "
        "subset of the training data",
    )
    track_every: int | None = option(
        None, "steps between curvature points (default: one point per epoch)", metavar="STEPS"
    )
    track_samples: int = option(256, "training examples in the probe subset")
    track_probes: int = option(
        8, "Hutchinson probe vectors per point (each layer's trace and its standard error)"
    )

    def __post_init__(self):
        check_bools(self, ("track",))
        if self.track_every is not None:
            check.positive_int("track_every (steps between curvature points)", self.track_every)
        check.positive_int("track_samples (the probe subset)", self.track_samples)
        if self.track_samples > TRACK_MAX_SAMPLES:
            raise ConfigError(
                f"track_samples is {self.track_samples}: the probe subset is one batch of "
                f"Hessian-vector products at every point; use at most {TRACK_MAX_SAMPLES}."
            )
        check.positive_int("track_probes (Hutchinson probe vectors)", self.track_probes, 2)
        if self.track_probes > 1000:
            raise ConfigError(
                f"track_probes is {self.track_probes}: each is a Hessian-vector product at every "
                f"point; use at most 1000."
            )


def _nested(name: str, cls, value):
    """A nested configuration (PostTrainConfig.pof, .tracking) from itself or its saved dict."""
    if isinstance(value, dict):
        try:
            return cls(**value)
        except TypeError as e:
            raise ConfigError(f"{name}: {e}") from None
    if not isinstance(value, cls):
        raise ConfigError(f"{name} must be a {cls.__name__}, got {value!r}.")
    return value


# --- pre-training ------------------------------------------------------------------------------

# The paper's step schedule, 0.2x at epochs 60/120/160/200 of 250, as fractions of the run.
PAPER_MILESTONES = (0.24, 0.48, 0.64, 0.8)


@dataclass
class PretrainConfig:
    model: str = option(
        "cnn-small",
        "architecture: " + "; ".join(f"{k}: {a.inputs}" for k, a in ARCHS.items()),
        choices=list(ARCHS),
    )
    arch_args: dict = option(
        help="architecture argument, e.g. width=16 or hidden=[128,128] (repeatable)",
        factory=dict,
        cli=False,
    )
    dataset: str = option("digits", DATASET_HELP)
    data_root: str | None = option(None, DATA_ROOT_HELP)
    data_options: dict = option(help=DATA_OPTIONS_HELP, factory=dict, cli=False)
    svhn_extra: bool = option(False, SVHN_EXTRA_HELP)
    epochs: int = option(30, "training epochs")
    batch_size: int = option(128, "training batch size")
    optimizer: str = option(
        "sgd", "sgd: Nesterov SGD; sam: SAM around the same SGD", choices=("sgd", "sam")
    )
    lr: float = option(0.05, "initial learning rate")
    momentum: float = option(0.9, "SGD momentum")
    nesterov: bool = option(True, "Nesterov momentum (--no-nesterov: plain momentum)")
    weight_decay: float = option(5e-4, "L2 weight decay")
    schedule: str = option(
        "step",
        "step: multiply by --lr-decay at each milestone; cosine: anneal to 0",
        choices=("step", "cosine", "constant"),
    )
    milestones: list[int] | None = option(
        None,
        "epochs at which the step schedule decays (default: the paper's 60/120/160/200 of 250, "
        "scaled to --epochs)",
    )
    lr_decay: float = option(0.2, "step-schedule factor")
    rho: float = option(0.05, "SAM neighbourhood radius")
    adaptive: bool = option(False, "SAM: adaptive (ASAM, |w|-scaled) neighbourhood")
    augment: str = option("default", AUGMENT_HELP)
    seed: int = option(0, "seed for initialization, data order and augmentation")
    device: str = option("auto", DEVICE_HELP)
    save_every: int = option(
        0, "also keep a checkpoint every N epochs (0: only initial, last, best, final)"
    )
    tracking: TrackConfig = option(
        help="curvature over time (their flags: the tracking group)", factory=TrackConfig, cli=False
    )

    def __post_init__(self):
        self.tracking = _nested("tracking", TrackConfig, self.tracking)
        validate_common(self)
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
            late = [m for m in self.milestones if m > self.epochs]
            if late:
                raise ConfigError(
                    f"milestones {', '.join(map(str, late))} lie beyond the last epoch "
                    f"({self.epochs}): the rate would never decay there; give epochs from 1 to "
                    f"{self.epochs}."
                )
        check_bools(self, ("nesterov", "adaptive", "svhn_extra"))

    def resolved_milestones(self) -> list[int]:
        if self.milestones is not None:
            return sorted(self.milestones)
        return [max(1, round(f * self.epochs)) for f in PAPER_MILESTONES]


# --- post-training -----------------------------------------------------------------------------

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
        "wrn-28-10, resnet18-cifar), torchvision:NAME (any torchvision classification model), "
        "timm:NAME (any timm model, untrained: needs the optional extra timm), or "
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
    weights_key: str | None = option(
        None,
        "the key of a saved dict that holds the weights (e.g. model_state), when several of its "
        "entries are state dicts that fit (default: the one that fits)",
        metavar="KEY",
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
    tracking: TrackConfig = option(
        help="curvature over time (their flags: the tracking group)", factory=TrackConfig, cli=False
    )

    def __post_init__(self):
        self.tracking = _nested("tracking", TrackConfig, self.tracking)
        self.pof = _nested("pof", PoFConfig, self.pof)
        check.choice("method", self.method, METHODS)
        if not isinstance(self.checkpoint, (str, os.PathLike)):
            raise ConfigError(f"checkpoint must be a path, got {self.checkpoint!r}.")
        validate_common(self, dataset_optional=True)
        if self.lr is not None:
            check.finite("lr", self.lr, 0, check.MAX_LR, lo_open=True)
        for name in ("arch", "classifier", "weights_key"):
            check.optional_str(name, getattr(self, name))
        if not isinstance(self.arch_args, dict) or not isinstance(self.key_map, list):
            raise ConfigError("arch_args must be a dict and key_map a list of OLD=NEW strings.")
        check_bools(self, ("nesterov", "drop_last", "sync_bn", "svhn_extra"))


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
