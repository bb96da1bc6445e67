"""A checkpoint file's metadata, read without torch (and without its weights): what the app's pages
and the catalogue show, and the checks every loader runs on it (pof.models.loading loads the
weights).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

from ..data.names import short_repr
from ..files import NotRegularFile, regular_file
from ..hints import ask, file_ref, marked
from .formats import FOREIGN, CheckpointError, refuse_unreadable, sniff
from .registry import RENAMED

FORMAT = "pof-checkpoint/1"
# what loading found out about this copy, not part of the format
TRANSIENT = ("warnings", "nonfinite", "notes", "normalization_source")
META_KEY = "pof"


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(regular_file(path), "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_file_metadata(path: Path) -> dict | None:
    """The project metadata of a safetensors file (None when it has none), without its tensors."""
    from safetensors import safe_open

    try:
        with safe_open(
            str(regular_file(path, "checkpoint")), framework="numpy"
        ) as f:  # "pt" would import torch
            raw = f.metadata() or {}
    except Exception as e:
        raise unreadable(path, e) from e
    return parse_metadata(raw, path)


def unreadable(path: Path, e: Exception) -> CheckpointError:
    """The error for a safetensors file that cannot be opened."""
    if isinstance(e, FileNotFoundError):
        return CheckpointError(f"No checkpoint at {file_ref(path)}.")
    if isinstance(e, NotRegularFile):
        return CheckpointError(marked(e))
    return CheckpointError(
        f"{file_ref(path)} is not a readable safetensors file ({e}). It may be truncated or "
        f"not a checkpoint; re-create it."
    )


def parse_metadata(raw: dict, path: Path) -> dict | None:
    """The project metadata in a safetensors header's string map, or None."""
    if META_KEY not in raw:
        return None
    try:
        meta = json.loads(raw[META_KEY])
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{file_ref(path)}: its metadata is not valid JSON ({e}).") from e
    if not isinstance(meta, dict):
        raise CheckpointError(
            f"{file_ref(path)}: its metadata is a JSON {type(meta).__name__}, not an object; the "
            "file was not written by this project (or was edited). Re-create or re-import it."
        )
    return meta


def project_meta(path: Path) -> tuple[str, dict | None]:
    """(what the file is, its project metadata or None), without loading its weights."""
    kind = sniff(path)
    meta = read_file_metadata(path) if kind == "safetensors" else None
    if meta is not None:
        _check_optional(meta, path)
    return kind, meta


def read_metadata(path: str | Path) -> dict:
    """The metadata of a project checkpoint, without loading its weights."""
    path = Path(path)
    kind, meta = project_meta(path)
    refuse_unreadable(path, kind)  # not a model file at all, or TorchScript
    if meta is None:
        raise CheckpointError(
            f"{file_ref(path)} is a {FOREIGN[kind]} without this project's metadata: say what it "
            f"is with {ask('arch')} (and {ask('dataset')}), or {ask('import', file_ref(path))}."
        )
    return meta


def dataset_of(path: str | Path, given: str | None = None) -> str:
    """The dataset to use with a checkpoint: the one given, else the one its metadata names."""
    if given:
        return given
    return dataset_named(Path(path), *project_meta(Path(path)))


def dataset_named(path: Path, kind: str, meta: dict | None) -> str:
    if meta is None:
        raise CheckpointError(
            f"{file_ref(path)} is a {FOREIGN.get(kind, 'file')} that names no dataset; give "
            f"{ask('dataset')}."
        )
    if not meta.get("dataset"):
        raise CheckpointError(f"{file_ref(path)} names no dataset; give {ask('dataset')}.")
    return meta["dataset"]


def require(meta: dict, path: Path) -> None:
    """Every metadata field a loader reads, checked for its JSON type and range: a hand-edited or
    crafted header is refused here, with the field named, not deep inside a job."""
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{file_ref(path)} has metadata format {meta.get('format')!r}; this version reads "
            f"{FORMAT}."
        )
    if meta.get("arch") in RENAMED:  # written before the registry's CIFAR variants were renamed
        meta["arch"] = RENAMED[meta["arch"]]
    types = {
        "arch": str,
        "arch_args": dict,
        "num_classes": int,
        "input_shape": list,
        "mean": list,
        "std": list,
    }
    for key, typ in types.items():
        if key not in meta:
            raise CheckpointError(
                f"{file_ref(path)}: metadata lacks {key!r}; the file was not written by this "
                "project."
            )
        if not isinstance(meta[key], typ) or isinstance(meta[key], bool):
            raise CheckpointError(
                f"{file_ref(path)}: metadata {key!r} is {short_repr(meta[key])}, not a JSON "
                f"{JSON_TYPE[typ]}."
            )
    _check_optional(meta, path)

    def bad(key, what):
        raise CheckpointError(
            f"{file_ref(path)}: metadata {key!r} is {short_repr(meta[key])}; it must be {what}. "
            f"The file was edited or not written by this project; re-create or re-import it."
        )

    if not 1 <= meta["num_classes"] <= 10_000_000:
        bad("num_classes", "a positive number of classes")
    if not meta["input_shape"] or not all(_is_count(d) for d in meta["input_shape"]):
        bad("input_shape", "a list of positive sizes")
    for key in ("mean", "std"):
        if not meta[key] or not all(_is_number(x) for x in meta[key]):
            bad(key, "a non-empty list of finite numbers")
    if not all(x > 0 for x in meta["std"]):
        bad("std", "positive (inputs are divided by it)")
    names = meta.get("class_names")
    if names is not None and (
        len(names) != meta["num_classes"] or not all(isinstance(n, str) for n in names)
    ):
        bad("class_names", f"{meta['num_classes']} names (strings)")


JSON_TYPE = {dict: "object", list: "array", int: "integer", str: "string"}
OPTIONAL = {
    "dataset": str,
    "class_names": list,
    "data_options": dict,
    "provenance": dict,
    "metrics": dict,
    "classifier": str,
    "program_sha256": str,
}


def _check_optional(meta: dict, path: Path) -> None:
    """The fields read before a model is built (dataset, data options ...) have their JSON type."""
    for key, typ in OPTIONAL.items():
        if meta.get(key) is not None and not isinstance(meta[key], typ):
            raise CheckpointError(
                f"{file_ref(path)}: metadata {key!r} is {short_repr(meta[key])}, not a JSON "
                f"{JSON_TYPE[typ]}. The file was edited or not written by this project; re-create "
                "or re-import it."
            )


def _is_count(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and 1 <= x <= 1_000_000


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
