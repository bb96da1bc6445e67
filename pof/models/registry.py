"""Where a model's architecture comes from: one spec string, four sources.

    cnn-small, resnet20, ...        the project's registry (ARCHS below; the networks: pof.models)
    torchvision:resnet18            any torchvision classification model, by its own name and
                                    arguments
    path/to/file.py:build           the user's own code: a function returning an nn.Module
    package.module:build            the same, importable from the current directory
    export:path/to/model.pt2        a torch.export program, which carries its architecture

The last two sources run the user's own code (a factory, or a program's graph); say so wherever a
user picks them. TorchScript is not a source: it is deprecated in this PyTorch, and torch.export
replaces it (see pof.loading).

Naming and checking an architecture needs no torch: the registry is plain data here, and torch is
imported only to build a model (the app's pages read checkpoint metadata without it).
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class Arch:
    builder: str  # the function of pof.models that builds it
    defaults: dict
    inputs: str  # which inputs it is meant for, shown in help texts


ARCHS: dict[str, Arch] = {
    "mlp": Arch("mlp", {"hidden": [64, 64]}, "2-D points and flattened images"),
    "cnn-small": Arch("cnn_small", {"width": 32}, "8x8 to 32x32 images"),
    "resnet20": Arch("cifar_resnet", {"depth": 20}, "32x32 images"),
    "resnet56": Arch("cifar_resnet", {"depth": 56}, "32x32 images"),
    "wrn-16-4": Arch("wide_resnet", {"depth": 16, "widen": 4}, "32x32 images"),
    "wrn-28-10": Arch(
        "wide_resnet", {"depth": 28, "widen": 10}, "32x32 images (the paper's network)"
    ),
    "resnet18-cifar": Arch(
        "resnet18_cifar",
        {},
        "32x32 images (torchvision's ResNet-18 with a 3x3 stem and no "
        "max-pool; torchvision's own is torchvision:resnet18)",
    ),
}
# older checkpoints name the CIFAR variant by torchvision's name
RENAMED = {"resnet18": "resnet18-cifar"}


def split_text(classifier_name: str, in_features: int, out_features: int, how: str) -> str:
    """A model's split for PoF in words (pof.models.Split; the app's model cards)."""
    return (
        f"classifier = {classifier_name} (Linear {in_features} -> {out_features}), "
        f"chosen by {how}; features = everything before it"
    )


class ArchError(ValueError):
    """An architecture spec cannot be built; the message says why and what to give instead."""


def kind_of(arch: str) -> str:
    """'registry', 'torchvision', 'export' or 'code'."""
    if arch in ARCHS:
        return "registry"
    if arch in RENAMED:
        raise ArchError(
            f"{arch!r} is ambiguous: {RENAMED[arch]} is this project's CIFAR variant, "
            f"torchvision:{arch} is torchvision's own; give one of them."
        )
    if arch.startswith("torchvision:"):
        return "torchvision"
    if arch.startswith("export:"):
        return "export"
    if ":" in arch:
        return "code"
    raise ArchError(
        f"Unknown architecture {arch!r}. Give a registry name ({', '.join(ARCHS)}), "
        "torchvision:NAME (e.g. torchvision:resnet18), your own factory as "
        "path/to/file.py:function or package.module:function, or export:model.pt2."
    )


def runs_user_code(arch: str | None) -> bool:
    return (
        bool(arch)
        and arch not in ARCHS
        and (arch.startswith("export:") or (":" in arch and not arch.startswith("torchvision:")))
    )


def short_name(arch: str) -> str:
    """The spec without its folders (file.py:build, export:model.pt2), for cards and tables."""
    if kind_of(arch) == "export":
        return "export:" + Path(arch.split(":", 1)[1]).name
    if kind_of(arch) == "code" and ".py:" in arch:
        where, _, fn = arch.rpartition(":")
        return f"{Path(where).name}:{fn}"
    return arch


def describe(arch: str) -> str:
    return {
        "registry": "this project's registry",
        "torchvision": "torchvision",
        "export": "a torch.export program",
        "code": "your own code",
    }[kind_of(arch)]


# --- torchvision ----------------------------------------------------------------------------------


def torchvision_names() -> list[str]:
    """Classification models only (torchvision.models' top-level module, not detection or video)."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def _torchvision(name: str, args: dict, state: dict | None, num_classes: int | None) -> nn.Module:
    import torchvision

    names = torchvision_names()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3)
        raise ArchError(
            f"torchvision has no classification model {name!r}"
            + (f"; did you mean {', '.join(close)}?" if close else "")
            + " (torchvision.models.list_models())"
        )
    args = dict(args)
    if "num_classes" not in args:
        n = (
            _classes_off_weights(lambda: torchvision.models.get_model(name, **args), state)
            or num_classes
        )
        if n:
            args["num_classes"] = n
    try:
        return torchvision.models.get_model(name, **args)
    except (TypeError, ValueError) as e:
        raise ArchError(f"torchvision:{name} cannot be built with {args}: {e}") from e


