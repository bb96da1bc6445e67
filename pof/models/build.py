"""An untrained model from an architecture spec (pof.models.registry names the sources): the
project's registry, torchvision's classification models, timm's models, the user's own factory,
or a torch.export program. Where the spec leaves the number of classes open, it is read off the
weights to be loaded.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path

from torch import nn

from ..hints import ask
from .registry import (
    TIMM_MISSING,
    ArchError,
    check_code,
    kind_of,
    timm_names,
    torchvision_names,
)


def torchvision_model(
    name: str, args: dict, state: dict | None, num_classes: int | None
) -> nn.Module:
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


def timm_model(
    name: str, args: dict, state: dict | None, num_classes: int | None, input_shape=None
) -> nn.Module:
    """A timm model, untrained (its weights come from the user's file: nothing is downloaded),
    with as many input channels as the data has unless told otherwise."""
    try:
        import timm
    except ImportError:
        raise ArchError(TIMM_MISSING) from None
    names = timm_names()
    if name.split(".", 1)[0] not in names:  # "resnet10t" or a tagged "resnet10t.a1_in1k"
        close = difflib.get_close_matches(name, names, n=3)
        raise ArchError(
            f"timm has no model {name!r}"
            + (f"; did you mean {', '.join(close)}?" if close else "")
            + " (timm.list_models())"
        )
    args = dict(args)
    if args.pop("pretrained", False):
        raise ArchError(
            f"timm:{name} is built untrained here: its weights come from your file, and nothing "
            "is downloaded. Leave out pretrained."
        )
    if input_shape is not None and len(input_shape) == 3:
        args.setdefault("in_chans", int(input_shape[0]))

    def make(**extra):
        return timm.create_model(name, pretrained=False, **args, **extra)

    if "num_classes" not in args:
        n = _classes_off_weights(make, state) or num_classes
        if n:
            args["num_classes"] = n
    try:
        return make()
    except (TypeError, ValueError, RuntimeError) as e:
        raise ArchError(f"timm:{name} cannot be built with {args}: {e}") from e


def _classes_off_weights(make, state: dict | None) -> int | None:
    """The number of outputs the weights' last layer has, found by building the model once
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
    from .split import is_head_conv

    # the last nn.Linear, else the last 1x1 convolution (a SqueezeNet-style head): as split_model
    linears = [n for n, m in probe.named_modules() if isinstance(m, nn.Linear)]
    heads = linears or [n for n, m in probe.named_modules() if is_head_conv(m)]
    w = state.get(f"{heads[-1]}.weight") if heads else None
    return int(w.shape[0]) if w is not None and w.ndim in (2, 4) else None


# --- the user's own code --------------------------------------------------------------------------


def _refuse_library_callable(target: str, factory) -> None:
    """A factory imported from the user's module may still be one of Python's own callables
    re-exported there (`from os import system`): refused before it is called. (A spec that names
    Python's library itself is refused before any import: registry.check_code.)"""
    module = getattr(factory, "__module__", None) or "builtins"
    top = module.split(".")[0]
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        raise ArchError(
            f"{target}: this is {module}'s {getattr(factory, '__name__', 'callable')}, part of "
            f"Python's standard library, not a model factory; calling it could run commands or "
            f"touch files on this machine, so it is refused. Give a function of your own that "
            f"returns an nn.Module."
        )


def _factory(target: str):
    where, _, fn = target.rpartition(":")
    if not where or not fn.isidentifier():
        raise ArchError(f"{target!r}: give path/to/file.py:function or package.module:function.")
    if where.endswith(".py"):
        path = Path(where).expanduser().resolve()
        if not path.is_file():
            raise ArchError(f"No such file: {path} (from {ask('arch', target)}).")
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
                f"Cannot import {where!r} (from {ask('arch', target)}): {e}. Run from the folder "
                f"that holds it, or give path/to/file.py:{fn}."
            ) from e
    factory = getattr(module, fn, None)
    if callable(factory):
        _refuse_library_callable(target, factory)  # mymod:system after `from os import system`
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
                f"{arch} needs the input shape and the number of classes: give {ask('dataset')}."
            )
        try:
            return build_model(arch, input_shape, n, **args)
        except (TypeError, ValueError) as e:
            raise ArchError(f"cannot build {arch} with {args}: {e}") from e
    if kind == "torchvision":
        return torchvision_model(arch.split(":", 1)[1], args, state, num_classes)
    if kind == "timm":
        return timm_model(arch.split(":", 1)[1], args, state, num_classes, input_shape)
    check_code(arch)  # the user's own code or program: refused here before it is read or run
    if kind == "export":
        from .export import load_export

        if args:
            raise ArchError("A torch.export program takes no architecture arguments.")
        return load_export(Path(arch.split(":", 1)[1]))
    return _user_code(arch, args, state, num_classes)
