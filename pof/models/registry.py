"""Where a model's architecture comes from: one spec string, five sources.

    cnn-small, resnet20, ...        the project's registry (ARCHS below; the networks: networks)
    torchvision:resnet18            any torchvision classification model, by its own name and
                                    arguments
    timm:resnet10t                  any timm model (the optional extra `timm`), untrained: the
                                    weights come from the user's file, nothing is downloaded
    path/to/file.py:build           the user's own code: a function returning an nn.Module
    package.module:build            the same, importable from the current directory
    export:path/to/model.pt2        a torch.export program, which carries its architecture

The last two sources run the user's own code (a factory, or a program's graph); say so wherever a
user picks them. TorchScript is not a source: it is deprecated in this PyTorch, and torch.export
replaces it (see pof.models.export).

Naming and checking an architecture needs no torch: the registry is plain data here, and torch is
imported only to build a model (pof.models.build; the app's pages read checkpoint metadata
without it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..hints import Hinted


@dataclass(frozen=True)
class Arch:
    builder: str  # the function of pof.models.networks that builds it
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


class ArchError(Hinted, ValueError):
    """An architecture spec cannot be built; the message says why and what to give instead."""


def kind_of(arch: str) -> str:
    """'registry', 'torchvision', 'timm', 'export' or 'code'."""
    if arch in ARCHS:
        return "registry"
    if arch in RENAMED:
        raise ArchError(
            f"{arch!r} is ambiguous: {RENAMED[arch]} is this project's CIFAR variant, "
            f"torchvision:{arch} is torchvision's own; give one of them."
        )
    if arch.startswith("torchvision:"):
        return "torchvision"
    if arch.startswith("timm:"):
        return "timm"
    if arch.startswith("export:"):
        return "export"
    if ":" in arch:
        return "code"
    raise ArchError(
        f"Unknown architecture {arch!r}. Give a registry name ({', '.join(ARCHS)}), "
        "torchvision:NAME (e.g. torchvision:resnet18), timm:NAME (e.g. timm:resnet10t), your own "
        "factory as path/to/file.py:function or package.module:function, or export:model.pt2."
    )


def runs_user_code(arch: str | None) -> bool:
    return (
        bool(arch)
        and arch not in ARCHS
        and (
            arch.startswith("export:")
            or (":" in arch and not arch.startswith(("torchvision:", "timm:")))
        )
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
        "timm": "timm",
        "export": "a torch.export program",
        "code": "your own code",
    }[kind_of(arch)]


# --- torchvision ----------------------------------------------------------------------------------


def torchvision_names() -> list[str]:
    """Classification models only (torchvision.models' top-level module, not detection or video)."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


# --- timm (optional) ------------------------------------------------------------------------------

TIMM_MISSING = (
    "timm is not installed. It is an optional extra of this project: "
    "pip install 'pof-flatness[timm]' (or pip install timm)."
)


def timm_names() -> list[str]:
    """Every architecture timm can build (without pretrained tags); ImportError without timm."""
    import timm

    return timm.list_models()
