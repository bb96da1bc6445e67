"""The datasets' names, options and paths: what the app's pages, the catalogue and the configs
need to name and check a dataset without loading it, in pure Python (no torch; pof.data.load
loads them).
"""

from __future__ import annotations

import math
import os
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from ..hints import Hinted, ask


class DatasetError(Hinted):
    """A dataset cannot be loaded; the message says what is missing and how to get it."""


# Where a dataset's normalization came from (Dataset.normalization).
COMPUTED = "computed from the training split"
STATED = "stated"
AS_IS = "none: used as they are"


OFFLINE = ("digits", "moons", "circles", "spirals")  # ship with scikit-learn or are generated
TORCHVISION = ("cifar10", "cifar100", "svhn", "fashion_mnist", "mnist")
DATASETS = OFFLINE + TORCHVISION


# The input shape and class names of each named dataset, as load_dataset returns them: known
# without loading (or downloading) anything.
_TEN = [str(i) for i in range(10)]
_CIFAR10 = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]
_FASHION = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
_MNIST = [
    "0 - zero",
    "1 - one",
    "2 - two",
    "3 - three",
    "4 - four",
    "5 - five",
    "6 - six",
    "7 - seven",
    "8 - eight",
    "9 - nine",
]
# (input shape, class names) of each named dataset, as pof.data.load.load_dataset returns them
SIGNATURES = {
    "digits": ((1, 8, 8), _TEN),
    "moons": ((2,), ["0", "1"]),
    "circles": ((2,), ["0", "1"]),
    "spirals": ((2,), ["0", "1"]),
    "cifar10": ((3, 32, 32), _CIFAR10),
    "cifar100": ((3, 32, 32), None),  # 100 names; only their number is checked
    "svhn": ((3, 32, 32), _TEN),
    "mnist": ((1, 28, 28), _MNIST),
    "fashion_mnist": ((1, 28, 28), _FASHION),
}
NUM_CLASSES = {"cifar100": 100}


def default_data_root() -> Path:
    """Where torchvision datasets and decoded image-folder caches live ($POF_DATA overrides)."""
    env = os.environ.get("POF_DATA")
    return Path(env) if env else Path.home() / ".cache" / "pof" / "data"


def order_folder_classes(
    found: list[str], stated: list[str] | None, where: str
) -> tuple[list[str], str]:
    """The class order of an image folder: the stated one (a permutation of the folder names), else
    alphabetical, which is only a guess; returns (classes, class_order)."""
    if stated is None:
        return list(found), "alphabetical"
    extra, missing = sorted(set(stated) - set(found)), sorted(set(found) - set(stated))
    if extra or missing:
        raise DatasetError(
            f"classes must name exactly the class folders of {where}, in label order: "
            + "; ".join(
                part
                for part in (
                    f"no folder for {extra}" if extra else "",
                    f"folders not named: {missing}" if missing else "",
                )
                if part
            )
            + f". The folders are {found}."
        )
    return list(stated), "stated"


# --- stated class order and normalization -------------------------------------------------------


# a CSV without a split column: this share of each class's rows is the test split (seeded)
TEST_FRACTION, SPLIT_SEED = 0.2, 0


def parse_split(test_fraction, split_seed) -> dict:
    """`test_fraction` (in (0, 1)) and `split_seed` (0..2^32-1), the split of a CSV without a split
    column, as load_dataset's keywords: only those given (None: the default)."""
    out = {}
    if test_fraction is not None:
        try:
            f = float(test_fraction)
        except (TypeError, ValueError):
            f = math.nan
        if isinstance(test_fraction, bool) or not 0 < f < 1:
            raise DatasetError(
                f"test_fraction (--test-fraction) is the share of rows held out for testing, "
                f"between 0 and 1 exclusive; got {short_repr(test_fraction)}."
            )
        out["test_fraction"] = f
    if split_seed is not None:
        if (
            isinstance(split_seed, bool)
            or not isinstance(split_seed, int)
            or not 0 <= split_seed < 2**32
        ):
            raise DatasetError(
                f"split_seed (--split-seed) is an integer from 0 to 2^32-1; got "
                f"{short_repr(split_seed)}."
            )
        out["split_seed"] = split_seed
    return out


