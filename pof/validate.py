"""One validation layer for every option: the config dataclasses call these in `__post_init__`, so
the CLI, the app and a notebook get the same refusal, with the same message, before any folder is
created or any work starts.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

# Far beyond any rate that trains (the divergence test uses 1e12); above it the arithmetic itself
# overflows.
MAX_LR = 1e12


class ConfigError(ValueError):
    """An option has a value that cannot work; the message names it and says what to give instead.
    (A ValueError, so callers that caught those before still do.)"""


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def positive_int(name: str, v, minimum: int = 1, why: str = "") -> int:
    """An integer >= minimum (bools and floats are refused: 2.5 epochs is not a number of
    epochs)."""
    if not _is_int(v) or v < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}{why}, got {v!r}.")
    return v


# Absurd but finite sizes: accepted, they made a run folder and then never finished a step (a batch
# of 1e9 images allocates without end) or an epoch count no machine reaches. Far above any real use.
MAX_EPOCHS = 100_000
MAX_BATCH = 65_536


def at_most(name: str, v: int, limit: int, why: str) -> int:
    """`v` (an integer already checked) if it is at most `limit`; else ConfigError saying why."""
    if v > limit:
        raise ConfigError(f"{name} is {v:,}: {why}; use at most {limit:,}.")
    return v


def finite(
    name: str,
    v,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
) -> float:
    """A finite real number within [lo, hi] (an end excluded where *_open)."""
    ok = (_is_int(v) or isinstance(v, float)) and math.isfinite(v)
    ok = (
        ok
        and (lo is None or (v > lo if lo_open else v >= lo))
        and (hi is None or (v < hi if hi_open else v <= hi))
    )
    if not ok:
        where = []
        if lo is not None:
            where.append(f"{'>' if lo_open else '>='} {lo:g}")
        if hi is not None:
            where.append(f"{'<' if hi_open else '<='} {hi:g}")
        rng = " and ".join(where)
        raise ConfigError(f"{name} must be a finite number{' ' + rng if rng else ''}, got {v!r}.")
    return float(v)


def choice(name: str, v, options) -> str:
    if v not in options:
        raise ConfigError(f"{name} must be one of {', '.join(map(str, options))}, got {v!r}.")
    return v


def optional_str(name: str, v) -> None:
    if v is not None and not isinstance(v, str):
        raise ConfigError(f"{name} must be a string, got {v!r}.")


def augment(name: str, spec) -> dict:
    """The augmentation spec parsed now, so a typo is refused before any folder or data."""
    from .data.names import parse_augment

    if not isinstance(spec, str):
        raise ConfigError(
            f"{name} must be a string such as 'default', 'none' or 'crop=4,flip,cutout=16', "
            f"got {spec!r}."
        )
    try:
        out = parse_augment(spec, {})
    except ValueError as e:
        raise ConfigError(f"{name}: {e}") from None
    for key in ("crop", "cutout"):
        if out.get(key, 0) > 1024:  # a pad/patch beyond any image this tool trains on: a typo
            raise ConfigError(
                f"{name}: {key}={out[key]} is larger than any image; use at most 1024 pixels."
            )
    return out


def arch_args(name: str, args, known=None) -> dict:
    """Registry architecture arguments: a dict of known keys whose numbers are positive (widths,
    depths, hidden sizes; 0 <= dropout < 1)."""
    if not isinstance(args, dict):
        raise ConfigError(f"{name} must be a dict of KEY=VALUE, got {args!r}.")
    if known is not None:
        unknown = sorted(set(args) - set(known))
        if unknown:
            have = ", ".join(sorted(known)) or "none"
            raise ConfigError(
                f"{name}: unknown argument(s) {', '.join(unknown)}; this architecture takes: "
                f"{have}."
            )
    for key, value in args.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if key == "dropout":
                finite(f"{name} {key}", v, 0, 1, hi_open=True)
            elif not _is_int(v) or v < 1:
                raise ConfigError(
                    f"{name} {key}={value!r}: give positive integers (a size or a depth)."
                )
            elif v > 1_000_000:
                raise ConfigError(
                    f"{name} {key}={value!r} is far beyond what fits in memory; use a smaller "
                    f"value."
                )
    return args


def output_dir(name: str, path) -> Path:
    """A folder we will create or write into: refuse now (without creating anything) a path that is
    a file, lies under a file, or whose first existing folder cannot be written."""
    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise ConfigError(f"{name} must name a folder, got {path!r}.")
    p = Path(path).expanduser()
    try:
        exists, is_dir = p.exists(), p.is_dir()
    except OSError as e:  # a name too long for the file system, a loop of links ...
        raise ConfigError(
            f"{name} {str(p)[:80]}...: {e.strerror or e}; give a shorter, plain folder path."
        ) from None
    if exists and not is_dir:
        raise ConfigError(
            f"{name} {p} is a file (or a link to nothing), not a folder; give a folder path."
        )
    if any(len(part.encode()) > 255 for part in p.parts):
        raise ConfigError(
            f"{name}: a folder name longer than 255 bytes cannot exist; give a shorter one."
        )
    anc = p
    while not anc.exists():
        anc = anc.parent
    if not anc.is_dir():
        raise ConfigError(
            f"{name} {p}: {anc} is a file, so no folder can be made below it; give another path."
        )
    try:  # os.access lies for root and for read-only mounts; trying is the only sure test
        fd, probe = tempfile.mkstemp(dir=anc, prefix=".pof-write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ConfigError(
            f"{name} {p}: cannot write in {anc} ({e.strerror or e}); give a folder you can "
            f"write to."
        ) from None
    return p


# Grid evaluations: every point is a full forward pass over the evaluation set, so the number of
# points is the cost. Above this many a landscape would run for days (and its result would not fit
# comfortably in a JSON file); below 2 steps per axis there is no slice to draw.
MAX_GRID_POINTS = 1_000_000


def grid_size(name: str, steps, dims: int, samples: int | None = None) -> int:
    positive_int(name, steps, 2, " (points per axis; a slice needs two ends)")
    points = steps**dims
    if points > MAX_GRID_POINTS:
        evals = f" x {samples} images = {points * samples:.3g} image evaluations" if samples else ""
        mem = points * 2 * 8 * 2  # loss + accuracy as float64, and their JSON copy
        raise ConfigError(
            f"{name} {steps} in {dims} dimension(s) is {points:.3g} grid points{evals} "
            f"(about {mem / 2**30:.3g} GiB of results alone, days of evaluation); use at most "
            f"{int(MAX_GRID_POINTS ** (1 / dims))} steps per axis."
        )
    return points
