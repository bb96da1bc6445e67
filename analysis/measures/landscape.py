"""Loss-landscape slices: directions, 1-D and 2-D grids, interpolation between checkpoints.

Directions are filter-normalized Gaussians (Li et al. 2018, "Visualizing the Loss Landscape of
Neural Nets"): every filter of a conv weight and every row of a linear weight is scaled to the norm
of the same filter/row of the model's weights; biases and batch-norm parameters get zero by default.
They are seeded and saved, so that "before" and "after" are drawn along the very same directions.

Every grid point is evaluated in eval mode on a fixed, pre-loaded tensor, in large batches, with the
weights written from a saved copy; the model is restored bit for bit afterwards.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from analysis.measures.results import Landscape
from pof.models.checkpoints import write_safetensors
from pof.models.tensors import read_safetensors
from pof.progress import Progress, ShouldStop, Stopped, check_stop
from pof.validate import ConfigError

# --- directions ---------------------------------------------------------------------------------


@dataclass
class Directions:
    vectors: list[dict[str, torch.Tensor]]  # one {parameter name: tensor} per axis
    meta: dict  # how they were made: kind, seed, options

    def save(self, path: str | Path) -> Path:
        tensors = {f"{i}/{k}": v for i, d in enumerate(self.vectors) for k, v in d.items()}
        write_safetensors(
            tensors, {"directions": self.meta, "count": len(self.vectors)}, Path(path)
        )
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> Directions:
        tensors, meta = read_safetensors(Path(path))
        if not meta or "directions" not in meta:
            raise ConfigError(
                f"{path} is not a directions file written by this project; give another "
                "--directions "
                f"path (it is made and saved there when it does not exist)."
            )
        try:
            vectors = [{} for _ in range(meta["count"])]
            for key, v in tensors.items():
                i, _, name = key.partition("/")
                vectors[int(i)][name] = v
        except (TypeError, ValueError, IndexError) as e:
            raise ConfigError(
                f"{path}: its directions are malformed ({e}); delete it to draw new ones."
            ) from None
        return cls(vectors, meta["directions"])

    def check_fits(self, model: nn.Module) -> None:
        shapes = {n: p.shape for n, p in model.named_parameters()}
        for d in self.vectors:
            bad = [n for n, v in d.items() if n not in shapes or shapes[n] != v.shape]
            if bad or set(d) != set(shapes):
                raise ConfigError(
                    f"These directions were made for another architecture (mismatch in "
                    f"{(bad or sorted(set(shapes) ^ set(d)))[:3]})."
                )


def _is_bias_or_bn(name: str, p: torch.Tensor) -> bool:
    return p.dim() <= 1


def random_directions(
    model: nn.Module,
    n: int = 2,
    seed: int = 0,
    normalization: str = "filter",
    include_bias_bn: bool = False,
    layers: list[str] | None = None,
) -> Directions:
    """n Gaussian directions over the model's parameters.

    normalization: "filter" (each filter/row to the norm of the model's), "layer" (each tensor to
    the norm of the model's tensor) or "none". include_bias_bn: give 1-D parameters (biases, BN) a
    direction too, scaled to their norm, instead of zero. layers: only parameters whose names start
    with one of these prefixes (e.g. ["classifier"]) move."""
    if normalization not in ("filter", "layer", "none"):
        raise ConfigError(f"normalization must be filter, layer or none, got {normalization!r}.")
    gen = torch.Generator().manual_seed(seed)
    vectors = []
    for _ in range(n):
        d = {}
        for name, p in model.named_parameters():
            w = p.detach().cpu().float()
            v = torch.randn(w.shape, generator=gen)
            selected = layers is None or any(name == k or name.startswith(k + ".") for k in layers)
            if not selected or (_is_bias_or_bn(name, w) and not include_bias_bn):
                v.zero_()
            elif normalization == "filter" and w.dim() >= 2:
                # per filter (conv) or per output neuron (linear): dim 0 indexes them
                wn = w.reshape(len(w), -1).norm(dim=1)
                vn = v.reshape(len(v), -1).norm(dim=1).clamp_min(1e-12)
                v = v * (wn / vn).view(-1, *[1] * (w.dim() - 1))
            elif normalization != "none":
                v = v * (w.norm() / v.norm().clamp_min(1e-12))
            d[name] = v.to(p.dtype)
        vectors.append(d)
    meta = {
        "kind": "random",
        "seed": seed,
        "normalization": normalization,
        "include_bias_bn": include_bias_bn,
        "layers": layers,
        "count": n,
    }
    return Directions(vectors, meta)


def difference_direction(model_a: nn.Module, model_b: nn.Module) -> Directions:
    """The direction theta_b - theta_a over parameters (for a 1-D slice through both
    checkpoints)."""
    pb = dict(model_b.named_parameters())
    pa = dict(model_a.named_parameters())
    if set(pa) != set(pb) or any(pb[n].shape != p.shape for n, p in pa.items()):
        raise ConfigError(
            "The two checkpoints have different architectures; no direction runs from one to the "
            "other."
        )
    d = {n: (pb[n].detach() - p.detach()).cpu() for n, p in model_a.named_parameters()}
    return Directions([d], {"kind": "difference", "count": 1})


# --- evaluation on fixed tensors ---------------------------------------------------------------


def eval_tensors(dataset, mean, std, split: str, samples: int | None, seed: int = 0, device="cpu"):
    """A fixed evaluation set: the split, or a seeded subset of `samples` of it, normalized on the
    device, in one tensor. Returns (x, y, n, a sentence that states what it is)."""
    from pof.data.batches import Batches

    x, y = (
        (dataset.x_train, dataset.y_train) if split == "train" else (dataset.x_test, dataset.y_test)
    )
    total = len(x)
    n = total if not samples or samples >= total else samples
    if n < total:
        idx = torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:n]
        x, y = x[idx], y[idx]
    xb, yb = next(iter(Batches(x, y, mean, std, len(x), device, shuffle=False)))
    subset = f" (seeded subset, seed {seed})" if n < total else ""
    if samples and samples > total:  # clamped, and said: the result is on fewer than asked for
        subset = f" (all: {samples:,} were asked for)"
    return (
        xb,
        yb,
        n,
        f"{dataset.name} {split} split, {n} of {total} images{subset}, eval-mode BN, no "
        "augmentation",
    )


_fitting_batch: dict[int, int] = {}  # per model: the largest batch that fitted in memory so far


@torch.no_grad()
def loss_and_accuracy(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int | None = None
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of the model as it is now, on tensors on its device.
    batch_size None: the largest batch that fits, starting from the whole tensor and halving on
    out-of-memory errors (remembered per model, so a grid pays for the search once)."""
    size = batch_size or _fitting_batch.get(id(model), len(x))
    while True:
        try:
            loss, correct = 0.0, 0
            for i in range(0, len(x), size):
                logits = model(x[i : i + size])
                loss += float(F.cross_entropy(logits, y[i : i + size], reduction="sum"))
                correct += int((logits.argmax(1) == y[i : i + size]).sum())
            if batch_size is None:
                _fitting_batch[id(model)] = size
            return loss / len(x), correct / len(x)
        except (torch.OutOfMemoryError, MemoryError, RuntimeError) as e:
            # CPU allocators report a plain RuntimeError ("can't allocate memory")
            if size == 1 or (
                isinstance(e, RuntimeError)
                and not isinstance(e, torch.OutOfMemoryError)
                and "memory" not in str(e)
            ):
                raise
            size //= 2
            if x.is_cuda:
                torch.cuda.empty_cache()


class _Displaced:
    """Write theta0 + sum_i c_i d_i into the parameters; restore theta0 exactly on exit."""

    def __init__(self, model: nn.Module, dirs: Directions):
        self.model = model
        self.params = dict(model.named_parameters())
        self.origin = {n: p.detach().clone() for n, p in self.params.items()}
        dev = next(model.parameters()).device
        self.dirs = [
            {n: v.to(dev, self.origin[n].dtype) for n, v in d.items()} for d in dirs.vectors
        ]
        self.was_training = model.training

    def __enter__(self):
        self.model.eval()
        return self

    @torch.no_grad()
    def move_to(self, coords) -> None:
        for n, p in self.params.items():
            w = self.origin[n].clone()
            for c, d in zip(coords, self.dirs, strict=True):
                if c:
                    w.add_(d[n], alpha=float(c))
            p.copy_(w)

    @torch.no_grad()
    def __exit__(self, *exc):
        for n, p in self.params.items():
            p.copy_(self.origin[n])
        self.model.train(self.was_training)


def evaluate_grid(
    model: nn.Module,
    dirs: Directions,
    axes: list[list[float]],
    x: torch.Tensor,
    y: torch.Tensor,
    eval_set: str,
    batch_size: int | None = None,
    partial: Landscape | None = None,
    save_partial: Callable[[Landscape], None] | None = None,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
) -> Landscape:
    """Loss and accuracy at every point of the grid spanned by `axes` along `dirs` (1 or 2 of them).

    `partial`, a Landscape stopped half-way for the same grid, is continued where it stopped;
    `save_partial` is called every few points so that a killed job loses little."""
    if len(axes) != len(dirs.vectors):
        raise ValueError(f"{len(axes)} axes but {len(dirs.vectors)} directions")
    dirs.check_fits(model)
    shape = [len(a) for a in axes]
    loss = np.full(shape, np.nan)
    acc = np.full(shape, np.nan)
    if partial is not None and partial.axes == axes:
        loss, acc = np.array(partial.loss, dtype=float), np.array(partial.accuracy, dtype=float)
    points = list(np.ndindex(*shape))
    done = int(np.sum(~np.isnan(loss)))

    def result() -> Landscape:
        return Landscape(axes, loss.tolist(), acc.tolist(), eval_set, dirs.meta, done, len(points))

    with _Displaced(model, dirs) as moved:
        try:
            for idx in points:
                if not np.isnan(loss[idx]):
                    continue
                check_stop(should_stop)
                moved.move_to([axes[i][j] for i, j in enumerate(idx)])
                loss[idx], acc[idx] = loss_and_accuracy(model, x, y, batch_size)
                done += 1
                if progress:
                    progress(done, len(points), "landscape")
                if save_partial and done % 20 == 0:
                    save_partial(result())
        except Stopped:
            if save_partial:
                save_partial(result())
            raise
    return result()


def interpolate(
    model_a: nn.Module,
    model_b: nn.Module,
    alphas: list[float],
    x: torch.Tensor,
    y: torch.Tensor,
    eval_set: str,
    batch_size: int | None = None,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
) -> Landscape:
    """Loss and accuracy of (1 - a) theta_a + a theta_b, batch-norm running statistics included
    (integer buffers such as num_batches_tracked are taken from a). Model a is restored
    afterwards."""
    sa, sb = model_a.state_dict(), model_b.state_dict()
    if set(sa) != set(sb) or any(sa[k].shape != sb[k].shape for k in sa):
        raise ConfigError(
            "The two checkpoints have different architectures; they cannot be interpolated."
        )
    origin = {k: v.clone() for k, v in sa.items()}
    target = {k: v.to(origin[k].device) for k, v in sb.items()}
    losses, accs = [], []
    was = model_a.training
    model_a.eval()
    try:
        with torch.no_grad():
            for i, a in enumerate(alphas):
                check_stop(should_stop)
                mixed = {
                    k: (origin[k] + float(a) * (target[k] - origin[k]))
                    if origin[k].is_floating_point()
                    else origin[k]
                    for k in origin
                }
                model_a.load_state_dict(mixed)
                lo, ac = loss_and_accuracy(model_a, x, y, batch_size)
                losses.append(lo)
                accs.append(ac)
                if progress:
                    progress(i + 1, len(alphas), "interpolation")
    finally:
        model_a.load_state_dict(origin)
        model_a.train(was)
    return Landscape(
        [list(alphas)], losses, accs, eval_set, {"kind": "interpolation"}, len(alphas), len(alphas)
    )


def grid(lo: float, hi: float, steps: int) -> list[float]:
    """`steps` evenly spaced points from lo to hi, with 0 included exactly when it lies on the
    grid."""
    pts = np.linspace(lo, hi, steps)
    return [0.0 if math.isclose(p, 0.0, abs_tol=1e-12) else float(p) for p in pts]
