"""The split PoF needs: any model as a feature extractor followed by its last linear layer.
Registry models (networks.Classifier) state it; a foreign model is split at the layer the user
names, else at its last nn.Linear, else at its last 1x1 convolution, and the split is checked on an
example to reproduce the model.

A 1x1 convolution followed only by global average pooling is a linear layer on the pooled
features (averaging commutes with it), so such a head (SqueezeNet-style) is used as one: the
features are the model with that convolution replaced by the global average of its input.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .networks import Classifier
from .registry import split_text

# layers that may sit between a 1x1 convolution head and its pooling without breaking linearity
_PASS = (nn.Identity, nn.Dropout, nn.Dropout2d, nn.Flatten)
_POOL = (nn.AdaptiveAvgPool2d,)


class ConvHead(nn.Module):
    """A 1x1 convolution read as the Linear layer it is on pooled features: W = weight[:, :, 0, 0].
    Its parameters are the convolution's own (freezing or reading one is the other)."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.conv = conv

    @property
    def weight(self) -> torch.Tensor:
        return self.conv.weight.flatten(1)

    @property
    def bias(self) -> torch.Tensor:
        c = self.conv
        return c.bias if c.bias is not None else c.weight.new_zeros(c.out_channels)

    @property
    def in_features(self) -> int:
        return self.conv.in_channels

    @property
    def out_features(self) -> int:
        return self.conv.out_channels

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return F.linear(f, self.weight, self.bias)


def is_head_conv(m: nn.Module) -> bool:
    """A convolution that maps each position's channels alone: 1x1, stride 1, unpadded, 1 group."""
    return (
        isinstance(m, nn.Conv2d)
        and m.kernel_size == (1, 1)
        and m.stride == (1, 1)
        and m.padding in ((0, 0), "valid")
        and m.groups == 1
    )


class _GlobalMean(nn.Module):
    # what the features see in place of a 1x1 head: its input averaged over positions
    def forward(self, x):
        return x.mean((2, 3), keepdim=True)


@dataclass
class Split:
    features: nn.Module
    classifier: nn.Module  # an nn.Linear, or a ConvHead (same weight, bias, in/out_features)
    classifier_name: str  # qualified name inside the model, e.g. "classifier" or "fc"
    how: str  # "registry" or "last nn.Linear"

    def describe(self) -> str:
        c = self.classifier
        text = split_text(self.classifier_name, c.in_features, c.out_features, self.how)
        if isinstance(c, ConvHead):
            text = text.replace("(Linear", "(1x1 Conv2d on globally pooled features, as Linear")
            text = text.replace("everything before it", "everything before it, globally averaged")
        return text


class _UpTo(nn.Module):
    """A foreign model's feature extractor: the model with its last layer replaced by identity (a
    1x1 convolution head by the global average of its input)."""

    def __init__(self, model: nn.Module, name: str):
        super().__init__()
        self.model, self.name = model, name

    def forward(self, x):
        parent_name, _, attr = self.name.rpartition(".")
        parent = self.model.get_submodule(parent_name) if parent_name else self.model
        layer = getattr(parent, attr)
        setattr(parent, attr, _GlobalMean() if isinstance(layer, nn.Conv2d) else nn.Identity())
        try:
            return self.model(x)
        finally:
            setattr(parent, attr, layer)


def _after_conv(model: nn.Module, conv: nn.Module, example: torch.Tensor) -> list[str]:
    """The layers a forward pass runs after `conv` and before its pooling that are neither pooling
    nor pass-through (dropout, flatten, identity): each makes the head nonlinear. Empty when
    `conv` is not the model's last layer with weights (then it is no head to explain)."""
    names = {m: n for n, m in model.named_modules()}
    order: list[nn.Module] = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: order.append(m))
        for m in model.modules()
        if not list(m.children())
    ]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in hooks:
            h.remove()
    if conv not in order:
        return []
    between = []
    for m in order[order.index(conv) + 1 :]:
        if isinstance(m, _POOL):
            break
        if next(m.parameters(recurse=False), None) is not None:
            return []  # a layer with weights follows: the convolution is no head at all
        if not isinstance(m, _PASS):
            between.append(f"{names[m]} ({type(m).__name__})")
    return between


def split_model(
    model: nn.Module, example: torch.Tensor | None = None, classifier: str | None = None
) -> Split:
    """Feature extractor and last linear layer of any model.

    Registry models (`Classifier`) say so explicitly. Others are split at the layer named
    `classifier`, else at their last nn.Linear in registration order, else at their last 1x1
    convolution; with an `example` batch the split is checked to reproduce the model's output, so
    a model that does more after that layer is refused rather than silently mis-split.
    """
    if isinstance(model, Classifier) and classifier in (None, "classifier"):
        return Split(model.features, model.classifier, "classifier", "registry")
    if classifier:
        try:
            layer = model.get_submodule(classifier)
        except AttributeError:
            raise ValueError(f"The model has no layer {classifier!r}.") from None
        if not isinstance(layer, nn.Linear) and not is_head_conv(layer):
            raise ValueError(
                f"{classifier} is a {type(layer).__name__}, neither a Linear layer nor a 1x1 "
                "convolution before global average pooling."
            )
        name, how = classifier, "name (given or recorded)"
    else:
        linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        convs = [(n, m) for n, m in model.named_modules() if is_head_conv(m)]
        if linears:
            (name, layer), how = linears[-1], "last nn.Linear"
        elif convs:
            (name, layer), how = convs[-1], "last 1x1 Conv2d (no nn.Linear)"
        else:
            raise ValueError(
                "The model has neither an nn.Linear layer nor a 1x1 convolution head, so it has "
                "no last layer to split off."
            )
    head = ConvHead(layer) if isinstance(layer, nn.Conv2d) else layer
    split = Split(_UpTo(model, name), head, name, how)
    if example is not None:
        was = model.training
        model.eval()
        try:
            with torch.no_grad():
                ok = torch.allclose(
                    head(split.features(example)), model(example), atol=1e-5, rtol=1e-4
                )
            between = _after_conv(model, layer, example) if isinstance(head, ConvHead) else []
        except RuntimeError:
            ok, between = False, []
        finally:
            model.train(was)
        if between:
            raise ValueError(
                f"{', '.join(between)} {'sit' if len(between) > 1 else 'sits'} between the 1x1 "
                f"convolution {name} and the global "
                f"pooling, so the logits are not a linear function of pooled features and PoF "
                f"has no last layer to perturb. Replace it by nn.Identity (then fine-tune the "
                f"model) so that {name} becomes a linear layer on the pooled features."
            )
        if not ok:
            kind = "a linear function of the pooled features" if isinstance(head, ConvHead) else ""
            raise ValueError(
                f"The model's output is not {name}(features){' as ' + kind if kind else ''}: "
                f"something follows that layer, so it cannot be split for PoF."
            )
    return split
