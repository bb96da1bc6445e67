"""Estimates with their uncertainty, compared: the one place where a ratio of two noisy numbers gets
its error, and where "indistinguishable from zero / from one" is decided (two standard errors).
The CLI's per-layer comparison, the app's ratio panels and the curvature-over-time ratios all use
it, so they agree.

    from analysis.uncertainty import ratio, within_noise
    r = ratio(71.57, 17.0, 71.2, 15.0)   # second / first, ± first-order propagated error
    r.value, r.error, r.differs_from_one
"""

from __future__ import annotations

import math
from typing import NamedTuple

NOISE_SIGMAS = 2.0  # below this many standard errors a difference is called noise


class Ratio(NamedTuple):
    value: float
    error: float  # one standard error, first order: sigma_r / r = sqrt((sa/a)^2 + (sb/b)^2)
    marked: bool = False  # an input is an unconverged eigenvalue: its error is only a residual

    @property
    def differs_from_one(self) -> bool:
        return abs(self.value - 1.0) >= NOISE_SIGMAS * self.error


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def within_noise(value, stderr) -> bool:
    """Whether an estimate is indistinguishable from zero: |value| < 2 standard errors. (A negative
    Hutchinson trace within noise is noise, not negative curvature.)"""
    return _finite(value) and _finite(stderr) and abs(value) < NOISE_SIGMAS * stderr


def ratio(a, sa, b, sb, marked: bool = False) -> Ratio | None:
    """b / a with its first-order standard error from both errors (independent estimates). None
    when a ratio means nothing: a missing value, or a denominator not clearly positive (within two
    standard errors of zero, or not above it)."""
    if not all(_finite(x) for x in (a, b)):
        return None
    sa = sa if _finite(sa) else 0.0
    sb = sb if _finite(sb) else 0.0
    if a <= 0 or a <= NOISE_SIGMAS * sa:
        return None
    r = b / a
    # |r| * sqrt((sa/a)^2 + (sb/b)^2), written so that b == 0 needs no special case
    return Ratio(r, math.hypot(sb / a, r * sa / a), marked)


def format_ratio(r: Ratio | None, digits: int = 3) -> str:
    """'0.995 ± 0.32' ('?' appended for an unconverged eigenvalue), or '-' for no ratio."""
    if r is None:
        return "-"
    text = f"{r.value:.{digits}g} ± {r.error:.2g}"
    return text + ("?" if r.marked else "")
