"""Reading a model file someone else wrote: by its content, never by its extension, never
unpickling anything but tensors.

    safetensors                       tensors (+ this project's metadata, when it wrote the file)
    torch.save zip or legacy pickle   read with torch.load(weights_only=True): a state dict, or a
                                      {'state_dict' | 'model' | 'model_state_dict' | 'net': ...}
                                      wrapper such as a Lightning .ckpt
    torch.export archive (.pt2)       checked piece by piece first (see _vet_pt2), then loaded
    TorchScript archive               refused: TorchScript is deprecated in this PyTorch
                                      (torch.export replaces it) and its archives carry code that
                                      would be run
    a pickled whole module            refused unread, with what to save instead

Keys are then fitted to the architecture: a prefix shared by the keys (`module.`, `model.`,
`_orig_mod.` ...) is stripped when that makes more of them match, `--key-map old=new` renames, and
when keys still do not match the error pairs the closest missing and unexpected keys and
suggests a mapping.

torch is imported where tensors are read, not with this module: the app's pages name files and
report errors without it.
"""

from __future__ import annotations

import difflib
import io
import json
import re
import types
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn

WRAPPERS = ("state_dict", "model_state_dict", "model", "net", "network", "module")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class CheckpointError(Exception):
    """A checkpoint cannot be used; the message says what is wrong and what to do."""


class LoadError(CheckpointError, ValueError):
    """A model file someone else wrote cannot be read or fitted: a CheckpointError like any other,
    so every caller that reports those reports these, without re-wrapping them."""


def clean(message: str) -> str:
    """A library's message, whole, without terminal colour codes."""
    return _ANSI.sub("", str(message)).strip()


@dataclass
class ModelSource:
    """How to turn a file without this project's metadata into a model (the CLI's --arch,
    --arch-arg, --classifier and --key-map; the app's fields of the same names)."""

    arch: str | None = None
    arch_args: dict = field(default_factory=dict)
    classifier: str | None = None  # qualified name of the last layer, e.g. "head.fc"
    key_map: list[str] = field(default_factory=list)  # "old=new" prefix renames, applied in order

    def __post_init__(self):
        for m in self.key_map:
            old, sep, _ = m.partition("=")
            if not sep or not old:
                raise LoadError(
                    f"--key-map {m!r}: give OLD=NEW (a key prefix in the file and what it should "
                    "become)."
                )


# --- what a file is -------------------------------------------------------------------------------


