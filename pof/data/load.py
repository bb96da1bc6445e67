"""load_dataset: one name in, one Dataset out. The name says the source: a registry name (offline,
downloads), imagefolder:PATH, npz:PATH or csv:PATH; every option is checked before anything is
read or downloaded.
"""

from __future__ import annotations

from pathlib import Path

from ..hints import ask
from ..progress import Progress
from .arrays import arrays_dataset
from .dataset import Dataset, apply_normalization, fit_stat
from .downloads import torchvision_dataset
from .imagefolder import imagefolder_dataset
from .names import (
    DATASETS,
    NUM_CLASSES,
    SIGNATURES,
    DatasetError,
    parse_classes,
    parse_split,
    parse_stats,
)
from .offline import digits, point_set
from .table import csv_dataset


def _check_registry_request(name: str, classes: list[str] | None, mean, std) -> None:
    """Refuse a stated class list or statistics that cannot fit a registry dataset, before loading
    it."""

    shape, names = SIGNATURES[name]
    if classes is not None and (
        classes != names if names is not None else len(classes) != NUM_CLASSES[name]
    ):
        raise DatasetError(
            f"{name}'s classes are fixed by the registry"
            + (f" ({', '.join(names)})" if names else f" ({NUM_CLASSES[name]} of them)")
            + f"; {ask('classes')} must list exactly these, in this order, or be left out."
        )
    for value, what in ((mean, "mean"), (std, "std")):
        fit_stat(value, shape[0], what, name, "channel" if len(shape) == 3 else "feature")


def load_dataset(
    name: str,
    root: str | Path | None = None,
    download: bool = True,
    svhn_extra: bool = False,
    progress: Progress | None = None,
    *,
    classes: list[str] | str | None = None,
    label_column: str | None = None,
    mean=None,
    std=None,
    test_fraction: float | None = None,
    split_seed: int | None = None,
) -> Dataset:
    """Load a dataset by name: one of DATASETS, `imagefolder:PATH`, `npz:PATH` (npz or safetensors
    arrays x_train, y_train, x_test, y_test) or `csv:PATH` / `csv:TRAIN.csv,TEST.csv`.

    classes: the class names in label order; it replaces an image folder's alphabetical order, names
        integer labels, orders string labels, and must match a registry dataset's own list.
    label_column: the CSV column holding the labels (default "label"); CSV only.
    test_fraction, split_seed: a single CSV without a split column is split by scikit-learn's
        train_test_split, stratified by label: this share of the rows for testing (default 0.2),
        drawn with this seed (default 0); the Dataset states the split and records both in
        `options`. CSV only.
    mean, std: None (registry and image folders: computed from the training split; npz/csv: the
        numbers are used as they are), "auto" (computed from the training split), or numbers (one
        per channel, in [0, 1] units for images, or per feature; a single value is broadcast).
    """
    # Every option is checked before any file is read or anything is downloaded.
    classes = parse_classes(classes)
    mean, std = parse_stats(mean, "mean"), parse_stats(std, "std")
    split = parse_split(test_fraction, split_seed)
    for key, given in (("label_column", label_column), *split.items()):
        if given is not None and not name.startswith("csv:"):
            raise DatasetError(f"{ask(key)} applies to csv:PATH datasets only, not {name!r}.")
    root = Path(root) if root else None
    if name.startswith("imagefolder:"):
        d = imagefolder_dataset(
            name.split(":", 1)[1], root=root, progress=progress, stated=classes, mean=mean, std=std
        )
    elif name.startswith("npz:"):
        d = arrays_dataset(name.split(":", 1)[1], classes)
    elif name.startswith("csv:"):
        d = csv_dataset(name.split(":", 1)[1], label_column, classes, **split)
    elif name in DATASETS:
        _check_registry_request(name, classes, mean, std)
        if name == "digits":
            d = digits()
        elif name in ("moons", "circles", "spirals"):
            d = point_set(name)
        else:
            d = torchvision_dataset(name, root=root, download=download, svhn_extra=svhn_extra)
        if classes is not None and classes != d.classes:  # cifar100's 100 names are only known now
            raise DatasetError(
                f"{name}'s classes are fixed by the registry ({', '.join(d.classes[:5])}, ...); "
                f"{ask('classes')} must list exactly these, in this order, or be left out."
            )
    else:
        raise DatasetError(
            f"Unknown dataset {name!r}. Choose one of {', '.join(DATASETS)}, "
            f"or imagefolder:PATH for a folder with train/<class>/ and test/<class>/, "
            f"npz:PATH for your own arrays (npz or safetensors), csv:PATH for a CSV file."
        )
    return apply_normalization(d, mean, std)
