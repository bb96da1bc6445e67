"""Image folders (train/<class>/, test/<class>/): listed, decoded once with Pillow and kept as a
decoded .npz cache in the data folder, keyed by every file's name, size and mtime, so that later
runs skip the decoding and an edited folder is decoded afresh.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from ..files import regular_file, replacing
from ..progress import Progress
from .dataset import Dataset, fit_stat, make
from .names import DatasetError, default_data_root, order_folder_classes

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
    for f, _ in files:  # a FIFO named like an image would hang the decoder
        try:
            regular_file(f, "image")
        except OSError as e:
            raise DatasetError(f"{e} Remove or replace it.") from None
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


def imagefolder_dataset(
    path: str,
    root: Path | None = None,
    progress: Progress | None = None,
    stated: list[str] | None = None,
    mean=None,
    std=None,
) -> Dataset:
    """The image folder at path as uint8 tensors; `stated` replaces the alphabetical class order,
    and a stated mean/std must have one value per channel (or a single one)."""
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
