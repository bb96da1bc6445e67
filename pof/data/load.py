"""Datasets as in-memory tensors, and whole-batch augmentation on the training device (their
names, options and paths, which need no torch: pof.datasets).

Every dataset is loaded once: images as uint8 tensors (N, C, H, W), 2-D point sets and the user's
own numbers (npz/safetensors arrays, CSV files) as float32 (N, ...), labels as int64. `Batches`
shuffles, augments and normalizes whole batches with tensor operations, so there is no per-sample
Python and no DataLoader worker in the training loop.
"""

from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path

import numpy as np
import torch

from ..files import replacing
from ..progress import Progress
from .dataset import (
    Dataset,
    apply_normalization,
    existing_file,
    fit_stat,
    integer_classes,
    make,
    own_dataset,
)
from .names import (
    DATASETS,
    NUM_CLASSES,
    SIGNATURES,
    DatasetError,
    default_data_root,
    order_folder_classes,
    parse_classes,
    parse_stats,
    short_repr,
)

# --- offline datasets -------------------------------------------------------------------------


def _digits(**_) -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    # Pixel values are 0..16; scale to the full uint8 range so every image dataset shares one
    # format.
    images = np.rint(d.images * (255 / 16)).astype(np.uint8)[:, None]
    xtr, xte, ytr, yte = train_test_split(
        images, d.target, test_size=0.25, stratify=d.target, random_state=0
    )
    return make(
        "digits",
        torch.from_numpy(xtr),
        ytr,
        torch.from_numpy(xte),
        yte,
        [str(i) for i in range(10)],
        {"crop": 1},
        "scikit-learn load_digits, 75/25 stratified split (seed 0)",
    )


