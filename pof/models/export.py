"""torch.export programs (.pt2): the one model file that carries its architecture. torch.export.load
unpickles some of an archive's pieces, so each is checked to hold tensors only before it is read.

A program is a fixed graph: it evaluates and every analysis measures it, but it cannot be split or
trained, so PoF does not run on it (loading.EXPORT_SPLIT says so). One exported with a single
example batch of B inputs (no dynamic shapes, the common case) takes any batch, run in chunks of B.
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
    inputs = [
        node.meta.get("val")
        for node in program.graph.nodes
        if node.op == "placeholder" and node.name in program.graph_signature.user_inputs
    ]
    fixed = [v.shape[0] for v in inputs if v is not None and isinstance(v.shape[0], int)]
    if fixed and len(inputs) != 1:
        raise LoadError(
            f"{path} takes {len(inputs)} inputs of a fixed batch size; a classifier takes one "
            "batch of inputs. Export it with one input and a dynamic batch dimension: "
            "torch.export.export(model, (x,), "
            "dynamic_shapes=({0: torch.export.Dim('batch')},))."
        )
    if fixed and _batch_statistics(program):
        raise LoadError(
            f"{path} was exported in training mode for batches of exactly {fixed[0]}: its batch "
            "norm uses each batch's own statistics, so a batch of another size cannot be run in "
            "chunks of it. Export it in eval mode (model.eval() before torch.export.export)."
        )
    module = program.module()
    module.train = types.MethodType(_fixed_mode, module)
    module.eval = types.MethodType(lambda self: _fixed_mode(self, False), module)
    if fixed:
        # traced for exactly B inputs: every batch runs in chunks of B, the last one padded with
        # zeros whose outputs are cut off (nothing else in an eval-mode graph mixes the rows)
        module.fixed_batch = fixed[0]
        object.__setattr__(module, "forward", _in_chunks(module.forward, fixed[0]))
    return module


def _batch_statistics(program) -> bool:
    """Whether a batch norm of the graph normalizes with the batch's own statistics (exported in
    training mode): then rows mix, and padding a chunk would change the real rows' outputs."""
    for node in program.graph.nodes:
        name = str(node.target)
        if node.op != "call_function" or "batch_norm" not in name or "no_training" in name:
            continue
        if name.startswith("aten.batch_norm") and len(node.args) > 5 and not node.args[5]:
            continue  # aten.batch_norm(input, weight, bias, mean, var, training=False, ...)
        return True
    return False


def _in_chunks(forward, size: int):
    import torch

    def run(x):
        outs = []
        for start in range(0, len(x), size):
            chunk = x[start : start + size]
            n = len(chunk)
            if n < size:
                chunk = torch.cat([chunk, chunk.new_zeros((size - n, *chunk.shape[1:]))])
            outs.append(forward(chunk)[:n])
        return torch.cat(outs)

    return run
