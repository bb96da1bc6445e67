"""Whose code a model may run. An architecture spec of the user's own (`file.py:fn`,
`package.module:fn`, `export:program.pt2`) runs code on this machine, so:

- always, the spec must name a factory that can return a model: a module of Python's own standard
  library or its builtins (`os:system`, `subprocess:run`, `builtins:exec`, ...) is refused before
  anything is imported or called;
- in shared (classroom) mode, set with POF_CLASSROOM=1 by a teacher who serves the app to a class,
  only the specs the teacher lists in POF_ALLOWED_CODE run (comma-separated, exactly as given to
  the loader; a file's path is compared resolved).

The mode is read from the environment so that the app and the jobs it starts (the CLI as a child
process, which inherits it) obey the same rule."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .registry import ArchError

CLASSROOM_ENV = "POF_CLASSROOM"
ALLOWED_CODE_ENV = "POF_ALLOWED_CODE"


class CodeRefused(ArchError):
    """A spec that names code this machine must not run; the message says why and what to do."""


def classroom() -> bool:
    return os.environ.get(CLASSROOM_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _normal(spec: str) -> str:
    """A spec with its file resolved (file.py:fn, export:PATH), so that two spellings of one file
    match; a package spec as it is."""
    spec = spec.strip()
    if spec.startswith("export:"):
        return "export:" + str(Path(spec[7:]).expanduser().resolve())
    where, _, fn = spec.rpartition(":")
    if where.endswith(".py"):
        return f"{Path(where).expanduser().resolve()}:{fn}"
    return spec


def allowed_code() -> set[str]:
    """The teacher's allow-list (POF_ALLOWED_CODE), normalised."""
    return {_normal(s) for s in os.environ.get(ALLOWED_CODE_ENV, "").split(",") if s.strip()}


def _standard_library(spec: str) -> str | None:
    """The standard-library or builtin module a `module:function` spec names, or None."""
    where = spec.rpartition(":")[0].strip()
    if not where or where.endswith(".py") or spec.startswith("export:"):
        return None
    top = where.split(".")[0]
    if top in sys.stdlib_module_names or top in sys.builtin_module_names or top == "__main__":
        return top
    return None


def check_code(spec: str) -> None:
    """Refuse a spec of the user's own that must not run here, before it is imported or called."""
    stdlib = _standard_library(spec)
    if stdlib:
        raise CodeRefused(
            f"{spec!r} names a function of Python's own {stdlib!r} module, which builds no model "
            f"and is never called. Name the function of your code that returns your model "
            f"(my_models.py:build or my_package.models:build)."
        )
    if classroom() and _normal(spec) not in allowed_code():
        allowed = sorted(allowed_code())
        raise CodeRefused(
            f"This app is shared with a class, so it runs only the model code its teacher "
            f"allowed, and {spec!r} is not among it"
            + (f" (allowed: {', '.join(allowed)})" if allowed else " (nothing is allowed)")
            + ". Use a bundled model or a registry or torchvision architecture, or ask the teacher "
            "to allow yours."
        )
