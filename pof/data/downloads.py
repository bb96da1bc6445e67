"""The torchvision datasets (CIFAR-10/100, SVHN, MNIST, Fashion-MNIST): downloaded into the data
folder on first use, and refused with where to put the files by hand when there is no network.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..hints import ask
from .dataset import Dataset, make
from .names import DatasetError, default_data_root

_TV_FILES = {
    "cifar10": "cifar-10-python.tar.gz (or the extracted cifar-10-batches-py/)",
    "cifar100": "cifar-100-python.tar.gz (or the extracted cifar-100-python/)",
    "svhn": f"train_32x32.mat and test_32x32.mat (extra_32x32.mat for {ask('svhn_extra')})",
    "mnist": "MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte (the .gz files, unpacked)",
    "fashion_mnist": (
        "FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte (the .gz files, unpacked)"
    ),
}


def torchvision_dataset(
    name: str, root: Path | None = None, download: bool = True, svhn_extra: bool = False
) -> Dataset:
    """A torchvision dataset as uint8 tensors (N, C, H, W) from root/name, downloaded there first
    unless download is False; svhn_extra adds SVHN's extra split to its training set."""
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
                f"torchvision downloads them there), or pick another {ask('data_root')} / "
                "$POF_DATA. Offline alternatives: digits, moons, circles, spirals, "
                "imagefolder:PATH."
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
