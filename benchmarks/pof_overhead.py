"""PoF's cost over the frozen-head fine-tune (its control with delta = 0), measured side by side.

PoF's only extra work is the weak batch's forward pass (no backward), so its step should cost
1 + weak / (3 x batch) times the control's if a forward were a third of forward + backward. On a CPU
it is closer to half, so the script also measures the bound directly: 1 + (time to draw the weak
batch and run its forward) / (control step time). Steps include the data pipeline, as in an epoch;
the methods are timed alternately, best of --repeats; the line search's share of a PoF step is
timed on the step's own weak-batch features.

    python benchmarks/pof_overhead.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import itertools
import time

import torch

from pof.config import PoFConfig
from pof.data.batches import Batches
from pof.data.load import load_dataset
from pof.method.pof import PoF, last_layer_grad, line_search
from pof.models.networks import build_model
from pof.models.split import split_model


def timed_steps(unit: PoF, batches: Batches, n_steps: int) -> float:
    """n_steps training steps including the data pipeline, as in a real epoch."""
    batches_iter = itertools.chain.from_iterable(batches.epoch(e) for e in itertools.count())
    unit.start_epoch(0)
    t0 = time.perf_counter()
    for xb, yb in itertools.islice(batches_iter, n_steps):
        unit.step(xb, yb)
    return time.perf_counter() - t0


@torch.no_grad()
def weak_forward_time(unit: PoF, n: int) -> float:
    """The extra work PoF needs: drawing the weak batch and its forward pass (weak_bn_mode
    "train", the default, runs the features as they are)."""
    t0 = time.perf_counter()
    for _ in range(n):
        wx, _ = unit.weak.sample(unit.cfg.weak_batch_size, unit.gen)
        unit.features(wx)
    return time.perf_counter() - t0


def line_search_time(features, head, weak: Batches, cfg: PoFConfig, n: int) -> float:
    xs = [weak.sample(cfg.weak_batch_size, torch.Generator().manual_seed(i)) for i in range(n)]
    with torch.no_grad():
        feats = [(features(x), y) for x, y in xs]
        t0 = time.perf_counter()
        for f, y in feats:
            loss0, A, gW, gb = last_layer_grad(f, y, head.weight, head.bias)
            line_search(A, f @ gW.T + gb, y, float(loss0), cfg)
    return time.perf_counter() - t0


def case(name, x, y, mean, std, n_classes, batch, weak_size, n_steps, repeats):
    torch.manual_seed(0)
    model = build_model("cnn-small", tuple(x.shape[1:]), n_classes).train()
    split = split_model(model)
    split.classifier.requires_grad_(False)
    cfg = PoFConfig(weak_batch_size=weak_size)
    train = Batches(x, y, mean, std, batch, augment={"crop": 2, "flip": True}, seed=0)
    weak = Batches(x, y, mean, std, weak_size, augment={"crop": 2, "flip": True}, seed=0)
    steps = {}
    for method, perturbation in (("pof", "pof"), ("finetune-frozen", "none")):
        opt = torch.optim.SGD(split.features.parameters(), lr=1e-4, momentum=0.9, nesterov=True)
        steps[method] = PoF(
            split.features, split.classifier, opt, weak, cfg, perturbation=perturbation
        )
    for s in steps.values():
        timed_steps(s, train, 2)  # warm-up
    times = {m: [] for m in steps}
    for _ in range(repeats):
        for m, s in steps.items():  # alternate, so drift in machine load hits both alike
            times[m].append(timed_steps(s, train, n_steps))
        times.setdefault("weak", []).append(weak_forward_time(steps["pof"], n_steps))
    pof_t, ctl_t, weak_t = min(times["pof"]), min(times["finetune-frozen"]), min(times["weak"])
    ratio, bound, measured = pof_t / ctl_t, 1 + weak_size / (3 * batch), 1 + weak_t / ctl_t
    ls = line_search_time(split.features, split.classifier, weak, cfg, n_steps)
    ms = f"{ctl_t / n_steps * 1e3:.1f} | {pof_t / n_steps * 1e3:.1f}"
    print(
        f"| {name} | {batch} | {weak_size} | {ms} | {ratio:.3f} | {bound:.3f} | {measured:.3f} | "
        f"{ratio / measured:.3f} | {ls / pof_t:.2%} |"
    )


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, cpu")
    print(
        "| case | batch | weak | control ms/step | PoF ms/step | ratio | 1+w/3b "
        "| 1+weak fwd/control (measured) | ratio / measured | line search share |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    d = load_dataset("digits")
    g = torch.Generator().manual_seed(0)
    cx = torch.randint(0, 256, (10_000, 3, 32, 32), dtype=torch.uint8, generator=g)
    cy = torch.randint(0, 10, (10_000,), generator=g)
    for batch in (128, 256):
        case(
            "cnn-small / digits 8x8",
            d.x_train,
            d.y_train,
            d.mean,
            d.std,
            10,
            batch,
            256,
            40,
            args.repeats,
        )
    for batch in (128, 256):
        case(
            "cnn-small / CIFAR-sized 3x32x32",
            cx,
            cy,
            (0.5,) * 3,
            (0.25,) * 3,
            10,
            batch,
            256,
            10,
            args.repeats,
        )


if __name__ == "__main__":
    main()