def _classes_off_weights(make, state: dict | None) -> int | None:
    """The number of outputs the weights' last linear layer has, found by building the model once
    on the meta device (no memory, no time) to learn that layer's name."""
    import torch
    from torch import nn

    if not state:
        return None
    try:
        with torch.device("meta"):
            probe = make()
    except (TypeError, ValueError) as e:
        raise ArchError(str(e)) from e
    linears = [n for n, m in probe.named_modules() if isinstance(m, nn.Linear)]
    w = state.get(f"{linears[-1]}.weight") if linears else None
    return int(w.shape[0]) if w is not None and w.ndim == 2 else None


# --- the user's own code --------------------------------------------------------------------------


def _factory(target: str):
    where, _, fn = target.rpartition(":")
    if not where or not fn.isidentifier():
        raise ArchError(f"{target!r}: give path/to/file.py:function or package.module:function.")
    if where.endswith(".py"):
        path = Path(where).expanduser().resolve()
        if not path.is_file():
            raise ArchError(f"No such file: {path} (from --arch {target}).")
        # a module name unique to the file, so two factories named alike never shadow each other
        name = "pof_user_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as e:
            raise ArchError(f"Running {path} failed: {type(e).__name__}: {e}") from e
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as e:
            raise ArchError(
                f"Cannot import {where!r} (from --arch {target}): {e}. Run from the folder that "
                f"holds it, or give path/to/file.py:{fn}."
            ) from e
    factory = getattr(module, fn, None)
    if not callable(factory):
        found = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
        raise ArchError(
            f"{where} has no function {fn!r}; it defines "
            f"{', '.join(found[:10]) or 'nothing callable'}."
        )
    return factory


def _user_code(target: str, args: dict, state: dict | None, num_classes: int | None) -> nn.Module:
    from torch import nn

    factory = _factory(target)
    args = dict(args)
    try:
        takes = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        takes = {}
    if "num_classes" in takes and "num_classes" not in args:
        n = _classes_off_weights(lambda: factory(**args), state) or num_classes
        if n:
            args["num_classes"] = n
    try:
        model = factory(**args)
    except Exception as e:
        raise ArchError(
            f"{target}({', '.join(f'{k}={v!r}' for k, v in args.items())}) failed: "
            f"{type(e).__name__}: {e}"
        ) from e
    if not isinstance(model, nn.Module):
        raise ArchError(f"{target} returned {type(model).__name__}, not an nn.Module.")
    return model


# --- the one entry --------------------------------------------------------------------------------


def build(
    arch: str,
    arch_args: dict | None = None,
    *,
    input_shape=None,
    num_classes: int | None = None,
    state: dict | None = None,
) -> nn.Module:
    """An untrained model of architecture `arch`; `state` (when given) is only used to read the
    number of classes off the weights. Registry models need the input shape."""
    args = dict(arch_args or {})
    kind = kind_of(arch)
    if kind == "registry":
        from .networks import build_model

        # registry models name their last layer "classifier"
        head = (state or {}).get("classifier.weight")
        n = int(head.shape[0]) if head is not None else num_classes
        if input_shape is None or n is None:
            raise ArchError(
                f"{arch} needs the input shape and the number of classes: give --dataset."
            )
        try:
            return build_model(arch, input_shape, n, **args)
        except (TypeError, ValueError) as e:
            raise ArchError(f"cannot build {arch} with {args}: {e}") from e
    if kind == "torchvision":
        return _torchvision(arch.split(":", 1)[1], args, state, num_classes)
    if kind == "export":
        from .formats import load_export

        if args:
            raise ArchError("A torch.export program takes no architecture arguments.")
        return load_export(Path(arch.split(":", 1)[1]))
    return _user_code(arch, args, state, num_classes)
