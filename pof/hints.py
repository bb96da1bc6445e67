"""What an error asks the user to give, named by concept, so that each interface words it its own
way: the command line as a flag (`--arch`), the app as its page's field ('Architecture'), and a
file as the user knows it (the path typed, or the name of an upload, never where it is stored).

A message marks each request with ask("arch") (or ask("key_map", "old.=new.") with a value) and
each file with file_ref(path). str() of a Hinted error, and a Said text, render the command line's
words; an interface with other words calls render(marked(e), its_words, its_names).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

# control characters never found in a path or a repr, so a marked message stays plain text
_ASK, _SEP, _END = "\x02", "\x1f", "\x03"
_FILE, _FILE_END = "\x0e", "\x0f"
_ASKED = re.compile(f"{_ASK}([a-z_]+)(?:{_SEP}([^{_END}]*))?{_END}")
_FILED = re.compile(f"{_FILE}([^{_FILE_END}]*){_FILE_END}")

# each concept a loader may ask for, as the command line spells it
FLAGS = {
    "arch": "--arch",
    "arch_args": "--arch-arg",
    "classifier": "--classifier",
    "key_map": "--key-map",
    "weights_key": "--weights-key",
    "dataset": "--dataset",
    "classes": "--classes",
    "label_column": "--label-column",
    "test_fraction": "--test-fraction",
    "split_seed": "--split-seed",
    "mean": "--mean",
    "std": "--std",
    "data_root": "--data-root",
    "svhn_extra": "--svhn-extra",
    "overwrite": "--overwrite",
    "out": "--out",
}
# requests the command line answers with a whole command rather than a flag
COMMANDS = {
    "import": "write a project checkpoint once with "
    "`python -m pof import {value} --arch ARCH --dataset DATA --out model.safetensors`",
}


def ask(concept: str, value: str | None = None) -> str:
    """A request for `concept` (a key of FLAGS or COMMANDS) inside a message, optionally with the
    value to give."""
    assert concept in FLAGS or concept in COMMANDS, concept
    return _ASK + concept + (_SEP + str(value) if value is not None else "") + _END


def file_ref(path) -> str:
    """A file inside a message, shown as the interface knows it."""
    return _FILE + str(path) + _FILE_END


def cli_words(concept: str, value: str | None) -> str:
    if concept in COMMANDS:
        return COMMANDS[concept].format(value=value)
    return FLAGS[concept] + (f" {value}" if value is not None else "")


def render(
    text: str,
    words: Callable[[str, str | None], str] = cli_words,
    names: dict[str, str] | None = None,
) -> str:
    """The message with each request in `words` and each file by its name in `names` (keyed by
    path, resolved or as given; other files keep their path)."""
    names = {str(k): v for k, v in (names or {}).items()}

    def file_name(m: re.Match) -> str:
        path = m.group(1)
        if path in names:
            return names[path]
        try:
            return names.get(str(Path(path).resolve()), path)
        except (OSError, ValueError, RuntimeError):  # RuntimeError: a loop of links (3.11)
            return path

    text = _FILED.sub(file_name, text)
    return _ASKED.sub(lambda m: words(m.group(1), m.group(2)), text)


class Said(str):
    """A marked message as the command line words it (so it prints, joins and saves as plain
    text), keeping its marks in .raw for an interface with other words."""

    raw: str

    def __new__(cls, text: str):
        said = super().__new__(cls, render(text))
        said.raw = text
        return said


def marked(text) -> str:
    """The marked form of an error, a Said or plain text."""
    return text.raw if isinstance(text, (Hinted, Said)) else str(text)


class Hinted(Exception):
    """An error whose message may mark requests and files; str() words them for the command
    line."""

    @property
    def raw(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __str__(self) -> str:
        return render(self.raw)
