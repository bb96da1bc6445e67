"""A training job's curvature tracker, built and checked before its run folder exists.

The probe subset is drawn from the clean (unaugmented) training set with a generator of its own,
normalized as the model's inputs are, and kept on the training device; everything that can refuse
(a subset larger than the data, or than memory allows) refuses here, before any folder is made.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from ..config import TrackConfig
from ..curvature.tracker import Tracker, probe_indices, probe_memory
from ..data.batches import Batches
from ..validate import ConfigError


def make_tracker(
    cfg: TrackConfig,
    model: nn.Module,
    batches: Batches,
    seed: int,
    optimizer: dict,
    split=None,
    missing_last_layer: str | None = None,
) -> tuple[Tracker, list[int]] | None:
    """The tracker of a job (None when tracking is off) and its probe subset's indices into the
    training set. `batches`: the training batches (their tensors and normalization); `optimizer`:
    its momentum, nesterov and weight_decay (they set the stability threshold)."""
    if not cfg.track:
        return None
    n = len(batches.y)
    if cfg.track_samples > n:
        raise ConfigError(
            f"track_samples is {cfg.track_samples} but the training set has {n} examples; "
            f"use at most {n}."
        )
    idx = probe_indices(n, cfg.track_samples, seed)
    at = torch.tensor(idx, device=batches.x.device)
    x, y = batches.normalize(batches.x[at]), batches.y[at]
    _check_memory(model, x)
    tracker = Tracker(
        model,
        x,
        y,
        cfg.track_every,
        cfg.track_probes,
        seed,
        momentum=optimizer.get("momentum", 0.0),
        nesterov=bool(optimizer.get("nesterov", False)),
        weight_decay=optimizer.get("weight_decay", 0.0),
        split=split,
        missing_last_layer=missing_last_layer,
    )
    return tracker, idx


def _check_memory(model: nn.Module, x: torch.Tensor) -> None:
    need = probe_memory(model, x)
    have = _available(x.device)
    if have and need > have / 2:  # the job itself needs the other half
        raise ConfigError(
            f"a probe subset of {len(x)} examples needs about {need / 2**30:.2g} GiB for its "
            f"Hessian-vector products but {have / 2**30:.2g} GiB are free; lower track_samples "
            f"to about {max(1, int(len(x) * have / 2 / need))}."
        )


def _available(device: torch.device) -> int:
    """Free bytes on `device` (0: unknown)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    if hasattr(os, "sysconf"):
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    return 0
