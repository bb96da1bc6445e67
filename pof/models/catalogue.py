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

from ..data.names import DatasetError
from ..data.signatures import signature
from .formats import CheckpointError
from .metadata import file_sha256, read_metadata
from .registry import split_text

ASSETS = Path(__file__).resolve().parents[2] / "assets"
# offline, and post-trained and analysed in a few minutes on 2 cores
DEFAULT_MODEL = "digits-cnn-small-sgd"


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
