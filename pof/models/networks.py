"""The registry's networks. Every model is `classifier(features(x))`: PoF trains `features` and
perturbs `classifier` (a single nn.Linear). Foreign modules are split at their last nn.Linear. The
registry itself (names, default arguments) is pof.models.registry.ARCHS, which needs no torch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import ARCHS


class Classifier(nn.Module):
    """A feature extractor followed by one linear layer; the split PoF needs, stated explicitly."""

    def __init__(self, features: nn.Module, classifier: nn.Linear):
        super().__init__()
        self.features = features
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


# --- architectures ----------------------------------------------------------------------------


def mlp(input_shape, num_classes, hidden=(64, 64)) -> Classifier:
    layers: list[nn.Module] = [nn.Flatten()]
    width = int(torch.tensor(input_shape).prod())
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    return Classifier(nn.Sequential(*layers), nn.Linear(width, num_classes))


def _conv_bn(cin, cout):
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


def cnn_small(input_shape, num_classes, width=32) -> Classifier:
    """Three conv-BN-ReLU blocks (width, 2w, 4w) and global average pooling; about 0.1M
    parameters at width 32. Inputs of 16 px or more are pooled once more so 28/32 px stays cheap."""
    c, h = input_shape[0], input_shape[-1]
    layers = _conv_bn(c, width)
    if h >= 16:
        layers.append(nn.MaxPool2d(2))
    layers += [*_conv_bn(width, 2 * width), nn.MaxPool2d(2), *_conv_bn(2 * width, 4 * width)]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return Classifier(nn.Sequential(*layers), nn.Linear(4 * width, num_classes))


class _BasicBlock(nn.Module):
    """CIFAR ResNet block (He et al. 2016) with the parameter-free 'option A' shortcut."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride, self.pad = stride, cout - cin

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        short = x[:, :, :: self.stride, :: self.stride] if self.stride > 1 else x
        if self.pad:
            short = F.pad(short, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return F.relu(out + short)


def cifar_resnet(input_shape, num_classes, depth=20) -> Classifier:
    if (depth - 2) % 6:
        raise ValueError("CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56, 110).")
    n = (depth - 2) // 6
    layers = [nn.Conv2d(input_shape[0], 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    cin = 16
    for i, cout in enumerate((16, 32, 64)):
        for j in range(n):
            layers.append(_BasicBlock(cin, cout, 2 if (i > 0 and j == 0) else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return Classifier(nn.Sequential(*layers), nn.Linear(64, num_classes))


class _WideBlock(nn.Module):
    """Pre-activation wide block (Zagoruyko & Komodakis 2016): BN-ReLU-conv, twice."""

    def __init__(self, cin, cout, stride, dropout=0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.dropout = dropout
        self.shortcut = (
            None if (cin == cout and stride == 1) else nn.Conv2d(cin, cout, 1, stride, bias=False)
        )

    def forward(self, x):
        o = F.relu(self.bn1(x))
        short = x if self.shortcut is None else self.shortcut(o)
        o = self.conv1(o)
        o = F.relu(self.bn2(o))
        if self.dropout:
            o = F.dropout(o, self.dropout, self.training)
        return self.conv2(o) + short


def wide_resnet(input_shape, num_classes, depth=28, widen=10, dropout=0.0) -> Classifier:
    if (depth - 4) % 6:
        raise ValueError("Wide ResNet depth must be 6n+4 (16, 22, 28, 40).")
    n = (depth - 4) // 6
    widths = (16, 16 * widen, 32 * widen, 64 * widen)
    layers = [nn.Conv2d(input_shape[0], widths[0], 3, 1, 1, bias=False)]
    cin = widths[0]
    for i, cout in enumerate(widths[1:]):
        for j in range(n):
            layers.append(_WideBlock(cin, cout, 2 if (i > 0 and j == 0) else 1, dropout))
            cin = cout
    # the final BN-ReLU of a pre-activation network, then global pooling
    layers += [nn.BatchNorm2d(cin), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return Classifier(nn.Sequential(*layers), nn.Linear(cin, num_classes))


def resnet18_cifar(input_shape, num_classes) -> Classifier:
    """torchvision's ResNet-18 with a 3x3 stride-1 stem and no max-pool, the usual 32x32
    adaptation."""
    import torchvision

    m = torchvision.models.resnet18(num_classes=num_classes)
    m.conv1 = nn.Conv2d(input_shape[0], 64, 3, 1, 1, bias=False)
    feats = nn.Sequential(
        m.conv1, m.bn1, m.relu, m.layer1, m.layer2, m.layer3, m.layer4, m.avgpool, nn.Flatten()
    )
    return Classifier(feats, m.fc)


def build_model(arch: str, input_shape, num_classes: int, **arch_args) -> Classifier:
    if arch not in ARCHS:
        raise ValueError(f"Unknown architecture {arch!r}; known: {', '.join(ARCHS)}.")
    spec = ARCHS[arch]
    args = {**spec.defaults, **arch_args}
    if arch != "mlp" and len(input_shape) != 3:
        raise ValueError(
            f"{arch} needs image inputs (C, H, W), got shape {tuple(input_shape)}; use mlp for "
            "2-D data."
        )
    build = globals()[spec.builder]  # a function of this module, named by the registry
    return build(tuple(input_shape), num_classes, **args)


def arch_args(arch: str, **overrides) -> dict:
    """The full argument set an architecture is built with (stored in checkpoints)."""
    return {**ARCHS[arch].defaults, **overrides}


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
