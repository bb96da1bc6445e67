"""The user's own arrays: x_train, y_train, x_test, y_test in an npz or a safetensors file,
recognized by their first bytes and read without unpickling anything, then checked (shapes,
dtypes, labels 0..K-1, finite values) so that a mistake is named before training starts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .dataset import Dataset, existing_file, integer_classes, own_dataset
from .names import DatasetError

_ARRAY_KEYS = ("x_train", "y_train", "x_test", "y_test")
_SAVE_HINT = (
    "numpy.savez(PATH, x_train=..., y_train=..., x_test=..., y_test=...) or safetensors' save_file."
)


def _arrays_format(path: Path) -> str:
    """'npz' or 'safetensors', recognized by the first bytes whatever the file is called."""
    with open(path, "rb") as f:
        head = f.read(9)
    if head.startswith(b"PK"):  # a zip archive, which is what numpy.savez writes
        return "npz"
    # safetensors: an 8-byte little-endian header length, then the JSON header itself
    if (
        len(head) == 9
        and head[8:9] == b"{"
        and int.from_bytes(head[:8], "little") <= path.stat().st_size - 8
    ):
        return "safetensors"
    raise DatasetError(
        f"{path} is neither an .npz file (a zip archive, starting with 'PK') nor a safetensors "
        f"file (an 8-byte header length, then '{{'); it starts with {head!r}. Save the arrays "
        f"with {_SAVE_HINT}"
    )


def _read_arrays(path: Path) -> tuple[dict[str, np.ndarray], str]:
    kind = _arrays_format(path)
    arrays: dict[str, np.ndarray] = {}
    key = None
    try:
        if kind == "npz":
            # allow_pickle=False: an object array inside is refused by numpy before anything is
            # unpickled
            opened = np.load(path, allow_pickle=False)
            names, get = opened.files, opened.__getitem__
        else:
            from safetensors import safe_open

            opened = safe_open(str(path), framework="np")
            names, get = list(opened.keys()), opened.get_tensor
        with opened:
            missing = [k for k in _ARRAY_KEYS if k not in names]
            if missing:
                raise DatasetError(
                    f"{path} ({kind}) lacks {', '.join(missing)}; it holds {sorted(names)}. "
                    f"It needs x_train, y_train, x_test and y_test: save them with {_SAVE_HINT}"
                )
            for key in _ARRAY_KEYS:
                arrays[key] = np.asarray(get(key))
    except DatasetError:
        raise
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise DatasetError(
                f"{path}: {key} holds Python objects (a pickled object array); those are never "
                f"loaded, since unpickling can run code. Save plain numeric arrays."
            ) from None
        raise DatasetError(f"Cannot read {path} as {kind}: {e}") from e
    except Exception as e:  # a truncated zip, a corrupt header, an unsupported dtype ...
        raise DatasetError(f"Cannot read {path} as {kind}: {type(e).__name__}: {e}") from e
    return arrays, kind


def _checked_arrays(a: dict[str, np.ndarray], where: str) -> tuple[torch.Tensor, torch.Tensor]:
    """x_train and x_test as tensors (uint8 images or float32), after checking shapes, dtypes,
    values."""
    found = "; ".join(f"{k}: {a[k].dtype} {tuple(a[k].shape)}" for k in _ARRAY_KEYS)
    for split in ("train", "test"):
        x, y = a[f"x_{split}"], a[f"y_{split}"]
        if x.ndim < 2 or y.ndim != 1:
            raise DatasetError(
                f"{where}: x_{split} must be (N, features...) and y_{split} (N,), one label per "
                f"row (for a single feature save x[:, None]); found {found}."
            )
        if len(x) != len(y) or len(x) == 0:
            raise DatasetError(
                f"{where}: x_{split} has {len(x)} rows and y_{split} {len(y)} labels; they need "
                f"the same, non-zero number. Found {found}."
            )
        if not np.issubdtype(y.dtype, np.integer):
            raise DatasetError(
                f"{where}: labels must be integers 0..K-1, but y_{split} is {y.dtype}; save "
                f"y.astype('int64') (mapping names to indices first). Found {found}."
            )
    xtr, xte = a["x_train"], a["x_test"]
    if xtr.shape[1:] != xte.shape[1:] or (xtr.dtype == np.uint8) != (xte.dtype == np.uint8):
        raise DatasetError(
            f"{where}: x_train and x_test must have the same feature shape and both be uint8 "
            f"images or both numbers; found {found}."
        )
    if xtr.dtype == np.uint8 and xtr.ndim == 4:
        if xtr.shape[1] > 4 and xtr.shape[-1] in (1, 3, 4):
            raise DatasetError(
                f"{where}: uint8 images must be (N, C, H, W); these look channels-last "
                f"{tuple(xtr.shape)}: save x.transpose(0, 3, 1, 2)."
            )
        return torch.from_numpy(np.ascontiguousarray(xtr)), torch.from_numpy(
            np.ascontiguousarray(xte)
        )
    if xtr.dtype == np.uint8 and xtr.ndim == 3:
        raise DatasetError(
            f"{where}: uint8 x of shape {tuple(xtr.shape)} looks like grayscale images without "
            f"a channel axis: save x[:, None] for images (N, 1, H, W), or x.astype('float32') "
            f"to use the values as plain numbers."
        )
    real = lambda x: (
        (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_) and not np.iscomplexobj(x)
    )
    if not (real(xtr) and real(xte)):
        raise DatasetError(
            f"{where}: x must hold real numbers (float) or uint8 images (N, C, H, W); "
            f"found {found}."
        )
    tensors = []
    for split, x in (("train", xtr), ("test", xte)):
        with np.errstate(
            over="ignore"
        ):  # values beyond float32's range become inf, caught just below
            xf = x.astype(np.float32)
        bad = ~np.isfinite(xf)
        if bad.any():
            raise DatasetError(
                f"{where}: x_{split} has {int(bad.sum())} NaN or infinite values (as float32; "
                f"the first at index {tuple(int(i) for i in np.argwhere(bad)[0])}); remove or "
                f"impute them first."
            )
        tensors.append(torch.from_numpy(xf))
    return tensors[0], tensors[1]


def arrays_dataset(text: str, stated: list[str] | None) -> Dataset:
    """The arrays in the file at text (npz or safetensors), used as they are; `stated` names the
    integer labels."""
    path = existing_file(text)
    a, kind = _read_arrays(path)
    where = f"npz:{path}"
    xtr, xte = _checked_arrays(a, where)
    if (
        max(int(a["y_train"].max()), int(a["y_test"].max())) > np.iinfo(np.int64).max
    ):  # uint64 would wrap
        raise DatasetError(f"{where}: labels must be integers 0..K-1; found values beyond int64.")
    ytr, yte = a["y_train"].astype(np.int64), a["y_test"].astype(np.int64)
    classes, order = integer_classes(np.concatenate([ytr, yte]), stated, where)
    return own_dataset(where, xtr, ytr, xte, yte, classes, order, f"arrays in {path} ({kind})")
