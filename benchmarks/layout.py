"""The layout in numbers: modules in the largest folder, the largest file, import circles, and how
often one checkpoint's journey from a path to a model ready for analysis changes module.

    python benchmarks/layout.py [REPO]

REPO defaults to this checkout; give another checkout (an older commit) to measure it the same way.
The journey is traced with sys.setprofile while loading a checkpoint as `analysis.compare.compute`
does (the bundled digits model, on its data, through analysis.reports.load_model): every call that
enters a project module other than the caller's, and the bounces among them (calls back into a
module still on the stack beneath another). It is run once untraced first, so lazy imports are not
counted.
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
from collections import Counter
from itertools import pairwise
from pathlib import Path

# the import graph as the tests read it (tests/importgraph.py), of the checkout measured
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from importgraph import PACKAGES, circles, import_graph


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def folders(root: Path) -> dict[str, int]:
    return {
        str(d.relative_to(root)): sum(
            1 for p in d.glob("*.py") if p.name not in ("__init__.py", "__main__.py")
        )
        for pkg in PACKAGES
        for d in [root / pkg, *(p for p in (root / pkg).rglob("*") if p.is_dir())]
        if any(d.glob("*.py"))
    }


def journey(root: Path, foreign: bool) -> tuple[list[str], int, Counter, list[str]]:
    """(the bounces, the deepest nesting of modules, entries per module, the path) of loading one
    checkpoint as analysis.compare.compute does: the bundled digits model, or (foreign) its weights
    saved as a Lightning-style {'state_dict': {'model.…': …}} with torch.save, given with --arch
    cnn-small. A bounce is a call back into a module that is still on the call stack beneath
    another one: the journey going back and forth between modules."""
    import tempfile

    import torch
    from safetensors.torch import load_file

    compare = importlib.import_module("analysis.compare")
    reports = importlib.import_module("analysis.reports")
    ckpt = root / "assets" / "digits-cnn-small-sgd.safetensors"
    dataset = compare.data_for(ckpt, None)  # the data's own journey is not counted
    source = None
    if foreign:
        where = "pof.models.formats" if (root / "pof" / "models").is_dir() else "pof.loading"
        source = importlib.import_module(where).ModelSource("cnn-small")
        state = {f"model.{k}": v for k, v in load_file(str(ckpt)).items()}
        ckpt = Path(tempfile.mkdtemp()) / "lightning.ckpt"
        torch.save({"state_dict": state, "epoch": 3}, ckpt)
    load = lambda: reports.load_model(ckpt, dataset, source)
    load()
    prefix = str(root / "pof")
    path: list[str] = []
    bounces: list[str] = []
    depth = [0]  # the most module changes on the call stack at once

    def profile(frame, event, _arg):
        # a call into project code, seen from the nearest project frame beneath it (library code in
        # between, torch's or the standard library's, is looked through); generator expressions
        # resumed by a library are not calls of the journey
        if event != "call" or frame.f_code.co_name.startswith("<"):
            return
        callee = frame.f_code.co_filename
        if not callee.startswith(prefix):
            return
        below = []
        f = frame.f_back
        while f is not None:
            if f.f_code.co_filename.startswith(prefix):
                below.append(f.f_code.co_filename)
            f = f.f_back
        if below and below[0] != callee:
            step = f"{module_name(root, Path(callee))}.{frame.f_code.co_name}"
            path.append(step)
            if callee in below[1:]:  # back into a module still waiting for this call
                bounces.append(step)
            chain = [callee, *below]  # the modules on the stack, innermost first
            depth[0] = max(depth[0], 1 + sum(a != b for a, b in pairwise(chain)))

    sys.setprofile(profile)
    try:
        load()
    finally:
        sys.setprofile(None)
    return bounces, depth[0], Counter(step.rpartition(".")[0] for step in path), path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "repo", nargs="?", default=Path(__file__).resolve().parents[1], help="a checkout to measure"
    )
    root = Path(parser.parse_args().repo).resolve()
    sizes = folders(root)
    largest_folder = max(sizes, key=sizes.get)
    lines = {
        str(p.relative_to(root)): len(p.read_text().splitlines())
        for pkg in PACKAGES
        for p in (root / pkg).rglob("*.py")
    }
    largest_file = max(lines, key=lines.get)
    sys.path.insert(0, str(root))
    found = circles(import_graph())
    journeys = {kind: journey(root, kind == "foreign") for kind in ("project", "foreign")}
    commit = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    print(f"checkout {root} ({commit})")
    print(f"largest folder      {largest_folder}: {sizes[largest_folder]} modules")
    print(f"largest file        {largest_file}: {lines[largest_file]} lines")
    print(f"import circles      {len(found)}" + "".join(f"\n  {' <-> '.join(c)}" for c in found))
    for kind, (bounces, depth, entries, path) in journeys.items():
        print(
            f"{kind} checkpoint's journey: {len(path)} calls into another module, "
            f"{len(entries)} modules, nested {depth} modules deep at most, {len(bounces)} bounces "
            "back into a module still waiting below"
            + (f" ({', '.join(bounces)})" if bounces else "")
        )
        for module, n in entries.most_common():
            print(f"  {n:3d}  {module}")
        print("  the calls, in order: " + " -> ".join(path))


if __name__ == "__main__":
    main()
