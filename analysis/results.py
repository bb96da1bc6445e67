"""Typed results and their one file format.

Every report's result is a frozen dataclass (`Result`, from pof.results) of numbers, lists and other
results. It is saved as JSON in an envelope that names its kind and the format's version,

    {"schema": SCHEMA, "kind": "hessian", ..., "results": {label: result as a dict}}

and read back into the same types by `from_dict` (and `load`, for a file). A file of another
schema version, or one that cannot be read, is absent to its reader: `load` says why (through
`on_problem`) and returns None, and the caller computes the result again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pof.files import write_json_atomic
from pof.results import (  # noqa: F401  (the one result format: re-exported)
    SCHEMA,
    UNSAVED,
    Result,
    ResultError,
    as_result,
    from_dict,
    to_dict,
)


@dataclass(frozen=True)
class Saved:
    """A result file: its kind, what it was computed on (`about`) and the results by label."""

    kind: str
    results: dict[str, Any]
    about: dict


def save(path: str | Path, kind: str, results: dict[str, Result], **about) -> Path:
    """Write `results` ({label: result}) atomically as one file of this format."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    envelope = {"schema": SCHEMA, "kind": kind, **about, "results": to_dict(results)}
    write_json_atomic(path, envelope)
    return path


def load(
    path: str | Path, kind: str, cls: type, on_problem: Callable[[str], None] | None = None
) -> Saved | None:
    """The file at `path` as typed results, or None when it is absent, of another schema version,
    of another kind or unreadable (then `on_problem` hears why, in one sentence)."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
        if not isinstance(d, dict):
            raise ResultError("not a JSON object")
        if d.get("schema") != SCHEMA:
            raise ResultError(f"schema {d.get('schema')!r}, this version reads {SCHEMA}")
        if d.get("kind") != kind:
            raise ResultError(f"a {d.get('kind')!r} result, not {kind!r}")
        if not isinstance(d.get("results"), dict):
            raise ResultError("no results in it")
        results = {label: from_dict(cls, r) for label, r in d["results"].items()}
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:  # ResultError and JSON errors are ValueErrors
        if on_problem:
            on_problem(f"ignoring {path} ({e}); computing it again")
        return None
    about = {k: v for k, v in d.items() if k not in ("schema", "kind", "results")}
    return Saved(kind, results, about)
