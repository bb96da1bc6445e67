"""Typed results: frozen dataclasses of numbers, lists and other results, to JSON and back.

A measurement (a top eigenvalue, a trace, a curvature point recorded during training) is a
`Result`; `to_dict` gives its JSON form and `from_dict` reads it back into the same types. The
file format around them (an envelope naming the kind and the schema) is analysis.results.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

SCHEMA = 2  # bump when a field of any result changes meaning; other versions are recomputed


class ResultError(ValueError):
    """A saved result that this version cannot read (another schema, a missing field)."""


class Result:
    """Base of the result dataclasses: `to_dict()` for JSON, `from_dict(d)` back."""

    def to_dict(self) -> dict:
        return to_dict(self)

    @classmethod
    def from_dict(cls, d: dict):
        return from_dict(cls, d)


# metadata of a field kept in memory only (tensors): left out of to_dict, its default when loaded
UNSAVED = {"saved": False}


def to_dict(obj) -> Any:
    """A result (or a list/dict of them) as plain JSON values; unsaved fields left out."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            f.name: to_dict(getattr(obj, f.name))
            for f in dataclasses.fields(obj)
            if f.metadata.get("saved", True)
        }
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


def _convert(hint, value):
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        (hint,) = [a for a in typing.get_args(hint) if a is not type(None)][:1] or (Any,)
        return _convert(hint, value)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return from_dict(hint, value)
    if origin is list and isinstance(value, list):
        (item,) = typing.get_args(hint) or (Any,)
        return [_convert(item, v) for v in value]
    if origin is dict and isinstance(value, dict):
        _, item = typing.get_args(hint) or (Any, Any)
        return {k: _convert(item, v) for k, v in value.items()}
    return value


def from_dict(cls, d: dict):
    """The one loader: a `cls` from its `to_dict()` form (keys it does not know are ignored).
    Raises ResultError for another schema version or a missing field."""
    if not isinstance(d, dict):
        raise ResultError(f"a {cls.__name__} is a JSON object, got {type(d).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    if "schema" in names and d.get("schema") != SCHEMA:
        raise ResultError(
            f"{cls.__name__} of schema {d.get('schema')!r}; this version reads {SCHEMA}"
        )
    hints = typing.get_type_hints(cls)
    kw = {}
    for f in dataclasses.fields(cls):
        if not f.metadata.get("saved", True) or f.name not in d:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ResultError(f"{cls.__name__} without its field {f.name!r}")
            continue
        kw[f.name] = _convert(hints[f.name], d[f.name])
    try:
        return cls(**kw)
    except (TypeError, ValueError) as e:
        raise ResultError(f"{cls.__name__}: {e}") from None


def as_result(cls, obj):
    """`obj` as a `cls`: itself when it is one, else read from its dict form by `from_dict`."""
    return obj if isinstance(obj, cls) else from_dict(cls, obj)
