"""The Learn page's networks and results on disk: computed once, checked every time they are read.

An entry is named by a hash of everything it was computed from: its kind, its arguments (the full
recipe), the bytes of any bundled checkpoint it reads, the versions of torch and scikit-learn (the
point sets), and the source of the engine modules that compute it. A change to any of them names
another entry, so a changed recipe or engine is computed again, never served stale. Each entry is
one JSON file in analysis.results' format plus, for a trained network or a kept eigenvector, one
safetensors file; the JSON records the SHA-256 of its own results and of the tensors file, and an
entry whose bytes do not match (a corrupted or edited file) is ignored and computed again.

Entries are read first from the shipped folder (assets/learn, made by assets/make_learn_cache.py)
and then from the writable one (a folder of the runs root); what is computed is written only to
the writable one. Nothing is unpickled: JSON and safetensors only. A result is read without torch
(`peek`, and `result` when the entry is found); torch is imported only for an entry's tensors.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from pof.results import SCHEMA, Result, ResultError, from_dict, to_dict

if TYPE_CHECKING:
    import torch

ROOT = Path(__file__).resolve().parents[1]
# the engine whose numbers an entry holds: editing any of these names new entries
ENGINE = (
    "analysis/learn.py",
    "analysis/learn_results.py",
    "analysis/measures/hessian.py",
    "analysis/measures/landscape.py",
    "analysis/measures/results.py",
    "analysis/measures/sharpness.py",
    "pof/curvature/lastlayer.py",
    "pof/curvature/results.py",
    "pof/data/batches.py",
    "pof/data/offline.py",
    "pof/method/pof.py",
    "pof/models/networks.py",
    "pof/training/optim.py",
)
_engine: str | None = None


def engine_digest() -> str:
    """SHA-256 over the engine's sources and the versions of the libraries that draw the numbers."""
    global _engine
    if _engine is None:
        # the versions, without importing either (seconds)
        versions = f"torch {metadata.version('torch')} sklearn {metadata.version('scikit-learn')}"
        h = hashlib.sha256(versions.encode())
        for name in ENGINE:
            h.update(name.encode() + b"\0" + (ROOT / name).read_bytes())
        _engine = h.hexdigest()
    return _engine


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, default=str).encode()


class Store:
    """Entries read from `shipped` (if given) or `folder`, computed into `folder` otherwise."""

    def __init__(self, folder: str | Path, shipped: str | Path | None = None):
        self.folder = Path(folder)
        self.shipped = Path(shipped) if shipped else None
        self.computed: list[str] = []  # the entries this store had to compute (for tests, benches)

    def name(self, kind: str, about: dict) -> tuple[str, dict]:
        about = json.loads(_canonical({"kind": kind, "engine": engine_digest(), **about}))
        return f"{kind}-{_sha(_canonical(about))[:20]}", about

    def get(
        self,
        kind: str,
        cls: type,
        compute: Callable[[], tuple[Result, dict[str, torch.Tensor] | None]],
        **about,
    ) -> tuple[Result, dict[str, torch.Tensor] | None]:
        """(result, tensors or None) of the entry named by kind and about: read and verified, or
        computed by `compute()` and written."""
        name, about = self.name(kind, about)
        found = self._find(name, about, cls)
        if found is not None:
            return found
        result, tensors = compute()
        self.computed.append(name)
        self._write(name, about, result, tensors)
        return result, tensors

    def result(self, kind: str, cls: type, compute: Callable[[], Result], **about) -> Result:
        """get() for a result without tensors."""
        return self.get(kind, cls, lambda: (compute(), None), **about)[0]

    def peek(self, kind: str, cls: type, **about) -> Result | None:
        """The result of an entry that may hold tensors, read and verified without them (nor torch),
        or None when there is no such entry: a trained network's summary, say."""
        name, about = self.name(kind, about)
        found = self._find(name, about, cls, tensors=False)
        return found[0] if found is not None else None

    def _find(self, name: str, about: dict, cls: type, tensors: bool = True):
        """(result, tensors or None) of the shipped entry, else the written one; None if neither."""
        for folder in (self.shipped, self.folder):
            if folder is not None:
                found = self._read(folder, name, about, cls, tensors)
                if found is not None:
                    return found
        return None

    def _read(self, folder: Path, name: str, about: dict, cls: type, tensors: bool = True):
        path = folder / f"{name}.json"
        if not path.is_file():
            return None
        try:
            d = json.loads(path.read_text())
            if not isinstance(d, dict) or d.get("schema") != SCHEMA:
                raise ResultError("not an entry of this version")
            if d.get("about") != about:
                raise ResultError("computed from something else")
            if d.get("sha256") != _sha(_canonical(d.get("result"))):
                raise ResultError("its result does not match its checksum")
            result = from_dict(cls, d["result"])
            if not (tensors and d.get("tensors")):
                return result, None
            data = (folder / f"{name}.safetensors").read_bytes()
            if _sha(data) != d["tensors"]["sha256"]:
                raise ResultError("its tensors do not match their checksum")
            from safetensors.torch import load

            return result, load(data)
        except (OSError, ValueError, KeyError, TypeError) as e:  # ResultError is a ValueError
            print(f"warning: ignoring {path.name} ({e}); computing it again", file=sys.stderr)
            return None

    def _write(self, name: str, about: dict, result: Result, tensors) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        entry = {"schema": SCHEMA, "about": about, "result": to_dict(result)}
        entry["sha256"] = _sha(_canonical(entry["result"]))
        if tensors is not None:
            from safetensors.torch import save

            data = save({k: v.detach().contiguous() for k, v in tensors.items()})
            _replace(self.folder / f"{name}.safetensors", data)
            entry["tensors"] = {"file": f"{name}.safetensors", "sha256": _sha(data)}
        _replace(self.folder / f"{name}.json", json.dumps(entry, indent=1).encode())


def _replace(path: Path, data: bytes) -> None:
    """Replace `path` at once, without fsync (seconds on a busy disk): an entry torn by a crash
    fails its checksum and is computed again."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
