"""The split PoF needs: any model as a feature extractor followed by its last linear layer.
Registry models (networks.Classifier) state it; a foreign model is split at the layer the user
names, else at its last nn.Linear, and the split is checked on an example to reproduce the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .networks import Classifier
from .registry import split_text


@dataclass
class Split:
    features: nn.Module
    classifier: nn.Linear
    classifier_name: str  # qualified name inside the model, e.g. "classifier" or "fc"
    how: str  # "registry" or "last nn.Linear"

    def describe(self) -> str:
        c = self.classifier
        return split_text(self.classifier_name, c.in_features, c.out_features, self.how)


class _UpTo(nn.Module):
    """A foreign model's feature extractor: the model with its last Linear replaced by identity."""

    def __init__(self, model: nn.Module, name: str):
        super().__init__()
        self.model, self.name = model, name

    def forward(self, x):
        parent_name, _, attr = self.name.rpartition(".")
        parent = self.model.get_submodule(parent_name) if parent_name else self.model
        linear = getattr(parent, attr)
        setattr(parent, attr, nn.Identity())
        try:
            return self.model(x)
        finally:
            setattr(parent, attr, linear)


def split_model(
    model: nn.Module, example: torch.Tensor | None = None, classifier: str | None = None
) -> Split:
    """Feature extractor and last linear layer of any model.

    Registry models (`Classifier`) say so explicitly. Others are split at the layer named
    `classifier`, else at their last nn.Linear in registration order; with an `example` batch the
    split is checked to reproduce the model's output, so a model that does more after that layer
    is refused rather than silently mis-split.
    """
    if isinstance(model, Classifier) and classifier in (None, "classifier"):
        return Split(model.features, model.classifier, "classifier", "registry")
    if classifier:
        try:
            linear = model.get_submodule(classifier)
        except AttributeError:
            raise ValueError(f"The model has no layer {classifier!r}.") from None
        if not isinstance(linear, nn.Linear):
            raise ValueError(f"{classifier} is a {type(linear).__name__}, not a Linear layer.")
        name, how = classifier, "its name (--classifier)"
    else:
        linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError(
                "The model has no nn.Linear layer, so it has no last layer to split off."
            )
        (name, linear), how = linears[-1], "last nn.Linear"
    split = Split(_UpTo(model, name), linear, name, how)
    if example is not None:
        was = model.training
        model.eval()
        with torch.no_grad():
            ok = torch.allclose(
                linear(split.features(example)), model(example), atol=1e-5, rtol=1e-4
            )
        model.train(was)
        if not ok:
            raise ValueError(
                f"The model's output is not {name}(features): something follows that layer, "
                f"so it cannot be split for PoF."
            )
    return split
