"""The one progress and stop protocol of every long computation (training, Hessian, landscapes).

A long function takes `progress` and `should_stop`, both optional:
- `progress(done, total, label, **info)` is called as work advances: `done` of `total` units of the
  current stage named `label` ("epoch 3/10", "Lanczos", "2-D surface"); `info` carries what that
  computation reports on the way (a training step's loss, a finished epoch's record).
- `should_stop()` is polled between units; when it returns True the function raises `Stopped`
  (after saving whatever its caller needs to resume) instead of returning a partial result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class Progress(Protocol):
    def __call__(self, done: int, total: int, label: str, /, **info: Any) -> None: ...


ShouldStop = Callable[[], bool]


class Stopped(Exception):
    """The caller asked the computation to stop."""


def check_stop(should_stop: ShouldStop | None) -> None:
    """Raise Stopped when `should_stop` (if given) says so."""
    if should_stop is not None and should_stop():
        raise Stopped("stopped on request")


class Diverged(Exception):
    """The loss became NaN or infinite; the run folder says so and keeps the last good epoch.
    (Here, torch-free, so that the CLI's error handling imports no torch.)"""
