"""Fitting a file's keys to the architecture it is loaded into: the user's renames (--key-map), a
prefix shared by the keys (`module.`, `model.`, `_orig_mod.` ...) stripped when that makes more of
them match, and, when keys still differ, an error that pairs the closest missing and unexpected keys
and suggests a mapping.
"""

from __future__ import annotations

import difflib
from collections import Counter
from typing import TYPE_CHECKING

from ..hints import ask
from .formats import LoadError

if TYPE_CHECKING:
    from torch import nn


def _matches(state: dict, expected: set) -> int:
    return len(expected.intersection(state))


def fit_keys(state: dict, model: nn.Module, key_map: list[str]) -> tuple[dict, list[str]]:
    """The state with the user's renames applied and a shared prefix stripped where that helps;
    returns it with notes of what was done."""
    notes = []
    for m in key_map:
        old, _, new = m.partition("=")
        hit = [k for k in state if k.startswith(old)]
        if not hit:
            raise LoadError(
                f"{ask('key_map', m)}: no key starts with {old!r} (keys look like "
                f"{', '.join(list(state)[:3])})."
            )
        state = {(new + k[len(old) :] if k.startswith(old) else k): v for k, v in state.items()}
        notes.append(f"renamed {len(hit)} keys {old!r} -> {new!r}")
    expected = set(model.state_dict())
    while _matches(state, expected) < len(expected):
        firsts = Counter(k.split(".", 1)[0] + "." for k in state if "." in k)
        best = None
        for prefix, _ in firsts.most_common(3):
            stripped = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            if _matches(stripped, expected) > _matches(state, expected):
                best = (prefix, stripped)
                break
        if best is None:
            break
        prefix, stripped = best
        dropped = [k for k in state if not k.startswith(prefix)]
        notes.append(
            f"stripped the prefix {prefix!r}"
            + (
                f" and left out {len(dropped)} keys outside it ({', '.join(dropped[:3])})"
                if dropped
                else ""
            )
        )
        state = stripped
    return state, notes


def _key_suggestion(
    missing: list[str], unexpected: list[str]
) -> tuple[list[tuple[str, str]], str | None]:
    """Closest (missing, unexpected) pairs and the prefix rename most of them share."""
    pairs, renames = [], Counter()
    for m in missing:
        close = difflib.get_close_matches(m, unexpected, n=1, cutoff=0.3)
        if not close:
            continue
        u = close[0]
        pairs.append((m, u))
        ms, us = m.split("."), u.split(".")
        k = 0
        while k < min(len(ms), len(us)) and ms[-1 - k] == us[-1 - k]:
            k += 1
        if k:
            old, new = ".".join(us[: len(us) - k]), ".".join(ms[: len(ms) - k])
            renames[(old + "." if old else "", new + "." if new else "")] += 1
    if not renames:
        return pairs, None
    (old, new), count = renames.most_common(1)[0]
    if not old or count < max(2, len(pairs) // 2):  # explaining only a few pairs is a guess
        return pairs, None
    return pairs, ask("key_map", f"{old}={new}")


def check_keys(state: dict, model: nn.Module, what: str, arch: str) -> dict:
    """Refuse weights that do not fit the model, saying which keys and shapes differ; returns the
    state completed with BN's step counters when only those are missing (older PyTorch omits
    them)."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    if missing and all(k.endswith("num_batches_tracked") for k in missing):
        state = {**state, **{k: expected[k] for k in missing}}
        missing = []
    unexpected = sorted(set(state) - set(expected))
    wrong = [
        f"{k}: file {tuple(state[k].shape)}, model {tuple(expected[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    if not (missing or unexpected or wrong):
        return state
    lines = [
        f"{what} does not fit {arch}: {len(missing)} missing, {len(unexpected)} unexpected keys, "
        f"{len(wrong)} of another shape."
    ]
    if missing or unexpected:
        pairs, suggestion = _key_suggestion(missing, unexpected)
        width = max([len(m) for m, _ in pairs[:6]] + [len("model expects")])
        lines.append(f"  {'model expects':<{width}}   closest key in the file")
        for m in missing[:6]:
            u = dict(pairs).get(m, "-")
            lines.append(f"  {m:<{width}}   {u}")
        if len(missing) > 6:
            lines.append(f"  ... and {len(missing) - 6} more missing")
        if unexpected and not pairs:
            lines.append(
                "  keys in the file: "
                f"{', '.join(unexpected[:6])}{' ...' if len(unexpected) > 6 else ''}"
            )
        if suggestion:
            lines.append(f"  Most differ by a prefix; try:  {suggestion}")
    if wrong:
        lines.append("  shapes: " + "; ".join(wrong[:4]) + (" ..." if len(wrong) > 4 else ""))
    lines.append(
        f"Check {ask('arch')} and {ask('arch_args')} (e.g. num_classes=...), or rename keys with "
        f"{ask('key_map', 'OLD=NEW')}."
    )
    raise LoadError("\n".join(lines))
