"""Imports run one way across the whole package, function-level imports included (docs/design.md).

Every import statement anywhere in a module counts, inside functions and methods too: a lazy
import is still a dependency, and most of the package's own imports are lazy. Only imports under
``if TYPE_CHECKING:`` are left out: they never run, they name types for annotations.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fetal_bench"


def _module_names(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file below ``root`` (a package directory)."""
    names = {}
    for path in root.rglob("*.py"):
        parts = list(path.with_suffix("").relative_to(root.parent).parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _typing_only(tree: ast.AST) -> set[int]:
    """ids of the nodes under ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``)."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else None
            if name == "TYPE_CHECKING":
                skipped |= {id(child) for statement in node.body for child in ast.walk(statement)}
    return skipped


def _imported(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """The dotted names an import statement asks for (``from a import b`` asks for ``a.b``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:  # relative: resolved against this module's package
        package = module if is_package else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}" if base else package
    return [f"{base}.{alias.name}" for alias in node.names] + [base]


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (a name imported from a package counts as its
    submodule when there is one, else as the package)."""
    modules = _module_names(root)
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = _typing_only(tree)
        edges = set()
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            asked = _imported(node, module, path.name == "__init__.py")
            found = asked
            if isinstance(node, ast.ImportFrom):  # `from a import b`: a.b if it is a module, else a
                found = [name for name in asked[:-1] if name in modules] or asked[-1:]
            for name in found:
                while name and name not in modules:  # `import a.b.c` of a non-module: its module
                    name = name.rpartition(".")[0]
                if name and name != module:
                    edges.add(name)
        graph[module] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (``[a, b, ..., a]``), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for following in sorted(graph.get(node, ())):
            if state.get(following) == 1:
                return path[path.index(following):] + [following]
            if following not in state and (cycle := visit(following)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


# What a package's modules may never import (docs/design.md: cli -> (protocols, generators,
# training, leaderboard) -> evaluation -> tasks -> (models, data) -> metrics -> basics).
FORBIDDEN = {
    "metrics": {"data", "models", "tasks", "evaluation", "training", "generators", "protocols", "leaderboard", "cli"},
    "data": {"models", "tasks", "evaluation", "training", "generators", "protocols", "leaderboard", "cli"},
    "models": {"tasks", "evaluation", "training", "generators", "protocols", "leaderboard", "cli"},
    "tasks": {"evaluation", "training", "generators", "protocols", "leaderboard", "cli"},
    "evaluation": {"training", "generators", "protocols", "cli"},
    "training": {"generators", "protocols", "cli"},
    "generators": {"protocols", "cli"},
}


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 120
    # The graph holds the lazy imports: Task.kind looks its kind up inside a method.
    assert "fetal_bench.tasks.kinds" in graph["fetal_bench.tasks.base"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_layers_import_only_downwards():
    wrong = sorted(f"{module} -> {imported}" for module, imported_modules in import_graph().items()
                   for imported in imported_modules if _layer(imported) in FORBIDDEN.get(_layer(module), ()))
    assert wrong == []


def test_the_check_finds_a_cycle_planted_inside_a_function(tmp_path):
    """A copy of the package with one lazy import added, closing metrics -> tasks -> metrics."""
    copy = tmp_path / "fetal_bench"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    assert find_cycle(import_graph(copy)) is None
    registry = copy / "metrics" / "registry.py"
    planted = "\n\ndef _planted():\n    from fetal_bench.tasks.base import Task\n\n    return Task\n"
    registry.write_text(registry.read_text(encoding="utf-8") + planted, encoding="utf-8")
    cycle = find_cycle(import_graph(copy))
    assert cycle is not None and {"fetal_bench.metrics.registry", "fetal_bench.tasks.base"} <= set(cycle)
    assert cycle[0] == cycle[-1]


def test_typing_only_imports_are_not_dependencies(tmp_path):
    copy = tmp_path / "fetal_bench"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    registry = copy / "metrics" / "registry.py"
    typing_only = "\nfrom typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from fetal_bench.tasks.base import Task\n"
    registry.write_text(registry.read_text(encoding="utf-8") + typing_only, encoding="utf-8")
    assert "fetal_bench.tasks.base" not in import_graph(copy)["fetal_bench.metrics.registry"]
    assert find_cycle(import_graph(copy)) is None


@pytest.mark.parametrize("graph, cycle", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
    ({"a": {"a2"}, "a2": {"b"}, "b": {"a2"}}, ["a2", "b", "a2"]),
])
def test_find_cycle(graph, cycle):
    assert find_cycle(graph) == cycle
