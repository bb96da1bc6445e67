"""A model's loss and accuracy on a dataset: what every epoch, `pof evaluate` and the app report."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..data.batches import Batches


@torch.no_grad()
def evaluate(model: nn.Module, batches: Batches, num_classes: int) -> dict:
    """Mean cross-entropy, accuracy and per-class accuracy, in eval mode (BN running statistics)."""
    was = model.training
    model.eval()
    loss_sum, correct = 0.0, torch.zeros(num_classes)
    counts = torch.zeros(num_classes)
    for xb, yb in batches:
        logits = model(xb)
        loss_sum += F.cross_entropy(logits, yb, reduction="sum").item()
        hit = (logits.argmax(1) == yb).float().cpu()
        correct.index_add_(0, yb.cpu(), hit)
        counts.index_add_(0, yb.cpu(), torch.ones_like(hit))
    model.train(was)
    n = counts.sum().item()
    return {
        "loss": loss_sum / n,
        "acc": correct.sum().item() / n,
        "per_class_acc": (correct / counts.clamp_min(1)).tolist(),
    }
