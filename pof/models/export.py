"""torch.export programs (.pt2): the one model file that carries its architecture. torch.export.load
unpickles some of an archive's pieces, so each is checked to hold tensors only before it is read.
"""

from __future__ import annotations

import io
import json
import types
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from .formats import LoadError, clean, sniff
from .tensors import torch_load

if TYPE_CHECKING:
    from torch import nn


def _vet_pt2(path: Path) -> None:
    """torch.export.load unpickles some pieces with weights_only=False (pickled weights, custom
    objects, sample inputs). Check each such piece first: tensors only, or the file is refused."""
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            if name.endswith("_config.json") and "/data/" in name:
                config = json.loads(z.read(name)).get("config", {})
                for fqn, entry in config.items():
                    p = entry.get("path_name", "")
                    if p.startswith(("custom_obj", "opaque_obj")):
                        raise LoadError(
                            f"{path} holds a Python object ({fqn}) besides tensors; it is not "
                            "loaded, for safety. Export a model whose constants are tensors."
                        )
                    if entry.get("use_pickle"):
                        piece = name.rsplit("/", 1)[0] + "/" + p
                        torch_load(io.BytesIO(z.read(piece)), f"{path} ({piece})")
            elif name.endswith(".pt") or name.endswith(".pkl"):
                torch_load(io.BytesIO(z.read(name)), f"{path} ({name})")


def _fixed_mode(self, mode: bool = True):
    # an exported graph is traced in one mode (BN statistics and dropout are baked in); PyHessian
    # and evaluation call .eval(), which exported modules refuse: keep the flag, change nothing
    object.__setattr__(self, "training", mode)
    return self


def load_export(path: Path) -> nn.Module:
    """The module of a torch.export program, after vetting its pickled pieces."""
    import torch

    if sniff(path) != "export":
        raise LoadError(f"{path} is not a torch.export archive (torch.export.save writes one).")
    _vet_pt2(path)
    try:
        program = torch.export.load(str(path))
    except Exception as e:
        raise LoadError(f"{path}: torch.export.load failed: {clean(e)}") from e
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in program.graph_signature.user_inputs:
            val = node.meta.get("val")
            if val is not None and isinstance(val.shape[0], int):
                raise LoadError(
                    f"{path} was exported for batches of exactly {val.shape[0]}; the analyses "
                    "need other batch sizes. Export it again with a dynamic batch dimension: "
                    "torch.export.export(model, (x,), "
                    f"dynamic_shapes=({{0: torch.export.Dim('batch')}},))."
                )
    module = program.module()
    module.train = types.MethodType(_fixed_mode, module)
    module.eval = types.MethodType(lambda self: _fixed_mode(self, False), module)
    return module
