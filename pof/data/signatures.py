"""What a dataset is without loading it: its input shape, class names and number of classes,
to say which datasets fit a checkpoint (pof.models.catalogue) before any data is read. Named
datasets are static facts (pof.data.names); an image folder is read only as far as its class
folders and one image; the user's own npz/CSV files are small and are simply loaded.
"""

from __future__ import annotations

from pathlib import Path

from .names import NUM_CLASSES, SIGNATURES, order_folder_classes, parse_classes


def signature(
    dataset: str, classes: list[str] | str | None = None, label_column: str | None = None
) -> tuple[tuple[int, ...], list[str] | None, int]:
    """(input shape, class names or None, number of classes) of a dataset name, without loading it
    (npz:/csv: files are small and are loaded). `classes` is the stated class order, as for
    load_dataset; `label_column` the CSV's label column. Class names are None where they are unknown
    (cifar100) or mere label numbers (integer labels without stated names): only their count is
    checked. Raises ValueError or DatasetError."""
    if dataset.startswith(("npz:", "csv:")):
        from .load import load_dataset

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
