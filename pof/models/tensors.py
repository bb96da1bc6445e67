"""Reading a model file's tensors safely: nothing but tensors is ever unpickled.

safetensors        tensors, plus this project's metadata when it wrote the file
torch.save files   torch.load(weights_only=True) (zip or legacy pickle), then the state dict
                   is unwrapped from the containers people save: {'state_dict' | 'model' |
                   'model_state_dict' | 'net': ...}, Lightning .ckpt files, nested a level or
                   two, or any key of a dict whose value is a state dict
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from ..files import regular_file
from ..hints import ask
from .formats import LoadError, clean
from .metadata import parse_metadata, unreadable

if TYPE_CHECKING:
    import torch

WRAPPERS = ("state_dict", "model_state_dict", "model", "net", "network", "module")


def read_safetensors(path: Path) -> tuple[dict, dict | None]:
    """A safetensors file's tensors and its project metadata (None when it has none)."""
    from safetensors import safe_open

    try:
        with safe_open(str(regular_file(path, "checkpoint")), framework="pt") as f:
            raw = f.metadata() or {}
            names = f.keys()  # a list: the handle itself is not iterable
            state = {k: f.get_tensor(k) for k in names}
    except Exception as e:
        raise unreadable(path, e) from e
    return state, parse_metadata(raw, path)


def torch_load(data, what: str):
    import torch

    try:
        return torch.load(data, map_location="cpu", weights_only=True)
    except Exception as e:
        msg = clean(e)
        found = re.search(r"GLOBAL ([\w.]+)", msg)
        if found:
            raise LoadError(
                f"{what} holds a pickled Python object ({found.group(1)}), not only tensors. It "
                "was not loaded: unpickling it would run code. Save the weights instead: "
                "torch.save(model.state_dict(), PATH) (and give the architecture with "
                f"{ask('arch')}), or export the model with torch.export.save."
            ) from e
        raise LoadError(f"{what} could not be read as a PyTorch file: {msg}") from e


def _is_state(obj) -> bool:
    import torch

    return (
        isinstance(obj, dict)
        and bool(obj)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def unwrap(obj, what: str) -> dict[str, dict[str, torch.Tensor]]:
    """The state dicts inside what torch.load returned, by the key they were found under ("" for
    the file itself or a common wrapper: Lightning keeps it under 'state_dict', many scripts under
    'model' or 'model_state_dict'). A container with an unusual key ({'epoch': 3, 'model_state':
    ..., 'optim_state': ...}) gives each of its values that is a state dict; the loader keeps the
    one that fits the model."""
    import torch

    for _ in range(3):  # wrappers nest at most a couple of levels in practice
        if _is_state(obj):
            return {"": dict(obj)}
        if not isinstance(obj, dict):
            break
        inner = next((obj[k] for k in WRAPPERS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            break
        obj = inner
    if isinstance(obj, dict):
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors and all(isinstance(k, str) for k in tensors):
            # a state dict with a few non-tensor extras (e.g. `_metadata`-like entries)
            return {"": tensors}
        found = {str(k): dict(v) for k, v in obj.items() if _is_state(v)}
        if found:
            return found
        keys = ", ".join(map(str, list(obj)[:12]))
        raise LoadError(
            f"{what} holds a dict without a state dict in it (top-level keys: {keys}). Expected "
            f"tensors, or a key holding them (such as {', '.join(repr(w) for w in WRAPPERS)})."
        )
    raise LoadError(f"{what} holds a {type(obj).__name__}, not a state dict of tensors.")
