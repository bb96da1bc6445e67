"""The datasets that need no download: scikit-learn's digits, which ship with it, and the
synthetic 2-D point sets (moons, circles, spirals), generated from a seed, so that training and
the tests work offline.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load_file

from .dataset import Dataset, make

# scikit-learn's digits, split as split_digits() splits them, are kept in assets/ (written by
# assets/make_digits.py): importing scikit-learn pulls in scipy and pandas, 1.6 s at the start of
# every command and job on this data, where reading the file takes milliseconds. tests/test_data.py
# checks the file against scikit-learn's own; without it, scikit-learn is asked.
DIGITS_FILE = Path(__file__).resolve().parents[2] / "assets" / "digits.safetensors"
DIGITS_ARRAYS = ("x_train", "x_test", "y_train", "y_test")


def split_digits() -> list[np.ndarray]:
    """scikit-learn's 8x8 digits as uint8 images, split 75/25, stratified (seed 0): x_train,
    x_test, y_train, y_test."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    # Pixel values are 0..16; scale to the full uint8 range so every image dataset shares one
    # format.
    images = np.rint(d.images * (255 / 16)).astype(np.uint8)[:, None]
    return train_test_split(images, d.target, test_size=0.25, stratify=d.target, random_state=0)


def digits() -> Dataset:
    """scikit-learn's 8x8 digits as uint8 images, split 75/25, stratified."""
    try:
        arrays = load_file(DIGITS_FILE)
        xtr, xte, ytr, yte = (arrays[k] for k in DIGITS_ARRAYS)
    except (OSError, KeyError, SafetensorError):  # absent or damaged: the slow way
        xtr, xte, ytr, yte = split_digits()
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
