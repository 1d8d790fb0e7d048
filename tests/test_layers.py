"""The layers of src/nclb: the library never imports the CLI, and no two modules import each
other (directly or round a longer loop). Read from the source with ast, imports inside
functions included."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "nclb"
CLI_IMPORTERS = {"nclb.__main__", "nclb.cli"}


def module_files() -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the nclb package."""
    modules = {}
    for file in PACKAGE.rglob("*.py"):
        parts = list(file.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = file
    return modules


def imported_names(module: str, file: Path, node: ast.AST) -> list[str]:
    """The dotted names one import statement may load (from-imports: the module and each
    name as a possible submodule); relative imports resolved against `module`."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module.split(".") if file.name == "__init__.py" else module.split(".")[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join([*package, base] if base else package)
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def import_graph() -> dict[str, set[str]]:
    """Each nclb module -> the nclb modules it imports."""
    modules = module_files()
    graph = {}
    for module, file in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(file.read_text(), str(file))):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for name in imported_names(module, file, node):
                if name in modules and name != module:
                    targets.add(name)
        graph[module] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_imports_inside_functions_and_relative_imports():
    graph = import_graph()
    assert "nclb.config.compose" in graph["nclb.cli"]
    assert "nclb.tables.make" in graph["nclb.cli"]  # imported inside table_command
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_only_the_command_line_imports_the_cli():
    importers = sorted(m for m, targets in import_graph().items() if "nclb.cli" in targets)
    assert set(importers) <= CLI_IMPORTERS, f"library modules import nclb.cli: {importers}"


def test_no_import_cycle_between_nclb_modules():
    found = cycles(import_graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_the_run_path_never_imports_the_commands_built_on_it():
    run_path = ("models", "sampler", "tasks", "training", "runs")
    above = ("experiments", "lmeval", "show", "tables", "cli")
    upward = sorted(
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        if module.split(".")[1:2] and module.split(".")[1] in run_path
        for target in targets
        if target.split(".")[1] in above
    )
    assert not upward, "the run path imports the layers above it: " + "; ".join(upward)
