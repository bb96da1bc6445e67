"""The layout in numbers: modules in the largest folder, the largest file, import circles, and how
often one checkpoint's journey from a path to a model ready for analysis changes module.

    python benchmarks/layout.py [REPO]

REPO defaults to this checkout; give another checkout (an older commit) to measure it the same way.
"Module changes" are traced with sys.setprofile while `analysis.compare.compute` loads its
checkpoint
(the bundled digits model, on its data, as analysis.reports.load_model does): each call that enters
a project module other than the caller's counts once; the journey is run once untraced first, so
lazy imports are not counted.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from collections import Counter
from pathlib import Path

PACKAGES = ("pof", "analysis", "app")


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Every import between the project's modules, at any depth of a file (lazy ones too)."""
    files = {module_name(root, p): p for pkg in PACKAGES for p in (root / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            else:
                continue
            # `from pkg import module` names the module; `from module import name` the module
            hit = next((t for t in targets if t in files and t != name), None)
            if hit:
                graph[name].add(hit)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def folders(root: Path) -> dict[str, int]:
    return {
        str(d.relative_to(root)): sum(1 for p in d.glob("*.py") if p.name != "__init__.py")
        for pkg in PACKAGES
        for d in [root / pkg, *(p for p in (root / pkg).rglob("*") if p.is_dir())]
        if any(d.glob("*.py"))
    }


def journey(root: Path) -> tuple[int, Counter, list[str]]:
    """(module changes, entries per module, the path) of loading one checkpoint as
    analysis.compare.compute does."""
    sys.path.insert(0, str(root))
    compare = importlib.import_module("analysis.compare")
    reports = importlib.import_module("analysis.reports")
    ckpt = root / "assets" / "digits-cnn-small-sgd.safetensors"

    dataset = compare.data_for(ckpt, None)  # the data's own journey is not counted
    load = lambda: reports.load_model(ckpt, dataset, None)
    load()
    prefix = str(root / "pof")
    path: list[str] = []

    def profile(frame, event, _arg):
        if event != "call":
            return
        callee = frame.f_code.co_filename
        caller = frame.f_back.f_code.co_filename if frame.f_back else ""
        if callee.startswith(prefix) and callee != caller:
            path.append(f"{module_name(root, Path(callee))}.{frame.f_code.co_name}")

    sys.setprofile(profile)
    try:
        load()
    finally:
        sys.setprofile(None)
    return len(path), Counter(step.rpartition(".")[0] for step in path), path


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]).resolve()
    sizes = folders(root)
    largest_folder = max(sizes, key=sizes.get)
    lines = {
        str(p.relative_to(root)): len(p.read_text().splitlines())
        for pkg in PACKAGES
        for p in (root / pkg).rglob("*.py")
    }
    largest_file = max(lines, key=lines.get)
    found = circles(import_graph(root))
    changes, entries, path = journey(root)
    commit = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    print(f"checkout {root} ({commit})")
    print(f"largest folder      {largest_folder}: {sizes[largest_folder]} modules")
    print(f"largest file        {largest_file}: {lines[largest_file]} lines")
    print(f"import circles      {len(found)}" + "".join(f"\n  {' <-> '.join(c)}" for c in found))
    print(f"checkpoint journey  {changes} module changes, {len(entries)} modules:")
    for module, n in entries.most_common():
        print(f"  {n:3d}  {module}")
    print("  the calls, in order: " + " -> ".join(path))


if __name__ == "__main__":
    main()
