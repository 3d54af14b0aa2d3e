"""The package's shape as a maintainer relies on it: no import cycles (imports inside functions count), and the
statistics (engine, privacy, quality, audit) never import Dagster, so they run from a notebook or the CLI alone."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "twin_pipeline"
STATISTICS = ("twin_pipeline.engine", "twin_pipeline.privacy", "twin_pipeline.quality", "twin_pipeline.audit")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imported(name: str, path: Path) -> tuple[set[str], set[str]]:
    """The package modules `name` imports anywhere in its file, and the top-level names of outside packages."""
    inside, outside = set(), set()
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        for target in targets:
            if not target.startswith("twin_pipeline"):
                outside.add(target.split(".")[0])
                continue
            while target not in MODULES and "." in target:
                target = target.rsplit(".", 1)[0]
            if target != name:
                inside.add(target)
    return inside, outside


GRAPH = {name: imported(name, path) for name, path in MODULES.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_itself_back():
    assert cycles({name: inside for name, (inside, _) in GRAPH.items()}) == []


def test_no_two_packages_import_each_other():
    """engine -> quality -> engine and the like, counted between top-level packages and modules."""
    def top(name: str) -> str:
        return ".".join(name.split(".")[:2])

    packages: dict[str, set[str]] = {}
    for name, (inside, _) in GRAPH.items():
        packages.setdefault(top(name), set()).update(top(other) for other in inside if top(other) != top(name))
    assert cycles(packages) == []


@pytest.mark.parametrize("name", sorted(name for name in MODULES if name.startswith(STATISTICS)))
def test_statistics_modules_import_no_dagster(name):
    inside, outside = GRAPH[name]
    assert not {"dagster", "dagster_webserver"} & outside
    assert not any(other.startswith(("twin_pipeline.defs", "twin_pipeline.definitions")) for other in inside)


def test_the_checker_sees_a_cycle_when_there_is_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