def parse_classes(value) -> list[str] | None:
    """`classes`: None, a list of names, or one comma-separated string; the names in label order."""
    if value is None:
        return None
    if isinstance(value, str):
        names = [n.strip() for n in value.split(",")]
    elif isinstance(value, (list, tuple)):
        bad = [n for n in value if not isinstance(n, str)]
        if bad:
            raise DatasetError(
                f"classes must be names (strings) in label order; got {short_repr(bad[0])} "
                f"({type(bad[0]).__name__})."
            )
        names = [n.strip() for n in value]
    else:
        raise DatasetError(
            f"classes must be a list of names or a comma-separated string such as "
            f"'cat,dog,bird', not {type(value).__name__}."
        )
    if not all(names):
        raise DatasetError(
            f"classes has an empty name ({short_repr(value)}); give one name per class, in label "
            f"order, e.g. cat,dog,bird."
        )
    twice = sorted(n for n, count in Counter(names).items() if count > 1)
    if twice:
        raise DatasetError(f"classes names {twice} more than once; each class needs its own name.")
    return names


def parse_stats(value, what: str = "mean") -> str | tuple[float, ...] | None:
    """A `mean` or `std` option: None, "auto", a number, numbers, or a comma-separated string of
    them."""
    if value is None:
        return None
    if isinstance(value, str):
        if value.strip().lower() == "auto":
            return "auto"
        items: list = value.split(",")
    elif isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    ):
        items = [value]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    elif isinstance(value, np.ndarray) or _is_tensor(value):
        items = value.reshape(-1).tolist()
    else:
        raise DatasetError(
            f"{what} must be 'auto' or numbers (one per channel or feature, or one for all), "
            f"not {type(value).__name__}."
        )
    numbers = []
    for item in items:
        try:
            if isinstance(item, (bool, np.bool_)):
                raise TypeError
            numbers.append(float(item.strip() if isinstance(item, str) else item))
        except (TypeError, ValueError, OverflowError):
            raise DatasetError(
                f"{what}: {short_repr(item)} is not a number; give 'auto' or numbers separated by "
                f"commas, e.g. 0.5,0.5,0.5."
            ) from None
    if not numbers:
        raise DatasetError(f"{what} is empty; give 'auto' or at least one number.")
    if not all(math.isfinite(v) for v in numbers):
        raise DatasetError(f"{what} must be finite numbers, got {numbers}.")
    if what == "std" and min(numbers) <= 0:
        raise DatasetError(f"std must be > 0 (inputs are divided by it), got {numbers}.")
    return tuple(numbers)


def data_options(args) -> dict:
    """The data keywords of load_dataset (classes, label_column, mean, std) from an argparse
    namespace (or any object); a missing attribute means None. Malformed values raise DatasetError.
    """
    label_column = getattr(args, "label_column", None)
    if label_column is not None:
        if not isinstance(label_column, str) or not label_column.strip():
            raise DatasetError(
                f"{ask('label_column')} must name a column of the CSV file, got "
                f"{short_repr(label_column)}."
            )
        label_column = label_column.strip()
    return {
        "classes": parse_classes(getattr(args, "classes", None)),
        "label_column": label_column,
        "mean": parse_stats(getattr(args, "mean", None), "mean"),
        "std": parse_stats(getattr(args, "std", None), "std"),
        # only when given: the keys of other data's options stay as they were
        **parse_split(getattr(args, "test_fraction", None), getattr(args, "split_seed", None)),
    }


def short_repr(value, limit: int = 60) -> str:
    """repr(value), cut to `limit` characters for an error message."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _is_tensor(value) -> bool:
    torch = sys.modules.get("torch")  # a tensor can exist only once torch is imported
    return torch is not None and isinstance(value, torch.Tensor)


def parse_augment(spec: str | None, default: dict) -> dict:
    """'default', 'none', or comma-separated 'crop=4,flip,cutout=16'."""
    if spec is None or spec == "default":
        return dict(default)
    if spec == "none":
        return {}
    out: dict = {}
    for part in spec.split(","):
        key, _, val = part.strip().partition("=")
        if key == "flip":
            out["flip"] = True
        elif key in ("crop", "cutout") and val.isdigit():
            out[key] = int(val)
        else:
            raise ValueError(
                f"Bad augmentation {part!r}: use crop=PAD, flip, cutout=SIZE, 'none' or 'default'."
            )
    return out
