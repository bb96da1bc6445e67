"""What the pre-training and post-training configurations share: the options with the same meaning
in both, checked by one function, and the help of their data options."""

from __future__ import annotations

from . import validate as check
from .data import DATASETS
from .device import check_device
from .validate import ConfigError

DATASET_HELP = (
    f"one of {', '.join(DATASETS)}; imagefolder:PATH (PATH/train/<class>/*, PATH/test/<class>/*); "
    f"npz:PATH (your arrays x_train, y_train, x_test, y_test in an .npz or safetensors file); "
    f"csv:PATH (a CSV with a header, a label column and a split column of train/test) "
    f"or csv:TRAIN.csv,TEST.csv"
)
DATA_ROOT_HELP = (
    "folder for torchvision downloads and decoded image-folder caches "
    "(default: $POF_DATA or ~/.cache/pof/data)"
)
SVHN_EXTRA_HELP = "SVHN: add the 531k 'extra' images to training, as the paper does"
DATA_OPTIONS_HELP = (
    "load_dataset's classes, label_column, mean and std (flags --classes, --label-column, --mean, "
    "--std)"
)
AUGMENT_HELP = "'default' (per dataset), 'none', or e.g. 'crop=4,flip,cutout=16'"
DEVICE_HELP = "auto (CUDA, else MPS, else CPU), cpu, cuda, cuda:1 ..."


def validate_common(cfg, dataset_optional: bool = False) -> None:
    """Check the options both configurations have; `dataset_optional`: None names no dataset (a
    post-training then uses the checkpoint's own)."""
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