def sniff(path: Path) -> str:
    """'safetensors', 'export', 'torchscript', 'torch' (zip or legacy torch.save) or 'unknown'."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except FileNotFoundError:
        raise LoadError(f"No such file: {path}.") from None
    except IsADirectoryError:
        raise LoadError(f"{path} is a folder, not a model file.") from None
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


def _torch_load(data, what: str):
    import torch

    try:
        return torch.load(data, map_location="cpu", weights_only=True)
    except Exception as e:
        msg = clean(e)
        found = re.search(r"GLOBAL ([\w.]+)", msg)
        if found:
            raise LoadError(
                f"{what} holds a pickled Python object ({found.group(1)}), not only tensors. It "
                "was not loaded: unpickling it would run code. Save the weights instead: "
                "torch.save(model.state_dict(), PATH) (and give the architecture with --arch), "
                "or export the model with torch.export.save."
            ) from e
        raise LoadError(f"{what} could not be read as a PyTorch file: {msg}") from e


def unwrap(obj, what: str) -> dict[str, torch.Tensor]:
    """The state dict inside what torch.load returned: itself, or under a common wrapper key
    (Lightning keeps it under 'state_dict', many scripts under 'model' or 'model_state_dict')."""
    import torch

    for _ in range(3):  # wrappers nest at most a couple of levels in practice
        if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
        if not isinstance(obj, dict):
            break
        inner = next((obj[k] for k in WRAPPERS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            break
        obj = inner
    if isinstance(obj, dict):
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors and all(isinstance(k, str) for k in tensors):
            return (
                tensors  # a state dict with a few non-tensor extras (e.g. `_metadata`-like entries)
            )
        keys = ", ".join(map(str, list(obj)[:12]))
        raise LoadError(
            f"{what} holds a dict without a state dict in it (top-level keys: {keys}). Expected "
            f"tensors, or one of {', '.join(repr(w) for w in WRAPPERS)} holding them."
        )
    raise LoadError(f"{what} holds a {type(obj).__name__}, not a state dict of tensors.")


def read_state(path: Path) -> tuple[str, dict[str, torch.Tensor], dict | None]:
    """(kind, state dict, this project's metadata or None) of a weights file. An export archive
    returns an empty state: its weights come with its program (load_export)."""
    from .checkpoints import read_safetensors

    kind = sniff(path)
    if kind == "safetensors":
        state, meta = read_safetensors(path)
        return kind, state, meta
    if kind == "torch":
        return kind, unwrap(_torch_load(str(path), str(path)), str(path)), None
    if kind == "export":
        return kind, {}, None
    if kind == "torchscript":
        raise LoadError(
            f"{path} is a TorchScript archive. TorchScript is deprecated in this PyTorch and its "
            "archives carry compiled code, so they are not read. Save the weights "
            "(torch.save(model.state_dict(), PATH)) with --arch, or export the model: "
            "torch.export.save(torch.export.export(model, (x,), dynamic_shapes=...), "
            "'model.pt2')."
        )
    with open(path, "rb") as f:
        head = f.read(8)
    raise LoadError(
        f"{path} is not a model file this tool reads (safetensors, a torch.save state dict, a "
        f"Lightning .ckpt, or a torch.export .pt2); its first bytes are {head!r}."
    )


# --- torch.export programs ------------------------------------------------------------------------


def _vet_pt2(path: Path) -> None:
    """torch.export.load unpickles some pieces with weights_only=False (pickled weights, custom
    objects, sample inputs). Check each such piece first: tensors only, or the file is refused."""
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            if name.endswith("_config.json") and "/data/" in name:
                config = json.loads(z.read(name)).get("config", {})
                for fqn, entry in config.items():
                    p = entry.get("path_name", "")
                    if p.startswith(("custom_obj", "opaque_obj")):
                        raise LoadError(
                            f"{path} holds a Python object ({fqn}) besides tensors; it is not "
                            "loaded, for safety. Export a model whose constants are tensors."
                        )
                    if entry.get("use_pickle"):
                        piece = name.rsplit("/", 1)[0] + "/" + p
                        _torch_load(io.BytesIO(z.read(piece)), f"{path} ({piece})")
            elif name.endswith(".pt") or name.endswith(".pkl"):
                _torch_load(io.BytesIO(z.read(name)), f"{path} ({name})")


def _fixed_mode(self, mode: bool = True):
    # an exported graph is traced in one mode (BN statistics and dropout are baked in); PyHessian
    # and evaluation call .eval(), which exported modules refuse: keep the flag, change nothing
    object.__setattr__(self, "training", mode)
    return self


def load_export(path: Path) -> nn.Module:
    """The module of a torch.export program, after vetting its pickled pieces."""
    import torch

    if sniff(path) != "export":
        raise LoadError(f"{path} is not a torch.export archive (torch.export.save writes one).")
    _vet_pt2(path)
    try:
        program = torch.export.load(str(path))
    except Exception as e:
        raise LoadError(f"{path}: torch.export.load failed: {clean(e)}") from e
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in program.graph_signature.user_inputs:
            val = node.meta.get("val")
            if val is not None and isinstance(val.shape[0], int):
                raise LoadError(
                    f"{path} was exported for batches of exactly {val.shape[0]}; the analyses "
                    "need other batch sizes. Export it again with a dynamic batch dimension: "
                    "torch.export.export(model, (x,), "
                    f"dynamic_shapes=({{0: torch.export.Dim('batch')}},))."
                )
    module = program.module()
    module.train = types.MethodType(_fixed_mode, module)
    module.eval = types.MethodType(lambda self: _fixed_mode(self, False), module)
    return module


# --- fitting keys to an architecture --------------------------------------------------------------


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
                f"--key-map {m}: no key starts with {old!r} (keys look like "
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
    return pairs, f"--key-map {old}={new}"


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
        "Check --arch and --arch-arg (e.g. num_classes=...), or rename keys with --key-map OLD=NEW."
    )
    raise LoadError("\n".join(lines))
