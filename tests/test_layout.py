"""The layout keeps the architecture: no import circles, imports pointing one way (app ->
analysis -> pof), Streamlit and Plotly only in the app, the method free of the machinery around
it, and folders small enough to read their listing as a diagram. Read from the installed packages'
source."""

from importgraph import PACKAGES, circles, import_graph, imported_names, modules, package_dir

GRAPH = import_graph()


def test_no_module_imports_itself_round_a_circle():
    assert circles(GRAPH) == []


def test_the_circle_finder_finds_a_circle_and_a_self_contained_one():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"f"}, "f": {"e"}}
    assert circles(graph) == [["a", "b", "c"], ["e", "f"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def _edges(source_prefix: str, target_prefix: str) -> list[str]:
    return sorted(
        f"{m} -> {t}"
        for m, targets in GRAPH.items()
        if m == source_prefix or m.startswith(source_prefix + ".")
        for t in targets
        if t == target_prefix or t.startswith(target_prefix + ".")
    )


def test_imports_point_one_way_app_analysis_pof():
    assert _edges("pof", "analysis") == []
    assert _edges("pof", "app") == []
    assert _edges("analysis", "app") == []


def test_the_method_imports_nothing_of_runs_training_or_the_command_line():
    for other in ("pof.runs", "pof.training", "pof.cli"):
        assert _edges("pof.method", other) == []


def test_streamlit_and_plotly_are_imported_only_by_the_app():
    found = [
        f"{name}:{line} imports {target}"
        for name, path in modules(("pof", "analysis")).items()
        for target, line in imported_names(path, name)
        if target.split(".")[0] in ("streamlit", "plotly")
    ]
    assert found == []


def test_no_folder_holds_more_than_a_dozen_modules():
    for package in PACKAGES:
        root = package_dir(package)
        for folder in [root, *(d for d in root.rglob("*") if d.is_dir())]:
            count = sum(
                1 for p in folder.glob("*.py") if p.name not in ("__init__.py", "__main__.py")
            )
            assert count <= 12, f"{folder} holds {count} modules: group them into subpackages"