def _spirals(n: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    # scikit-learn has no spiral generator; two interleaved arms, seeded like its own generators.
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    t = np.sqrt(rng.uniform(0, 1, n)) * 3 * np.pi
    r = t / (3 * np.pi)
    angle = t + np.pi * y
    x = np.stack([r * np.cos(angle), r * np.sin(angle)], 1) + rng.normal(0, noise, (n, 2))
    return x.astype(np.float32), y


def point_set(name: str, n: int = 2000, noise: float | None = None, seed: int = 0) -> Dataset:
    """A synthetic 2-D set (moons, circles, spirals) of n points, half for training, half for
    testing."""
    from sklearn import datasets as skd

    if name == "moons":
        x, y = skd.make_moons(n, noise=0.2 if noise is None else noise, random_state=seed)
    elif name == "circles":
        x, y = skd.make_circles(
            n, noise=0.1 if noise is None else noise, factor=0.5, random_state=seed
        )
    else:
        x, y = _spirals(n, 0.05 if noise is None else noise, seed)
    x = torch.as_tensor(x, dtype=torch.float32)
    y = torch.as_tensor(y)
    half = n // 2  # the generators shuffle, so the first half is a fair training set
    return make(
        name,
        x[:half],
        y[:half],
        x[half:],
        y[half:],
        ["0", "1"],
        {},
        f"synthetic {name}, {n} points, seed {seed}",
    )


# --- torchvision datasets -----------------------------------------------------------------------

_TV_FILES = {
    "cifar10": "cifar-10-python.tar.gz (or the extracted cifar-10-batches-py/)",
    "cifar100": "cifar-100-python.tar.gz (or the extracted cifar-100-python/)",
    "svhn": "train_32x32.mat and test_32x32.mat (extra_32x32.mat for --svhn-extra)",
    "mnist": "MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte (the .gz files, unpacked)",
    "fashion_mnist": (
        "FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte (the .gz files, unpacked)"
    ),
}


def _torchvision(
    name: str, root: Path | None = None, download: bool = True, svhn_extra: bool = False, **_
) -> Dataset:
    import torchvision.datasets as tvd

    folder = Path(root or default_data_root()) / name

    def get(split_kw):
        try:
            if name == "cifar10":
                return tvd.CIFAR10(folder, download=download, **split_kw)
            if name == "cifar100":
                return tvd.CIFAR100(folder, download=download, **split_kw)
            if name == "svhn":
                return tvd.SVHN(folder, download=download, **split_kw)
            if name == "mnist":
                return tvd.MNIST(folder, download=download, **split_kw)
            return tvd.FashionMNIST(folder, download=download, **split_kw)
        except Exception as e:  # no network, corrupt archive, partial download ...
            raise DatasetError(
                f"Cannot load {name} from {folder}: {type(e).__name__}: {e}\n"
                f"Put {_TV_FILES[name]} into {folder} (from a machine with network access, "
                f"torchvision downloads them there), or pick another --data-root / $POF_DATA. "
                f"Offline alternatives: digits, moons, circles, spirals, imagefolder:PATH."
            ) from e

    def arrays(ds):
        data = ds.data
        x = torch.as_tensor(np.asarray(data))
        if name in ("cifar10", "cifar100"):
            x = x.permute(0, 3, 1, 2)  # stored as NHWC
        elif name in ("mnist", "fashion_mnist"):
            x = x[:, None]
        y = np.asarray(ds.labels if name == "svhn" else ds.targets)
        return x.contiguous(), y

    if name == "svhn":
        xtr, ytr = arrays(get({"split": "train"}))
        if svhn_extra:
            xex, yex = arrays(get({"split": "extra"}))
            xtr, ytr = torch.cat([xtr, xex]), np.concatenate([ytr, yex])
        xte, yte = arrays(get({"split": "test"}))
        classes = [str(i) for i in range(10)]
    else:
        train = get({"train": True})
        xtr, ytr = arrays(train)
        xte, yte = arrays(get({"train": False}))
        classes = list(train.classes)
    augment = {
        "cifar10": {"crop": 4, "flip": True},
        "cifar100": {"crop": 4, "flip": True},
        "svhn": {"crop": 4},
        "mnist": {"crop": 2},
        "fashion_mnist": {"crop": 2, "flip": True},
    }[name]
    return make(
        name + ("+extra" if svhn_extra else ""),
        xtr,
        ytr,
        xte,
        yte,
        classes,
        augment,
        f"torchvision {name} in {folder}",
    )


# --- image folders -----------------------------------------------------------------------------

_IMAGE_SUFFIXES = {
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
    ".ppm",
    ".pgm",
}


def _list_split(split_dir: Path) -> tuple[list[str], list[tuple[Path, str]]]:
    classes = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    files = [
        (f, c)
        for c in classes
        for f in sorted((split_dir / c).iterdir())
        if f.suffix.lower() in _IMAGE_SUFFIXES
    ]
    return classes, files


def _decode(
    files: list[tuple[Path, str]],
    class_index: dict[str, int],
    mode: str,
    progress: Progress | None,
) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    images, labels, size = [], [], None
    for i, (f, c) in enumerate(files):
        try:
            with Image.open(f) as im:
                a = np.asarray(im.convert(mode))
        except Exception as e:
            raise DatasetError(f"Cannot read image {f}: {e}. Remove or replace the file.") from e
        if size is None:
            size = a.shape
        elif a.shape != size:
            raise DatasetError(
                f"{f} is {a.shape[1]}x{a.shape[0]} but earlier images are "
                f"{size[1]}x{size[0]}; resize all images to one size first."
            )
        images.append(a)
        labels.append(class_index[c])
        if progress and (i % 1000 == 0 or i == len(files) - 1):
            progress(i + 1, len(files), f"decoding {f.parent.parent.name} images")
    x = np.stack(images)
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x), np.asarray(labels, dtype=np.int64)


