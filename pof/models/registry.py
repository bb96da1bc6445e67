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

import os
import sys
import sysconfig
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


# --- whose code a spec may run -------------------------------------------------------------------
# Whose code a model may run. An architecture spec of the user's own (`file.py:fn`,
# `package.module:fn`, `export:program.pt2`) runs code on this machine, so:
#
# - always, the spec must name a factory that can return a model: a module of Python's own standard
#   library or its builtins (`os:system`, `subprocess:run`, `builtins:exec`, ...) is refused before
#   anything is imported or called;
# - in shared (classroom) mode, set with POF_CLASSROOM=1 by a teacher who serves the app to a class,
#   only the specs the teacher lists in POF_ALLOWED_CODE run (comma-separated, exactly as given to
#   the loader; a file's path is compared resolved).
#
# The mode is read from the environment so that the app and the jobs it starts (the CLI as a child
# process, which inherits it) obey the same rule.

CLASSROOM_ENV = "POF_CLASSROOM"
ALLOWED_CODE_ENV = "POF_ALLOWED_CODE"


class CodeRefused(ArchError):
    """A spec that names code this machine must not run; the message says why and what to do."""


def classroom() -> bool:
    return os.environ.get(CLASSROOM_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _normal(spec: str) -> str:
    """A spec with its file resolved (file.py:fn, export:PATH), so that two spellings of one file
    match; a package spec as it is."""
    spec = spec.strip()
    if spec.startswith("export:"):
        return "export:" + str(Path(spec[7:]).expanduser().resolve())
    where, _, fn = spec.rpartition(":")
    if where.endswith(".py"):
        return f"{Path(where).expanduser().resolve()}:{fn}"
    return spec


def allowed_code() -> set[str]:
    """The teacher's allow-list (POF_ALLOWED_CODE), normalised."""
    return {_normal(s) for s in os.environ.get(ALLOWED_CODE_ENV, "").split(",") if s.strip()}


def _standard_library(spec: str) -> str | None:
    """What of Python's own library a spec names (a module, or a file inside the standard
    library's folder), or None."""
    where = spec.rpartition(":")[0].strip()
    if not where or spec.startswith("export:"):
        return None
    if where.endswith(".py"):
        stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
        inside = Path(where).expanduser().resolve().is_relative_to(stdlib)
        return "a file of Python's standard library" if inside else None
    top = where.split(".")[0]
    if top in sys.stdlib_module_names or top in sys.builtin_module_names or top == "__main__":
        return f"a function of Python's own {top!r} module (its standard library)"
    return None


def check_code(spec: str) -> None:
    """Refuse a spec of the user's own that must not run here, before it is imported or called."""
    stdlib = _standard_library(spec)
    if stdlib:
        raise CodeRefused(
            f"{spec!r} names {stdlib}, which builds no model: it is refused and never run, since "
            f"with the architecture's arguments it could run commands or touch files here. Name "
            f"the function of your code that returns your model (my_models.py:build or "
            f"my_package.models:build)."
        )
    if classroom() and _normal(spec) not in allowed_code():
        allowed = sorted(allowed_code())
        raise CodeRefused(
            f"This app is shared with a class, so it runs only the model code its teacher "
            f"allowed, and {spec!r} is not among it"
            + (f" (allowed: {', '.join(allowed)})" if allowed else " (nothing is allowed)")
            + ". Use a bundled model or a registry or torchvision architecture, or ask the teacher "
            "to allow yours."
        )
