"""One source of truth for options: a config dataclass's fields make its command-line flags.

A field declared with `option(default, "help")` becomes `--field-name`, typed from its annotation,
with that help text and default; `from_args` builds the config back from the parsed flags, and
`to_argv` turns a config into the flags that reproduce it (how the app starts a job). A field that
needs a hand-written flag (a dict or a list parsed from several flags) is declared with
`option(..., cli=False)` and the front end names the flag it uses; tests/test_options.py checks that
every field has exactly one flag and every flag exactly one field.

argparse is driven directly rather than through a dataclass-to-CLI library so that the flags,
their help and the error messages stay exactly as users know them.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any


def option(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    choices=None,
    factory=None,
    cli: bool = True,
    flag: str | None = None,
    metavar: str | None = None,
):
    """A config field with its help text: `lr: float = option(0.05, "learning rate")`.

    `choices` restricts the value; `factory` replaces `default` for mutable defaults; `cli=False`
    marks a field the front end parses by hand; `flag` overrides the generated flag name."""
    meta = {
        "help": help,
        "choices": tuple(choices) if choices else None,
        "cli": cli,
        "flag": flag,
        "metavar": metavar,
    }
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def flag_name(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def cli_fields(config_cls) -> list[dataclasses.Field]:
    """The fields of `config_cls` that have a generated flag."""
    return [f for f in dataclasses.fields(config_cls) if f.metadata.get("cli", False)]


def _base_type(annotation) -> tuple[type, bool]:
    """(scalar or list type, whether None is allowed) of a field annotation like `int | None`."""
    optional = False
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(args) < len(typing.get_args(annotation))
        (annotation,) = args
    return annotation, optional


def add_options(parser, config_cls, exclude: tuple[str, ...] = ()) -> None:
    """Add one flag per option field of `config_cls` (not those in `exclude`) to `parser`."""
    hints = typing.get_type_hints(config_cls)
    for f in cli_fields(config_cls):
        if f.name in exclude:
            continue
        kind, _ = _base_type(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        kw: dict[str, Any] = {"dest": f.name, "default": default, "help": f.metadata["help"]}
        if f.metadata.get("metavar"):
            kw["metavar"] = f.metadata["metavar"]
        if kind is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(kind) is list:
            (item,) = typing.get_args(kind)
            kw.update(type=item, nargs="+")
        else:
            kw["type"] = kind
            if f.metadata.get("choices"):
                kw["choices"] = f.metadata["choices"]
        parser.add_argument(flag_name(f), **kw)


def from_args(config_cls, args: argparse.Namespace, **values):
    """`config_cls` from parsed flags: every option field with a flag, plus `values` (the fields the
    front end parsed by hand). A flag missing from `args` is an error here, not a silent default."""
    for f in cli_fields(config_cls):
        if f.name not in values:
            values[f.name] = getattr(args, f.name)
    return config_cls(**values)


def to_argv(config, exclude: tuple[str, ...] = ()) -> list[str]:
    """The flags that reproduce `config`'s option fields (defaults omitted, `exclude` skipped)."""
    argv: list[str] = []
    for f in cli_fields(type(config)):
        if f.name in exclude:
            continue
        value = getattr(config, f.name)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if value == default:
            continue
        name = flag_name(f)
        if isinstance(value, bool):
            argv.append(name if value else "--no-" + name[2:])
        elif value is None:
            raise ValueError(f"{f.name} has no flag for None; leave it at its default")
        elif isinstance(value, list):
            argv += [name, *map(str, value)]
        else:
            argv += [name, repr(value) if isinstance(value, float) else str(value)]
    return argv
