"""Datasets as in-memory tensors, and whole-batch augmentation on the training device.

Every dataset is loaded once: images as uint8 tensors (N, C, H, W), 2-D point sets as float32
(N, 2), labels as int64. `Batches` shuffles, augments and normalizes whole batches with tensor
operations, so there is no per-sample Python and no DataLoader worker in the training loop.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch


class DatasetError(Exception):
    """A dataset cannot be loaded; the message says what is missing and how to get it."""


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
        return (f"{self.name}: {len(self.x_train)} train / {len(self.x_test)} test, "
                f"input {self.input_shape}, {self.num_classes} classes")


def default_data_root() -> Path:
    """Where torchvision datasets and decoded image-folder caches live ($POF_DATA overrides)."""
    env = os.environ.get("POF_DATA")
    return Path(env) if env else Path.home() / ".cache" / "pof" / "data"


def _channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if x.dtype == torch.uint8:
        xf = x.float().div_(255)
        dims = (0, 2, 3)
    else:
        xf, dims = x.float(), (0,)
    mean = xf.mean(dim=dims)
    std = xf.std(dim=dims).clamp_min(1e-6)
    return tuple(round(v, 6) for v in mean.tolist()), tuple(round(v, 6) for v in std.tolist())


def _make(name, x_train, y_train, x_test, y_test, classes, augment, source) -> Dataset:
    mean, std = _channel_stats(x_train)
    return Dataset(name, x_train, torch.as_tensor(y_train, dtype=torch.long), x_test,
                   torch.as_tensor(y_test, dtype=torch.long), list(classes), mean, std, augment, source)


# --- offline datasets -------------------------------------------------------------------------

def _digits(**_) -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    # Pixel values are 0..16; scale to the full uint8 range so every image dataset shares one format.
    images = np.rint(d.images * (255 / 16)).astype(np.uint8)[:, None]
    xtr, xte, ytr, yte = train_test_split(images, d.target, test_size=0.25, stratify=d.target,
                                          random_state=0)
    return _make("digits", torch.from_numpy(xtr), ytr, torch.from_numpy(xte), yte,
                 [str(i) for i in range(10)], {"crop": 1}, "scikit-learn load_digits, 75/25 stratified split (seed 0)")


def _spirals(n: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    # scikit-learn has no spiral generator; two interleaved arms, seeded like its own generators.
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    t = np.sqrt(rng.uniform(0, 1, n)) * 3 * np.pi
    r = t / (3 * np.pi)
    angle = t + np.pi * y
    x = np.stack([r * np.cos(angle), r * np.sin(angle)], 1) + rng.normal(0, noise, (n, 2))
    return x.astype(np.float32), y


def _points(name: str, n: int = 2000, noise: float | None = None, seed: int = 0, **_) -> Dataset:
    from sklearn import datasets as skd

    if name == "moons":
        x, y = skd.make_moons(n, noise=0.2 if noise is None else noise, random_state=seed)
    elif name == "circles":
        x, y = skd.make_circles(n, noise=0.1 if noise is None else noise, factor=0.5, random_state=seed)
    else:
        x, y = _spirals(n, 0.05 if noise is None else noise, seed)
    x = torch.as_tensor(x, dtype=torch.float32)
    y = torch.as_tensor(y)
    half = n // 2  # the generators shuffle, so the first half is a fair training set
    return _make(name, x[:half], y[:half], x[half:], y[half:], ["0", "1"], {},
                 f"synthetic {name}, {n} points, seed {seed}")


# --- torchvision datasets -----------------------------------------------------------------------

_TV_FILES = {
    "cifar10": "cifar-10-python.tar.gz (or the extracted cifar-10-batches-py/)",
    "cifar100": "cifar-100-python.tar.gz (or the extracted cifar-100-python/)",
    "svhn": "train_32x32.mat and test_32x32.mat (extra_32x32.mat for --svhn-extra)",
    "mnist": "MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte (the .gz files, unpacked)",
    "fashion_mnist": "FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte (the .gz files, unpacked)",
}


def _torchvision(name: str, root: Path | None = None, download: bool = True,
                 svhn_extra: bool = False, **_) -> Dataset:
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
                f"Offline alternatives: digits, moons, circles, spirals, imagefolder:PATH.") from e

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
    augment = {"cifar10": {"crop": 4, "flip": True}, "cifar100": {"crop": 4, "flip": True},
               "svhn": {"crop": 4}, "mnist": {"crop": 2}, "fashion_mnist": {"crop": 2, "flip": True}}[name]
    return _make(name + ("+extra" if svhn_extra else ""), xtr, ytr, xte, yte, classes, augment,
                 f"torchvision {name} in {folder}")


# --- image folders -----------------------------------------------------------------------------

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def _list_split(split_dir: Path) -> tuple[list[str], list[tuple[Path, str]]]:
    classes = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    files = [(f, c) for c in classes for f in sorted((split_dir / c).iterdir())
             if f.suffix.lower() in _IMAGE_SUFFIXES]
    return classes, files


def _decode(files: list[tuple[Path, str]], class_index: dict[str, int], mode: str,
            progress: Callable[[int, int], None] | None) -> tuple[np.ndarray, np.ndarray]:
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
            raise DatasetError(f"{f} is {a.shape[1]}x{a.shape[0]} but earlier images are "
                               f"{size[1]}x{size[0]}; resize all images to one size first.")
        images.append(a)
        labels.append(class_index[c])
        if progress and (i % 1000 == 0 or i == len(files) - 1):
            progress(i + 1, len(files))
    x = np.stack(images)
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x), np.asarray(labels, dtype=np.int64)


def _imagefolder(path: str, root: Path | None = None, progress=None, **_) -> Dataset:
    from PIL import Image

    base = Path(path).expanduser().resolve()
    if not (base / "train").is_dir() or not (base / "test").is_dir():
        raise DatasetError(f"Image folder {base} needs train/<class>/ and test/<class>/ "
                           f"sub-folders with image files (found: {sorted(p.name for p in base.iterdir()) if base.is_dir() else 'no such folder'}).")
    classes, train_files = _list_split(base / "train")
    test_classes, test_files = _list_split(base / "test")
    if not classes or not train_files:
        raise DatasetError(f"{base / 'train'} holds no class folders with images.")
    unknown = sorted(set(test_classes) - set(classes))
    if unknown:
        raise DatasetError(f"{base / 'test'} has classes {unknown} that train/ lacks; both need the same class folders.")
    # Cache key: the folder's path plus every file's name, size and mtime, so edits invalidate it.
    h = hashlib.sha256(str(base).encode())
    for f, _c in train_files + test_files:
        st = f.stat()
        h.update(f"{f}|{st.st_size}|{st.st_mtime_ns}".encode())
    cache = Path(root or default_data_root()) / "imagefolder" / f"{base.name}-{h.hexdigest()[:16]}.npz"
    if cache.exists():
        with np.load(cache, allow_pickle=False) as z:
            xtr, ytr, xte, yte = z["xtr"], z["ytr"], z["xte"], z["yte"]
    else:
        with Image.open(train_files[0][0]) as im:
            mode = "L" if im.mode in ("L", "1", "I;16") else "RGB"
        index = {c: i for i, c in enumerate(classes)}
        xtr, ytr = _decode(train_files, index, mode, progress)
        xte, yte = _decode(test_files, index, mode, progress)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, xtr=xtr, ytr=ytr, xte=xte, yte=yte)
        os.replace(tmp, cache)
    h_img = xtr.shape[-1]
    augment = {"crop": max(1, h_img // 8), "flip": True}
    return _make(f"imagefolder:{base}", torch.from_numpy(xtr), ytr, torch.from_numpy(xte), yte,
                 classes, augment, f"image folder {base} (decoded cache {cache})")


# --- registry ----------------------------------------------------------------------------------

OFFLINE = ("digits", "moons", "circles", "spirals")
TORCHVISION = ("cifar10", "cifar100", "svhn", "fashion_mnist", "mnist")
DATASETS = OFFLINE + TORCHVISION


def load_dataset(name: str, root: str | Path | None = None, download: bool = True,
                 svhn_extra: bool = False, progress: Callable[[int, int], None] | None = None) -> Dataset:
    """Load a dataset by name: one of DATASETS, or `imagefolder:PATH`."""
    root = Path(root) if root else None
    if name.startswith("imagefolder:"):
        return _imagefolder(name.split(":", 1)[1], root=root, progress=progress)
    if name == "digits":
        return _digits()
    if name in ("moons", "circles", "spirals"):
        return _points(name)
    if name in TORCHVISION:
        return _torchvision(name, root=root, download=download, svhn_extra=svhn_extra)
    raise DatasetError(f"Unknown dataset {name!r}. Choose one of {', '.join(DATASETS)}, "
                       f"or imagefolder:PATH for a folder with train/<class>/ and test/<class>/.")


# --- batches -----------------------------------------------------------------------------------

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
            raise ValueError(f"Bad augmentation {part!r}: use crop=PAD, flip, cutout=SIZE, 'none' or 'default'.")
    return out


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    """A generator that depends only on (seed, epoch, stream): resuming at an epoch replays it exactly."""
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 7 + stream)


class Batches:
    """Shuffled, augmented, normalized batches from tensors already on the device.

    Randomness for epoch e comes from `epoch_generator(seed, e)`, so the data order and the
    augmentation of any epoch are reproducible on their own (needed for exact resume).
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, mean, std, batch_size: int,
                 device: torch.device | str = "cpu", augment: dict | None = None,
                 shuffle: bool = True, drop_last: bool = False, seed: int = 0):
        self.device = torch.device(device)
        self.x = x.to(self.device)
        self.y = y.to(self.device)
        self.is_image = x.dtype == torch.uint8
        shape = (1, -1, 1, 1) if self.is_image else (1, -1)
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(shape)
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device).view(shape)
        self.batch_size = batch_size
        self.augment = dict(augment or {}) if self.is_image else {}
        self.shuffle, self.drop_last, self.seed = shuffle, drop_last, seed

    def __len__(self) -> int:
        n = len(self.x)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def normalize(self, xb: torch.Tensor) -> torch.Tensor:
        xf = xb.float().div_(255) if self.is_image else xb.float()
        return (xf - self.mean) / self.std

    def sample(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """n examples drawn uniformly with replacement, augmented like training batches."""
        idx = torch.randint(len(self.x), (n,), generator=gen).to(self.device)
        return self._prepare(idx, gen)

    def epoch(self, epoch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        gen = epoch_generator(self.seed, epoch)
        n = len(self.x)
        order = torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)
        order = order.to(self.device)
        for i in range(len(self)):
            yield self._prepare(order[i * self.batch_size:(i + 1) * self.batch_size], gen)

    def __iter__(self):
        return self.epoch(0)

    def _prepare(self, idx: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        xb = self.x[idx]
        if not self.augment:
            return self.normalize(xb), self.y[idx]
        xb = xb.float().div_(255)
        b, _, h, w = xb.shape
        aug = self.augment
        if aug.get("crop"):
            p = aug["crop"]
            padded = torch.nn.functional.pad(xb, (p, p, p, p))
            dy = torch.randint(0, 2 * p + 1, (b,), generator=gen).to(self.device)
            dx = torch.randint(0, 2 * p + 1, (b,), generator=gen).to(self.device)
            rows = (dy[:, None] + torch.arange(h, device=self.device))[:, None, :, None]
            cols = (dx[:, None] + torch.arange(w, device=self.device))[:, None, None, :]
            xb = padded[torch.arange(b, device=self.device)[:, None, None, None],
                        torch.arange(xb.shape[1], device=self.device)[None, :, None, None], rows, cols]
        if aug.get("flip"):
            flip = (torch.rand(b, generator=gen) < 0.5).to(self.device)
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
        if aug.get("cutout"):
            s = aug["cutout"]
            cy = torch.randint(0, h, (b,), generator=gen).to(self.device)
            cx = torch.randint(0, w, (b,), generator=gen).to(self.device)
            # an s x s square centred at (cy, cx), clipped at the border
            dr = torch.arange(h, device=self.device)[None] - (cy[:, None] - s // 2)
            dc = torch.arange(w, device=self.device)[None] - (cx[:, None] - s // 2)
            inside = ((dr >= 0) & (dr < s))[:, :, None] & ((dc >= 0) & (dc < s))[:, None, :]
            xb = xb.masked_fill(inside[:, None], 0.0)
        return (xb - self.mean) / self.std, self.y[idx]