def _imagefolder(
    path: str,
    root: Path | None = None,
    progress=None,
    stated: list[str] | None = None,
    mean=None,
    std=None,
    **_,
) -> Dataset:
    from PIL import Image

    base = Path(path).expanduser().resolve()
    if not (base / "train").is_dir() or not (base / "test").is_dir():
        found = sorted(p.name for p in base.iterdir()) if base.is_dir() else "no such folder"
        raise DatasetError(
            f"Image folder {base} needs train/<class>/ and test/<class>/ "
            f"sub-folders with image files (found: {found})."
        )
    classes, train_files = _list_split(base / "train")
    test_classes, test_files = _list_split(base / "test")
    if not classes or not train_files:
        raise DatasetError(f"{base / 'train'} holds no class folders with images.")
    unknown = sorted(set(test_classes) - set(classes))
    if unknown:
        raise DatasetError(
            f"{base / 'test'} has classes {unknown} that train/ lacks; both need the same class "
            f"folders."
        )
    # Decide the class order (and check the statistics' length) before the expensive decoding.
    order, class_order = order_folder_classes(classes, stated, str(base / "train"))
    # Cache key: the folder's path plus every file's name, size and mtime, so edits invalidate it.
    h = hashlib.sha256(str(base).encode())
    for f, _c in train_files + test_files:
        st = f.stat()
        h.update(f"{f}|{st.st_size}|{st.st_mtime_ns}".encode())
    cache = (
        Path(root or default_data_root()) / "imagefolder" / f"{base.name}-{h.hexdigest()[:16]}.npz"
    )
    with Image.open(train_files[0][0]) as im:
        mode = "L" if im.mode in ("L", "1", "I;16") else "RGB"
    for value, what in ((mean, "mean"), (std, "std")):
        fit_stat(value, 1 if mode == "L" else 3, what, str(base), "channel")
    if cache.exists():
        with np.load(cache, allow_pickle=False) as z:
            xtr, ytr, xte, yte = z["xtr"], z["ytr"], z["xte"], z["yte"]
    else:
        # The cache always holds alphabetical labels, so one cache serves every stated order.
        index = {c: i for i, c in enumerate(classes)}
        xtr, ytr = _decode(train_files, index, mode, progress)
        xte, yte = _decode(test_files, index, mode, progress)
        cache.parent.mkdir(parents=True, exist_ok=True)
        with replacing(cache) as tmp, open(tmp, "wb") as f:  # a file: savez appends no .npz
            np.savez(f, xtr=xtr, ytr=ytr, xte=xte, yte=yte)
    if class_order == "stated":
        to_stated = np.array(
            [order.index(c) for c in classes], dtype=np.int64
        )  # alphabetical -> stated
        ytr, yte = to_stated[ytr], to_stated[yte]
    h_img = xtr.shape[-1]
    augment = {"crop": max(1, h_img // 8), "flip": True}
    return make(
        f"imagefolder:{base}",
        torch.from_numpy(xtr),
        ytr,
        torch.from_numpy(xte),
        yte,
        order,
        augment,
        f"image folder {base} (decoded cache {cache})",
        class_order,
    )


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


def _arrays_dataset(text: str, stated: list[str] | None) -> Dataset:
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


# --- the user's own CSV files ------------------------------------------------------------------

_INT = re.compile(r"[+-]?[0-9]+")


def _read_csv(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and the non-blank rows, each with its line number (for error messages)."""
    rows: list[tuple[int, list[str]]] = []
    try:
        with open(
            path, newline="", encoding="utf-8-sig"
        ) as f:  # -sig: spreadsheet exports start with a BOM
            reader = csv.reader(f)
            try:
                header = [h.strip() for h in next(reader)]
            except StopIteration:
                raise DatasetError(
                    f"{path} is empty; a CSV needs a header row naming its columns."
                ) from None
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    raise DatasetError(
                        f"{path} line {reader.line_num}: {len(row)} cells, but the header names "
                        f"{len(header)} columns."
                    )
                rows.append((reader.line_num, row))
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path} is not a UTF-8 text CSV file ({e}).") from e
    except csv.Error as e:
        raise DatasetError(f"{path} is not a readable CSV file: {e}.") from e
    if not all(header) or len(set(header)) != len(header):
        raise DatasetError(
            f"{path}: every column needs its own non-empty name in the header row; found {header}."
        )
    return header, rows


def _csv_table(path: Path, label_column: str, two_files: bool) -> dict:
    """Features (float32), labels (stripped strings), split (or None) and line numbers of one CSV
    file."""
    header, rows = _read_csv(path)
    if label_column not in header:
        raise DatasetError(
            f"{path} has no label column {label_column!r}; its columns are {header}. "
            f"Name the label column with label_column / --label-column."
        )
    has_split = "split" in header and label_column != "split"
    if has_split and two_files:
        raise DatasetError(
            f"{path} has a split column, but two files were given; give one file with a split "
            f"column (csv:FILE), or two files without one (csv:TRAIN.csv,TEST.csv)."
        )
    features = [h for h in header if h != label_column and not (has_split and h == "split")]
    if not features:
        raise DatasetError(f"{path} has no feature columns besides {label_column!r}.")
    if not rows:
        raise DatasetError(f"{path} has a header but no rows.")
    lab = header.index(label_column)
    labels = [row[lab].strip() for _, row in rows]
    empty = next((line for (line, _), v in zip(rows, labels, strict=True) if not v), None)
    if empty is not None:
        raise DatasetError(f"{path} line {empty}: the label ({label_column!r}) is empty.")
    split = None
    if has_split:
        split = [row[header.index("split")].strip().lower() for _, row in rows]
        odd = next(
            (
                (line, v)
                for (line, _), v in zip(rows, split, strict=True)
                if v not in ("train", "test")
            ),
            None,
        )
        if odd:
            raise DatasetError(
                f"{path} line {odd[0]}: split is {odd[1]!r}; it must be 'train' or 'test'."
            )
    cols = [header.index(h) for h in features]
    x = np.empty((len(rows), len(cols)), dtype=np.float64)  # float32 (checked for overflow) below
    for r, (line, row) in enumerate(rows):
        for j, c in enumerate(cols):
            try:
                x[r, j] = float(row[c])
            except ValueError:
                raise DatasetError(
                    f"{path} line {line}, column {header[c]!r}: {short_repr(row[c])} is not a "
                    f"number; "
                    f"every column except the label{' and split' if has_split else ''} must be "
                    f"numeric."
                ) from None
    with np.errstate(over="ignore"):
        x = x.astype(np.float32)
    bad = np.argwhere(~np.isfinite(x))
    if len(bad):
        r, j = bad[0]
        raise DatasetError(
            f"{path} line {rows[r][0]}, column {features[j]!r}: "
            f"{short_repr(rows[r][1][cols[j]])} is "
            f"NaN or infinite (as float32); {len(bad)} such cells. Remove or impute them first."
        )
    return {
        "features": features,
        "x": x,
        "labels": labels,
        "split": split,
        "lines": [line for line, _ in rows],
    }


def _csv_label_indices(
    labels: list[str], lines: list[tuple[Path, int]], stated: list[str] | None, where: str
) -> tuple[np.ndarray, list[str], str]:
    if all(_INT.fullmatch(v) for v in labels):
        y = np.array([int(v) for v in labels], dtype=np.int64) if labels else np.zeros(0, np.int64)
        classes, order = integer_classes(y, stated, where)
        return y, classes, order
    classes, order = (
        (list(stated), "stated") if stated is not None else (sorted(set(labels)), "alphabetical")
    )
    index = {c: i for i, c in enumerate(classes)}
    unknown = next((i for i, v in enumerate(labels) if v not in index), None)
    if unknown is not None:
        path, line = lines[unknown]
        raise DatasetError(
            f"{path} line {line}: label {labels[unknown]!r} is not among the stated classes "
            f"{short_repr(classes, 200)}; add it to classes / --classes (in label order)."
        )
    return np.array([index[v] for v in labels], dtype=np.int64), classes, order


def _csv_dataset(text: str, label_column: str | None, stated: list[str] | None) -> Dataset:
    label_column = label_column or "label"
    whole = Path(text.strip()).expanduser()
    parts = (
        [text] if "," not in text or whole.is_file() else text.split(",")
    )  # a comma in a real name wins
    if len(parts) > 2 or not all(p.strip() for p in parts):
        raise DatasetError(
            f"csv:{text}: give one file (with a split column) or two as csv:TRAIN.csv,TEST.csv."
        )
    paths = [existing_file(p) for p in parts]
    tables = [_csv_table(p, label_column, len(paths) == 2) for p in paths]
    if len(paths) == 1:
        t = tables[0]
        if t["split"] is None:
            raise DatasetError(
                f"{paths[0]} says nothing about which rows are for training: add a column named "
                f"'split' with values train/test, or give two files as csv:TRAIN.csv,TEST.csv."
            )
        is_train = np.array([s == "train" for s in t["split"]])
        for name, mask in (("train", is_train), ("test", ~is_train)):
            if not mask.any():
                raise DatasetError(f"{paths[0]}: no row has split={name}; both splits need rows.")
        lines = [(paths[0], line) for line in t["lines"]]
        y, classes, order = _csv_label_indices(t["labels"], lines, stated, f"csv:{paths[0]}")
        xtr, xte, ytr, yte = t["x"][is_train], t["x"][~is_train], y[is_train], y[~is_train]
        features, name = t["features"], f"csv:{paths[0]}"
    else:
        train, test = tables
        features = train["features"]
        if set(test["features"]) != set(features):
            raise DatasetError(
                f"{paths[1]} and {paths[0]} need the same columns; only in train: "
                f"{sorted(set(features) - set(test['features']))}, only in test: "
                f"{sorted(set(test['features']) - set(features))}."
            )
        reorder = [
            test["features"].index(h) for h in features
        ]  # match columns by name, not position
        lines = [(paths[0], line) for line in train["lines"]] + [
            (paths[1], line) for line in test["lines"]
        ]
        name = f"csv:{paths[0]},{paths[1]}"
        y, classes, order = _csv_label_indices(
            train["labels"] + test["labels"], lines, stated, name
        )
        xtr, xte = train["x"], test["x"][:, reorder]
        ytr, yte = y[: len(xtr)], y[len(xtr) :]
    source = (
        f"CSV {', '.join(map(str, paths))}: {len(features)} feature columns, label column "
        f"{label_column!r}" + (", split column" if len(paths) == 1 else "")
    )
    return own_dataset(
        name,
        torch.from_numpy(np.ascontiguousarray(xtr)),
        ytr,
        torch.from_numpy(np.ascontiguousarray(xte)),
        yte,
        classes,
        order,
        source,
    )


# --- registry ----------------------------------------------------------------------------------


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
            + "; classes / --classes must list exactly these, in this order, or be left out."
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
) -> Dataset:
    """Load a dataset by name: one of DATASETS, `imagefolder:PATH`, `npz:PATH` (npz or safetensors
    arrays x_train, y_train, x_test, y_test) or `csv:PATH` / `csv:TRAIN.csv,TEST.csv`.

    classes: the class names in label order; it replaces an image folder's alphabetical order, names
        integer labels, orders string labels, and must match a registry dataset's own list.
    label_column: the CSV column holding the labels (default "label"); CSV only.
    mean, std: None (registry and image folders: computed from the training split; npz/csv: the
        numbers are used as they are), "auto" (computed from the training split), or numbers (one
        per channel, in [0, 1] units for images, or per feature; a single value is broadcast).
    """
    # Every option is checked before any file is read or anything is downloaded.
    classes = parse_classes(classes)
    mean, std = parse_stats(mean, "mean"), parse_stats(std, "std")
    if label_column is not None and not name.startswith("csv:"):
        raise DatasetError(
            f"label_column / --label-column applies to csv:PATH datasets only, not {name!r}."
        )
    root = Path(root) if root else None
    if name.startswith("imagefolder:"):
        d = _imagefolder(
            name.split(":", 1)[1], root=root, progress=progress, stated=classes, mean=mean, std=std
        )
    elif name.startswith("npz:"):
        d = _arrays_dataset(name.split(":", 1)[1], classes)
    elif name.startswith("csv:"):
        d = _csv_dataset(name.split(":", 1)[1], label_column, classes)
    elif name in DATASETS:
        _check_registry_request(name, classes, mean, std)
        if name == "digits":
            d = _digits()
        elif name in ("moons", "circles", "spirals"):
            d = point_set(name)
        else:
            d = _torchvision(name, root=root, download=download, svhn_extra=svhn_extra)
        if classes is not None and classes != d.classes:  # cifar100's 100 names are only known now
            raise DatasetError(
                f"{name}'s classes are fixed by the registry ({', '.join(d.classes[:5])}, ...); "
                f"classes / --classes must list exactly these, in this order, or be left out."
            )
    else:
        raise DatasetError(
            f"Unknown dataset {name!r}. Choose one of {', '.join(DATASETS)}, "
            f"or imagefolder:PATH for a folder with train/<class>/ and test/<class>/, "
            f"npz:PATH for your own arrays (npz or safetensors), csv:PATH for a CSV file."
        )
    return apply_normalization(d, mean, std)
