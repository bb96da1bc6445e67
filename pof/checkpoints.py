"""Checkpoints: safetensors weights plus JSON metadata that says how to rebuild the model.

Nothing here ever runs a pickle of unknown origin: safetensors holds only tensors, and a
PyTorch `.pt`/`.pth` state dict is read with `torch.load(weights_only=True)`, which refuses
arbitrary objects.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from . import __version__
from .models import ARCHS, build_model

FORMAT = "pof-checkpoint/1"
META_KEY = "pof"


class CheckpointError(Exception):
    """A checkpoint cannot be used; the message says what is wrong and what to do."""


def write_safetensors(tensors: dict, metadata: dict, path: Path) -> None:
    """Tensors plus JSON metadata, written to a temporary file and renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp),
              metadata={META_KEY: json.dumps(metadata)})
    os.replace(tmp, path)  # readers see the old file or the new one, never half of one


def save_checkpoint(path: str | Path, model: torch.nn.Module, meta: dict) -> Path:
    """Write the model's state dict and `meta` (arch, arch_args, num_classes, input_shape, mean,
    std, dataset, class_names, metrics, provenance); format and version are added here."""
    path = Path(path)
    write_safetensors(model.state_dict(), {**meta, "format": FORMAT, "version": __version__}, path)
    return path


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_safetensors(path: Path, tensors: bool = True) -> tuple[dict, dict | None]:
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()} if tensors else {}
    except FileNotFoundError:
        raise CheckpointError(f"No checkpoint at {path}.") from None
    except Exception as e:
        raise CheckpointError(f"{path} is not a readable safetensors file ({e}). It may be truncated or "
                              f"not a checkpoint; re-create it, or pass a PyTorch .pt/.pth state dict.") from e
    if META_KEY not in raw:
        return state, None
    try:
        meta = json.loads(raw[META_KEY])
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: its metadata is not valid JSON ({e}).") from e
    return state, meta


def read_metadata(path: str | Path) -> dict:
    """The metadata of a project checkpoint, without loading its weights."""
    _, meta = read_safetensors(Path(path), tensors=False)
    if meta is None:
        raise CheckpointError(f"{path} has no PoF metadata (a foreign safetensors file); "
                              f"load it with an explicit architecture (--arch).")
    return meta


def dataset_of(path: str | Path, given: str | None = None) -> str:
    """The dataset to use with a checkpoint: the one given, else the one its metadata names."""
    if given:
        return given
    if Path(path).suffix in (".pt", ".pth"):
        raise CheckpointError(f"{path} is a plain state dict that names no dataset; give --dataset.")
    name = read_metadata(path).get("dataset")
    if not name:
        raise CheckpointError(f"{path} names no dataset; give --dataset.")
    return name


def _read_torch(path: Path) -> dict:
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"No checkpoint at {path}.") from None
    except Exception as e:
        raise CheckpointError(
            f"{path} could not be read as a plain PyTorch state dict ({type(e).__name__}: {str(e)[:300]}). "
            f"Only tensors are accepted (torch.load weights_only=True); a file holding arbitrary pickled "
            f"objects is refused for safety. Save it with torch.save(model.state_dict(), ...).") from e
    for key in ("state_dict", "model", "model_state_dict"):  # common wrappers around a state dict
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors.")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _check_state(state: dict, model: torch.nn.Module, path: Path, arch: str) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
             for k in expected if k in state and state[k].shape != expected[k].shape]
    problems = []
    if missing:
        problems.append(f"missing keys {missing[:5]}{' ...' if len(missing) > 5 else ''} ({len(missing)} in all)")
    if unexpected:
        problems.append(f"unexpected keys {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''} ({len(unexpected)} in all)")
    if wrong:
        problems.append(f"shape mismatch in {wrong[:3]}{' ...' if len(wrong) > 3 else ''}")
    if problems:
        raise CheckpointError(f"{path} does not fit architecture {arch}: " + "; ".join(problems)
                              + ". Check --arch and its arguments, or the number of classes.")


def check_dataset(meta: dict, dataset) -> None:
    """Refuse a dataset whose classes or input shape differ from what the checkpoint was trained for."""
    if meta["num_classes"] != dataset.num_classes:
        raise CheckpointError(
            f"The checkpoint has {meta['num_classes']} output classes but {dataset.name} has "
            f"{dataset.num_classes}. Pick the dataset it was trained on ({meta.get('dataset', 'unknown')}).")
    if tuple(meta["input_shape"]) != tuple(dataset.input_shape):
        raise CheckpointError(
            f"The checkpoint expects inputs of shape {tuple(meta['input_shape'])} but {dataset.name} "
            f"has {tuple(dataset.input_shape)}. Pick the dataset it was trained on ({meta.get('dataset', 'unknown')}).")


def load_checkpoint(path: str | Path, dataset=None, arch: str | None = None,
                    arch_args: dict | None = None) -> tuple[torch.nn.Module, dict]:
    """Rebuild a model from a checkpoint and validate it; returns (model in eval mode, metadata).

    Project checkpoints carry everything. Foreign files (.pt/.pth state dicts, safetensors without
    metadata) need `arch` and a `dataset` to know the input shape and normalization; the number of
    classes is read off the weights.
    """
    path = Path(path)
    if path.suffix in (".pt", ".pth"):
        state, meta = _read_torch(path), None
    else:
        state, meta = read_safetensors(path)
    if meta is None:
        if arch is None or dataset is None:
            raise CheckpointError(f"{path} carries no PoF metadata; give its architecture (--arch, one of "
                                  f"{', '.join(ARCHS)}) and the dataset it was trained on.")
        from .models import arch_args as full_args
        head = state.get("classifier.weight")  # registry models name their last layer "classifier"
        num_classes = head.shape[0] if head is not None else dataset.num_classes
        meta = {"arch": arch, "arch_args": full_args(arch, **(arch_args or {})), "num_classes": int(num_classes),
                "input_shape": list(dataset.input_shape), "mean": list(dataset.mean), "std": list(dataset.std),
                "dataset": dataset.name, "class_names": list(dataset.classes), "metrics": {},
                "provenance": {"kind": "foreign", "file": str(path)}}
    elif meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} has metadata format {meta.get('format')!r}; this version reads {FORMAT}.")
    for key in ("arch", "arch_args", "num_classes", "input_shape", "mean", "std"):
        if key not in meta:
            raise CheckpointError(f"{path}: metadata lacks {key!r}; the file was not written by this project.")
    if meta["arch"] not in ARCHS:
        raise CheckpointError(f"{path} uses unknown architecture {meta['arch']!r}; known: {', '.join(ARCHS)}.")
    try:
        model = build_model(meta["arch"], meta["input_shape"], meta["num_classes"], **meta["arch_args"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: cannot build {meta['arch']} with {meta['arch_args']}: {e}") from e
    _check_state(state, model, path, meta["arch"])
    model.load_state_dict(state)
    if dataset is not None:
        check_dataset(meta, dataset)
    return model.eval(), meta
