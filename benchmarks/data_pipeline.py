"""Share of a training epoch spent in the data pipeline (shuffle, augment, normalize on the device).

For each case it times, alternating, (a) an epoch of batches with the model replaced by nothing and
(b) an epoch with the model's forward, backward and SGD step, and prints data / full as a ratio.
Target: below 5 % for cnn-small on digits and resnet20 on CIFAR-sized tensors.

    python benchmarks/data_pipeline.py [--cifar-root /tmp/cifar10-jpeg] [--repeats 3]

Without --cifar-root the CIFAR case uses random uint8 tensors of CIFAR's shape (the pipeline's cost
does not depend on the pixel values). resnet20 epochs are long on 2 cores, so that case times a
fixed number of batches instead of the whole epoch.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from pof.data.batches import Batches
from pof.data.load import load_dataset
from pof.models.networks import build_model


def timed_epoch(batches: Batches, model, optimizer, epoch: int, max_batches: int | None) -> float:
    t0 = time.perf_counter()
    for i, (x, y) in enumerate(batches.epoch(epoch)):
        if max_batches is not None and i >= max_batches:
            break
        if model is not None:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return time.perf_counter() - t0


def case(name, x, y, mean, std, arch, augment, batch_size, repeats, max_batches):
    torch.manual_seed(0)
    model = build_model(arch, tuple(x.shape[1:]), int(y.max()) + 1).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    batches = Batches(x, y, mean, std, batch_size, augment=augment, seed=0)
    timed_epoch(batches, model, opt, 0, 2)  # warm-up
    data_t, full_t = [], []
    for r in range(repeats):  # alternate so drift in machine load hits both alike
        data_t.append(timed_epoch(batches, None, None, r, max_batches))
        full_t.append(timed_epoch(batches, model, opt, r, max_batches))
    data, full = min(data_t), min(full_t)
    print(
        f"{name:<42} data {data * 1e3:9.1f} ms   full {full * 1e3:9.1f} ms   "
        f"data share {data / full:6.2%}"
    )
    return data / full


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--cifar-root", help="image folder with CIFAR-10 (train/<class>/*.jpg, test/...)"
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--resnet-batches", type=int, default=20, help="batches timed per resnet20 repeat"
    )
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device cpu")
    d = load_dataset("digits")
    case(
        "cnn-small / digits, batch 128, crop+flip",
        d.x_train,
        d.y_train,
        d.mean,
        d.std,
        "cnn-small",
        {"crop": 1, "flip": True},
        128,
        args.repeats,
        None,
    )
    if args.cifar_root:
        c = load_dataset(f"imagefolder:{args.cifar_root}")
        x, y, mean, std, src = c.x_train, c.y_train, c.mean, c.std, "CIFAR-10 jpeg folder"
    else:
        g = torch.Generator().manual_seed(0)
        x = torch.randint(0, 256, (50_000, 3, 32, 32), dtype=torch.uint8, generator=g)
        y = torch.randint(0, 10, (50_000,), generator=g)
        mean, std, src = (0.5,) * 3, (0.25,) * 3, "random uint8 CIFAR-shaped"
    aug = {"crop": 4, "flip": True, "cutout": 16}
    case(
        f"cnn-small / {src}, batch 256, crop+flip+cutout",
        x,
        y,
        mean,
        std,
        "cnn-small",
        aug,
        256,
        args.repeats,
        40,
    )
    case(
        f"resnet20 / {src}, batch 128, crop+flip+cutout",
        x,
        y,
        mean,
        std,
        "resnet20",
        aug,
        128,
        args.repeats,
        args.resnet_batches,
    )


if __name__ == "__main__":
    main()
