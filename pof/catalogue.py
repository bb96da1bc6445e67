"""The bundled pretrained checkpoints (assets/manifest.json) and which datasets fit a checkpoint.

Compatibility is decided without loading any data: every named dataset has a fixed input shape and
class list, and an image folder is read only as far as its class folders and one image. The user's
own npz/safetensors arrays and CSV files are small, so they are simply loaded. A bundled model's
card is read without torch (bundled_card): the app's first page shows one on a cold start.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .archs import split_text
from .datasets import DatasetError, order_folder_classes, parse_classes
from .loading import CheckpointError
from .metadata import file_sha256, read_metadata

ASSETS = Path(__file__).resolve().parents[1] / "assets"
# offline, and post-trained and analysed in a few minutes on 2 cores
DEFAULT_MODEL = "digits-cnn-small-sgd"

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
# (input shape, class names) of each named dataset, as pof.data.load_dataset returns them
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


def bundled() -> dict[str, dict]:
    """The manifest's entries by id, each with `path` (absolute) added; missing files are
    skipped."""
    path = ASSETS / "manifest.json"
    if not path.exists():
        return {}
    models = json.loads(path.read_text())["models"]
    return {
        k: {**v, "path": str(ASSETS / v["file"])}
        for k, v in models.items()
        if (ASSETS / v["file"]).exists()
    }


def verify(entry: dict) -> None:
    """Refuse a bundled file whose bytes differ from the manifest (a partial checkout, a local
    edit)."""
    actual = file_sha256(entry["path"])
    if actual != entry["sha256"]:
        raise CheckpointError(
            f"{entry['path']} does not match its manifest entry (sha256 {actual[:12]}..., "
            f"expected {entry['sha256'][:12]}...). Restore it with git, or rebuild it with "
            f"python assets/make_assets.py."
        )


def bundled_card(entry: dict) -> dict:
    """What a bundled model is, for its card: {"meta": its metadata, "parameters", "split"}, with
    meta["nonfinite"] naming the tensors that hold NaN or inf, as load_checkpoint reports them.
    Read without torch: the metadata, the classifier's shape and NumPy's finiteness check of every
    tensor; the parameter count is the manifest's. Call verify(entry) first: the manifest's hash
    vouches that these weights fit their registry architecture (tests/test_catalogue.py loads each
    bundled file and checks the card against the loaded model)."""
    from safetensors import safe_open

    meta = read_metadata(entry["path"])
    with safe_open(entry["path"], framework="numpy") as f:
        names = f.keys()  # a list; the file object itself is not iterable
        tensors = {k: f.get_tensor(k) for k in names}
    meta["nonfinite"] = [
        k for k, t in tensors.items() if t.dtype.kind == "f" and not np.isfinite(t).all()
    ]
    out_features, in_features = tensors["classifier.weight"].shape  # registry models' last layer
    return {
        "meta": meta,
        "parameters": entry["parameters"],
        "split": split_text("classifier", in_features, out_features, "registry"),
    }


def signature(
    dataset: str, classes: list[str] | str | None = None, label_column: str | None = None
) -> tuple[tuple[int, ...], list[str] | None, int]:
    """(input shape, class names or None, number of classes) of a dataset name, without loading it
    (npz:/csv: files are small and are loaded). `classes` is the stated class order, as for
    load_dataset; `label_column` the CSV's label column. Class names are None where they are unknown
    (cifar100) or mere label numbers (integer labels without stated names): only their count is
    checked. Raises ValueError or DatasetError."""
    if dataset.startswith(("npz:", "csv:")):
        from .data import load_dataset  # imports torch; only the user's own files are loaded

        d = load_dataset(dataset, classes=classes, label_column=label_column)
        return d.input_shape, (None if d.class_order == "numeric" else d.classes), d.num_classes
    if label_column is not None:
        raise ValueError(f"label_column applies to csv: datasets only, not {dataset!r}")
    stated = parse_classes(classes)
    if dataset.startswith("imagefolder:"):
        base = Path(dataset.split(":", 1)[1]).expanduser()
        shape, found, n = _peek_imagefolder(base)
        return shape, order_folder_classes(found, stated, str(base / "train"))[0], n
    if dataset not in SIGNATURES:
        raise ValueError(f"unknown dataset {dataset!r}")
    shape, names = SIGNATURES[dataset]
    n = NUM_CLASSES.get(dataset, len(names or []))
    if stated is not None and (stated != names if names is not None else len(stated) != n):
        raise ValueError(
            f"{dataset}'s classes are fixed by the registry; the stated classes differ"
        )
    return shape, names, n


def _peek_imagefolder(base: Path) -> tuple[tuple[int, ...], list[str], int]:
    from PIL import Image

    train = base / "train"
    classes = sorted(p.name for p in train.iterdir() if p.is_dir()) if train.is_dir() else []
    first = next((f for c in classes for f in sorted((train / c).iterdir()) if f.is_file()), None)
    if first is None or not (base / "test").is_dir():
        raise ValueError(
            f"{base} is not an image folder: it needs train/<class>/ and test/<class>/ with images"
        )
    with Image.open(first) as im:
        channels = 1 if im.mode in ("L", "1", "I;16") else 3
        return (channels, im.height, im.width), classes, len(classes)


def incompatibility(
    meta: dict,
    dataset: str,
    classes: list[str] | str | None = None,
    label_column: str | None = None,
) -> str | None:
    """Why `dataset` (with a stated class order, a CSV label column) cannot be used with a
    checkpoint of metadata `meta`, or None if it can."""
    try:
        shape, classes, n = signature(dataset, classes, label_column)
    except (ValueError, OSError, DatasetError) as e:
        return str(e)
    if tuple(meta["input_shape"]) != tuple(shape):
        return f"inputs are {tuple(shape)}, the model expects {tuple(meta['input_shape'])}"
    if n != meta["num_classes"]:
        return f"{n} classes, the model has {meta['num_classes']} outputs"
    if (
        classes is not None
        and meta.get("class_names")
        and list(meta["class_names"]) != list(classes)
    ):
        ours, theirs = ", ".join(classes[:3]), ", ".join(meta["class_names"][:3])
        return f"different classes ({ours}, ... vs {theirs}, ...)"
    return None
