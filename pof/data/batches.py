"""Batches on the training device: shuffled, augmented and normalized whole, with tensor
operations (no per-sample Python, no DataLoader workers), reproducible epoch by epoch.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    """A generator that depends only on (seed, epoch, stream): resuming at an epoch replays it
    exactly."""
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 7 + stream)


class Batches:
    """Shuffled, augmented, normalized batches from tensors already on the device.

    Randomness for epoch e comes from `epoch_generator(seed, e)`, so the data order and the
    augmentation of any epoch are reproducible on their own (needed for exact resume).
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        mean,
        std,
        batch_size: int,
        device: torch.device | str = "cpu",
        augment: dict | None = None,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
    ):
        self.device = torch.device(device)
        self.x = x.to(self.device)
        self.y = y.to(self.device)
        self.is_image = x.dtype == torch.uint8
        shape = (1, -1, 1, 1) if self.is_image else (1, -1)
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(shape)
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device).view(shape)
        self.batch_size = batch_size
        self.augment = dict(augment or {}) if self.is_image else {}
        self.shuffle, self.drop_last, self.seed = shuffle, drop_last, seed

    def __len__(self) -> int:
        n = len(self.x)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def normalize(self, xb: torch.Tensor) -> torch.Tensor:
        xf = xb.float().div_(255) if self.is_image else xb.float()
        return (xf - self.mean) / self.std

    def sample(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """n examples drawn uniformly with replacement, augmented like training batches."""
        return self.sample_indexed(n, gen)[:2]

    def sample_indexed(
        self, n: int, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """sample(), and which examples it drew: (x, y, their indices into the pool)."""
        idx = torch.randint(len(self.x), (n,), generator=gen).to(self.device)
        return (*self._prepare(idx, gen), idx)

    def epoch(self, epoch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        gen = epoch_generator(self.seed, epoch)
        n = len(self.x)
        order = torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)
        order = order.to(self.device)
        for i in range(len(self)):
            yield self._prepare(order[i * self.batch_size : (i + 1) * self.batch_size], gen)

    def __iter__(self):
        return self.epoch(0)

    def _prepare(
        self, idx: torch.Tensor, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        xb = self.x[idx]
        if not self.augment:
            return self.normalize(xb), self.y[idx]
        xb = xb.float().div_(255)
        b, _, h, w = xb.shape
        aug = self.augment
        if aug.get("crop"):
            p = aug["crop"]
            padded = torch.nn.functional.pad(xb, (p, p, p, p))
            dy = torch.randint(0, 2 * p + 1, (b,), generator=gen).to(self.device)
            dx = torch.randint(0, 2 * p + 1, (b,), generator=gen).to(self.device)
            rows = (dy[:, None] + torch.arange(h, device=self.device))[:, None, :, None]
            cols = (dx[:, None] + torch.arange(w, device=self.device))[:, None, None, :]
            xb = padded[
                torch.arange(b, device=self.device)[:, None, None, None],
                torch.arange(xb.shape[1], device=self.device)[None, :, None, None],
                rows,
                cols,
            ]
        if aug.get("flip"):
            flip = (torch.rand(b, generator=gen) < 0.5).to(self.device)
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
        if aug.get("cutout"):
            s = aug["cutout"]
            cy = torch.randint(0, h, (b,), generator=gen).to(self.device)
            cx = torch.randint(0, w, (b,), generator=gen).to(self.device)
            # an s x s square centred at (cy, cx), clipped at the border
            dr = torch.arange(h, device=self.device)[None] - (cy[:, None] - s // 2)
            dc = torch.arange(w, device=self.device)[None] - (cx[:, None] - s // 2)
            inside = ((dr >= 0) & (dr < s))[:, :, None] & ((dc >= 0) & (dc < s))[:, None, :]
            xb = xb.masked_fill(inside[:, None], 0.0)
        return (xb - self.mean) / self.std, self.y[idx]
