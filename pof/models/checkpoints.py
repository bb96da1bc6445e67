"""Writing checkpoints: safetensors weights plus JSON metadata that says how to rebuild the model
(pof.models.metadata), and a run's resume state (model and optimizer in one file). Reading any model
file back is pof.models.loading.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from .. import __version__
from ..files import replacing
from .metadata import FORMAT, META_KEY, TRANSIENT
from .tensors import read_safetensors


def write_safetensors(tensors: dict, metadata: dict, path: Path) -> None:
    """Tensors plus JSON metadata, replacing `path` atomically (pof.files)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in tensors.items()},
            str(tmp),
            metadata={META_KEY: json.dumps(metadata)},
        )


def save_checkpoint(path: str | Path, model: torch.nn.Module, meta: dict) -> Path:
    """Write the model's state dict and `meta` (arch, arch_args, num_classes, input_shape, mean,
    std, dataset, class_names, metrics, provenance); format and version are added here."""
    path = Path(path)
    meta = {k: v for k, v in meta.items() if k not in TRANSIENT}
    write_safetensors(model.state_dict(), {**meta, "format": FORMAT, "version": __version__}, path)
    return path


# --- resume state: model and optimizer of the last finished epoch, in one file ------------------


def save_resume_state(
    path: Path, model: nn.Module, optimizer, epoch: int, best_acc: float, extra=None
) -> None:
    """Model and optimizer state in one file, so a kill can never leave them out of step: tensors
    under "model.NAME" and "optim.INDEX.NAME", the optimizer's other values in the metadata, and
    `extra` tensors (e.g. the curvature tracker's last eigenvector) under "extra.NAME"."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"extra.{k}": v for k, v in (extra or {}).items()})
    sd = optimizer.state_dict()
    scalars = {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optim.{idx}.{k}"] = v
            else:
                scalars[f"{idx}.{k}"] = v
    meta = {
        "epoch": epoch,
        "best_acc": best_acc,
        "param_groups": sd["param_groups"],
        "scalars": scalars,
    }
    write_safetensors(tensors, meta, path)


def load_resume_state(path: Path, model: nn.Module, optimizer) -> tuple[int, float, dict]:
    """Load what save_resume_state wrote into `model` and `optimizer`; returns (epoch, best_acc,
    the extra tensors)."""
    tensors, meta = read_safetensors(path)
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            idx, _, name = k[6:].partition(".")
            state.setdefault(int(idx), {})[name] = v
    for k, v in meta["scalars"].items():
        idx, _, name = k.partition(".")
        state.setdefault(int(idx), {})[name] = v
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    extra = {k[6:]: v for k, v in tensors.items() if k.startswith("extra.")}
    return int(meta["epoch"]), float(meta["best_acc"]), extra
