"""What a model file is, recognised by its content (never its extension), the errors every step of
loading raises, and what the user says about a file that lacks this project's metadata. No torch:
the app's pages name files and report errors without it.

    safetensors                       tensors (+ this project's metadata, when it wrote the file)
    torch.save zip or legacy pickle   a state dict, alone or in a container (pof.models.tensors)
    torch.export archive (.pt2)       a program that carries its architecture (pof.models.export)
    TorchScript archive               refused: TorchScript is deprecated in this PyTorch
                                      (torch.export replaces it) and its archives carry code that
                                      would be run
    anything else                     refused, with the formats that are read
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..files import NotRegularFile, regular_file
from ..hints import Hinted, ask, file_ref, marked

if TYPE_CHECKING:
    pass

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class CheckpointError(Hinted):
    """A checkpoint cannot be used; the message says what is wrong and what to do (marking what
    to give and the file with pof.hints, so each interface words them its own way)."""


class LoadError(CheckpointError, ValueError):
    """A model file someone else wrote cannot be read or fitted: a CheckpointError like any other,
    so every caller that reports those reports these, without re-wrapping them."""


def clean(message: str) -> str:
    """A library's message, whole, without terminal colour codes."""
    return _ANSI.sub("", str(message)).strip()


@dataclass
class ModelSource:
    """How to turn a file without this project's metadata into a model (the CLI's --arch,
    --arch-arg, --classifier, --key-map and --weights-key; the app's fields of the same names)."""

    arch: str | None = None
    arch_args: dict = field(default_factory=dict)
    classifier: str | None = None  # qualified name of the last layer, e.g. "head.fc"
    key_map: list[str] = field(default_factory=list)  # "old=new" prefix renames, applied in order
    weights_key: str | None = None  # the container's key holding the weights, when several fit

    def __post_init__(self):
        for m in self.key_map:
            old, sep, _ = m.partition("=")
            if not sep or not old:
                raise LoadError(
                    f"{ask('key_map', repr(m))}: give OLD=NEW (a key prefix in the file and what "
                    "it should become)."
                )


# --- what a file is -------------------------------------------------------------------------------


def sniff(path: Path) -> str:
    """'safetensors', 'export', 'torchscript', 'torch' (zip or legacy torch.save) or 'unknown'."""
    try:
        with open(regular_file(path, "model file"), "rb") as f:
            head = f.read(16)
    except FileNotFoundError:
        raise LoadError(f"No such file: {file_ref(path)}.") from None
    except NotRegularFile as e:
        raise LoadError(marked(e)) from None
    if head[:2] == b"PK":
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except zipfile.BadZipFile:
            return "unknown"
        if any(n.endswith("/archive_format") or "/models/" in n for n in names):
            return "export"
        if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
            return "torchscript"
        if any(n.endswith("/data.pkl") for n in names):
            return "torch"
        return "unknown"
    # safetensors first: its 8-byte header length may itself begin with 0x80, a pickle's first byte
    if (
        len(head) >= 9
        and head[8:9] == b"{"
        and int.from_bytes(head[:8], "little") < path.stat().st_size
    ):
        return "safetensors"
    if head[:1] == b"\x80":  # a pickle stream: torch.save's legacy (pre-zip) format
        return "torch"
    return "unknown"


FOREIGN = {
    "safetensors": "safetensors file",
    "torch": "PyTorch file",
    "export": "torch.export program",
}


def refuse_unreadable(path: Path, kind: str) -> None:
    """Refuse what is not a model file this tool reads (TorchScript, anything unknown); the other
    kinds pass."""
    if kind in FOREIGN:
        return
    if kind == "torchscript":
        raise LoadError(
            f"{file_ref(path)} is a TorchScript archive. TorchScript is deprecated in this PyTorch "
            "and its archives carry compiled code, so they are not read. Save the weights "
            f"(torch.save(model.state_dict(), PATH)) with {ask('arch')}, or export the model: "
            "torch.export.save(torch.export.export(model, (x,), dynamic_shapes=...), "
            "'model.pt2')."
        )
    with open(path, "rb") as f:
        head = f.read(8)
    raise LoadError(
        f"{file_ref(path)} is not a model file this tool reads (safetensors, a torch.save state "
        f"dict, a Lightning .ckpt, or a torch.export .pt2); its first bytes are {head!r}."
    )
