"""A model's loss and accuracy on a dataset: what every epoch, `pof evaluate` and the app report."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..data.batches import Batches
from ..hints import Said, ask


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


@torch.no_grad()
def accuracy_within(
    model: nn.Module, x, y, mean, std, budget_s: float = 1.0, batch_size: int = 256
) -> dict:
    """Accuracy on (x, y) within about `budget_s` seconds: the whole set when it fits, else the
    batches of a seeded random order evaluated in that time, with the standard error of that
    sample (finite-population corrected: 0 once every example is seen). Light enough for a page's
    own process; `seconds_all` estimates what the whole set would take."""
    import time

    start, n, hits = time.perf_counter(), 0, 0
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    norm = Batches(x[:1], y[:1], mean, std, 1, shuffle=False)
    was = model.training
    model.eval()
    for idx in order.split(batch_size):
        hits += int((model(norm.normalize(x[idx])).argmax(1) == y[idx]).sum())
        n += len(idx)
        if time.perf_counter() - start > budget_s:
            break
    model.train(was)
    seconds, total = time.perf_counter() - start, len(x)
    acc = hits / n
    se = (acc * (1 - acc) / n * (total - n) / max(total - 1, 1)) ** 0.5
    return {"acc": acc, "se": se, "n": n, "total": total, "seconds_all": seconds * total / n}


def near_chance(acc: float, se: float, num_classes: int) -> bool:
    """Accuracy no better than chance (1/K) by more than a margin of 1/K (at most 10 points) and
    two standard errors: what a model shows when it sees its inputs otherwise normalized than in
    training, or reads its classes in another order."""
    chance = 1 / num_classes
    return acc <= chance + min(chance, 0.1) + 2 * se


def chance_warning(acc: float, se: float, num_classes: int, data: str) -> Said | None:
    """The warning for a model of another origin that is near chance on the chosen data."""
    if not near_chance(acc, se, num_classes):
        return None
    return Said(
        f"Accuracy {acc:.1%} on {data} is near chance ({1 / num_classes:.1%} for {num_classes} "
        f"classes). A trained model this close to chance usually sees its inputs normalized "
        f"otherwise than in its training (state the mean and std it was trained with: "
        f"{ask('mean')}), or reads the classes in another order ({ask('classes')}); every "
        f"curvature number of it describes a model that is not working."
    )
