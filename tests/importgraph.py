"""The project's import graph, read from the installed packages' source (ast, nothing imported):
every import between its modules, at any depth of a file, lazy imports inside functions included,
since a lazy import is a dependency all the same. Used by tests/test_layout.py and by
benchmarks/layout.py.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

PACKAGES = ("pof", "analysis", "app")


def package_dir(package: str) -> Path:
    """Where the installed package lives (its import machinery says, not the current folder)."""
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations, f"{package} is not installed"
    return Path(next(iter(spec.submodule_search_locations)))


def modules(packages=PACKAGES) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the packages."""
    found = {}
    for package in packages:
        root = package_dir(package)
        for path in root.rglob("*.py"):
            parts = [package, *path.relative_to(root).with_suffix("").parts]
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported_names(path: Path, name: str) -> list[tuple[str, int]]:
    """(absolute name, line) of everything the file imports: modules, and `module.NAME` for the
    names taken from them (the caller decides which of those are modules)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            found.append((base, node.lineno))
            found += [(f"{base}.{a.name}", node.lineno) for a in node.names]
    return found


def import_graph(packages=PACKAGES) -> dict[str, set[str]]:
    """Module -> the project modules it imports. `from pkg import module` names the module and the
    package too: importing from a package runs its __init__."""
    files = modules(packages)
    graph: dict[str, set[str]] = {m: set() for m in files}
    for name, path in files.items():
        for target, _ in imported_names(path, name):
            if target in files and target != name:
                graph[name].add(target)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: strongly connected components of more than one module (Tarjan's
    algorithm, iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
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
    return sorted(found)
