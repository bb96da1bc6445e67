"""A dataset in memory, and what every source shares: the statistics that normalize it, stated
or computed, and the checks of labels and files (the sources: offline, downloads, imagefolder,
arrays, table, dispatched by pof.data.load; their names and options, without torch:
pof.data.names).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..files import NotRegularFile, regular_file
from ..hints import ask, marked
from .names import AS_IS, COMPUTED, STATED, DatasetError


@dataclass
class Dataset:
    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: list[str]
    mean: tuple[float, ...]  # per channel (images, in [0, 1] units) or per feature (points)
    std: tuple[float, ...]
    augment: dict = field(default_factory=dict)  # default training augmentation
    source: str = ""
    # Where the label order came from: "stated" (classes=...), "registry", "numeric" (integer
    # labels) or "alphabetical" (folder names, string labels). Only "alphabetical" is a guess that
    # can silently disagree with a checkpoint trained elsewhere, so callers warn about it.
    class_order: str = "registry"
    normalization: str = COMPUTED  # or STATED, AS_IS, or "mean ...; std ..." when they differ
    # options the loader chose that must come back to give the same data (a CSV's seeded split):
    # recorded with the run's checkpoints next to the options the user gave
    options: dict = field(default_factory=dict)
    split: str = ""  # how train and test were told apart, when the loader drew the split itself

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def is_image(self) -> bool:
        return self.x_train.dtype == torch.uint8

    def describe(self) -> str:
        return (
            f"{self.name}: {len(self.x_train)} train / {len(self.x_test)} test, "
            f"input {self.input_shape}, {self.num_classes} classes"
            + (f"; {self.split}" if self.split else "")
        )


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if x.dtype == torch.uint8:
        xf = x.float().div_(255)
        dims = (0, 2, 3)
    else:
        # per feature for flat (N, F) data; float data with several feature axes gets one value,
        # since Batches broadcasts non-image statistics over the last axis only
        xf = x.float()
        dims = (0,) if x.ndim == 2 else tuple(range(x.ndim))
    mean = xf.mean(dim=dims).reshape(-1)
    std = xf.std(dim=dims).clamp_min(1e-6).reshape(-1)
    return tuple(round(v, 6) for v in mean.tolist()), tuple(round(v, 6) for v in std.tolist())


def make(
    name, x_train, y_train, x_test, y_test, classes, augment, source, class_order: str = "registry"
) -> Dataset:
    mean, std = channel_stats(x_train)
    return Dataset(
        name,
        x_train,
        torch.as_tensor(y_train, dtype=torch.long),
        x_test,
        torch.as_tensor(y_test, dtype=torch.long),
        list(classes),
        mean,
        std,
        augment,
        source,
        class_order,
        COMPUTED,
    )


# --- stated normalization ----------------------------------------------------------------------


def stat_width(x: torch.Tensor) -> tuple[int, str]:
    """How many values a mean or std has, and what each is for: one per channel (images), per
    feature (flat data), else a single value for all (float inputs with several axes)."""
    if x.dtype == torch.uint8:
        return x.shape[1], "channel"
    return (x.shape[1], "feature") if x.ndim == 2 else (1, "")


def fit_stat(value, width: int, what: str, where: str, unit: str) -> tuple[float, ...] | None:
    """A stated mean/std at the data's width (a single value is broadcast); None and "auto" pass
    through."""
    if not isinstance(value, tuple) or len(value) == width:
        return value
    if len(value) == 1:
        return value * width
    if not unit:
        raise DatasetError(
            f"{what} has {len(value)} values but {where} takes a single one (its inputs have "
            f"several axes, so one value applies to all)."
        )
    raise DatasetError(
        f"{what} has {len(value)} values but {where} has {width} {unit}{'s' * (width > 1)}; "
        f"give one value per {unit}, or a single value."
    )


def apply_normalization(d: Dataset, mean, std) -> Dataset:
    """Replace the dataset's default statistics by stated or computed ones, and say where each came
    from."""
    if mean is None and std is None:
        return d
    width, unit = stat_width(d.x_train)
    computed = channel_stats(d.x_train) if "auto" in (mean, std) else None

    def resolve(value, default, i, what):
        if value is None:
            return tuple(default), d.normalization
        if value == "auto":
            return computed[i], COMPUTED
        return fit_stat(value, width, what, d.name, unit), STATED

    (d.mean, mean_source), (d.std, std_source) = (
        resolve(mean, d.mean, 0, "mean"),
        resolve(std, d.std, 1, "std"),
    )
    d.normalization = (
        mean_source if mean_source == std_source else f"mean {mean_source}; std {std_source}"
    )
    return d


def integer_classes(
    labels: np.ndarray, stated: list[str] | None, where: str
) -> tuple[list[str], str]:
    """Class names for integer labels, which must be 0..K-1: the stated K names, else "0".."K-1"."""
    values = np.unique(labels)
    if values[0] < 0:
        raise DatasetError(f"{where}: labels must be integers 0..K-1, found {int(values[0])}.")
    k = int(values[-1]) + 1
    if stated is not None:
        if len(stated) != k:
            raise DatasetError(
                f"{where}: classes names {len(stated)} classes but the labels run 0..{k - 1} "
                f"({k} classes); give exactly one name per label, in label order."
            )
        return list(stated), "stated"
    if len(values) != k:
        # A gap usually means labels that are not indices (1..K, raw ids): refuse rather than train
        # outputs that never see an example.
        gap = int(next(i for i, v in enumerate(values) if v != i))
        hint = f" (labels start at {int(values[0])}: subtract it?)" if gap == 0 else ""
        raise DatasetError(
            f"{where}: labels must be integers 0..K-1, but no example has label {gap} while "
            f"labels go up to {k - 1}{hint}. Map them to 0..K-1, or state all {k} class names "
            f"with {ask('classes')} if some classes really have no examples."
        )
    return [str(i) for i in range(k)], "numeric"


def own_dataset(name, xtr, ytr, xte, yte, classes, class_order, source) -> Dataset:
    """The user's own numbers: used as they are (mean 0, std 1; uint8 images only divided by
    255)."""
    width = stat_width(xtr)[0]
    augment = {"crop": max(1, xtr.shape[-1] // 8), "flip": True} if xtr.dtype == torch.uint8 else {}
    return Dataset(
        name,
        xtr,
        torch.as_tensor(ytr, dtype=torch.long),
        xte,
        torch.as_tensor(yte, dtype=torch.long),
        classes,
        (0.0,) * width,
        (1.0,) * width,
        augment,
        source,
        class_order,
        AS_IS,
    )


def existing_file(text: str) -> Path:
    path = Path(text.strip()).expanduser()
    try:
        if not text.strip() or not path.exists():
            raise DatasetError(f"No such file: {text}")
        regular_file(path, "data file")  # a FIFO or a device would hang the reader
    except NotRegularFile as e:
        raise DatasetError(marked(e)) from None
    except (OSError, ValueError) as e:  # a NUL byte, a name too long ...
        raise DatasetError(f"No such file: {text} ({e})") from e
    return path.resolve()
