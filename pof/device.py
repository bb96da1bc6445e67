"""Which device a job runs on: a name checked up front, "auto" resolved to the best one here."""

from __future__ import annotations

import torch

from .validate import ConfigError

_HINT = "; use auto, cpu, cuda or cuda:N"


def check_device(name) -> None:
    """Refuse, up front, a device name torch cannot parse or a CUDA/MPS device this machine
    lacks."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"device must be a name such as auto, cpu or cuda, got {name!r}{_HINT}.")
    if name == "auto":
        return
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError) as e:
        raise ConfigError(f"device {name!r} is not a device name ({e}){_HINT}.") from None
    if dev.type == "cuda" and not (
        torch.cuda.is_available() and (dev.index or 0) < torch.cuda.device_count()
    ):
        raise ConfigError(
            f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s){_HINT}."
        )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {name!r}: MPS is not available on this machine{_HINT}.")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device {name!r}: this tool runs on cpu, cuda or mps{_HINT}.")


def pick_device(name: str = "auto") -> torch.device:
    """The device `name` stands for; "auto": CUDA, else MPS, else the CPU."""
    if name != "auto":
        check_device(name)
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
