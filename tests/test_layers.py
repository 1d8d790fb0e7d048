"""The layers of src/nclb: every module belongs to a declared layer and imports only its own
layer and those below it; the library never imports the CLI, and no two modules import each
other (directly or round a longer loop). Read from the source with ast, imports inside
functions included."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "nclb"
CLI_IMPORTERS = {"nclb.__main__", "nclb.cli"}
# The layers, bottom first: a module may import its own layer and the ones before it. Each
# entry names a module or a subpackage (all its modules); the longest entry that a module's
# name starts with decides its layer, and a module no entry names fails the test.
LAYERS = (
    (
        "shared types",
        (
            "nclb",
            "nclb.types",
            "nclb.errors",
            "nclb.locations",
            "nclb.plugins",
            "nclb.registry",
            "nclb.schema",
            "nclb.threads",
        ),
    ),
    ("models", ("nclb.models", "nclb.tiny")),
    ("sampler", ("nclb.sampler",)),
    ("config", ("nclb.config", "nclb.confighelp")),
    ("tasks", ("nclb.tasks",)),
    ("runs", ("nclb.runs", "nclb.preflight", "nclb.training")),
    ("experiments", ("nclb.experiments", "nclb.lmeval")),
    ("tables", ("nclb.tables", "nclb.show", "nclb.results")),
    ("commands", ("nclb.cli", "nclb.__main__", "nclb.lmeval.__main__", "nclb.hydra_flags")),
)


def layer_of(module: str, layers=LAYERS) -> int | None:
    """The index in `layers` of the module's layer (None when no entry names it)."""
    best = None
    for index, (_, entries) in enumerate(layers):
        for entry in entries:
            named = module == entry or (entry != "nclb" and module.startswith(entry + "."))
            if named and (best is None or len(entry) > len(best[1])):
                best = (index, entry)
    return None if best is None else best[0]


def upward_imports(graph: dict[str, set[str]], layers=LAYERS) -> list[str]:
    """'a (layer) -> b (layer)' for every import of a module from a layer above its own."""
    names = [name for name, _ in layers]
    found = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            low, high = layer_of(module, layers), layer_of(target, layers)
            if low is not None and high is not None and high > low:
                found.append(f"{module} ({names[low]}) -> {target} ({names[high]})")
    return found


def module_files(package: Path = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the nclb package."""
    modules = {}
    for file in package.rglob("*.py"):
        parts = list(file.relative_to(package.parent).with_suffix("").parts)
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


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Each nclb module -> the nclb modules it imports."""
    modules = module_files(package)
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


def test_every_module_has_a_declared_layer():
    unmapped = sorted(m for m in module_files() if layer_of(m) is None)
    assert not unmapped, f"modules in no layer of LAYERS: {unmapped}"


def test_no_import_points_up_the_layers():
    upward = upward_imports(import_graph())
    assert not upward, "imports that point up the layers: " + "; ".join(upward)


def test_the_layer_check_flags_an_upward_import(tmp_path):
    package = tmp_path / "nclb"
    (package / "models").mkdir(parents=True)
    (package / "tasks").mkdir()
    for init in (package, package / "models", package / "tasks"):
        (init / "__init__.py").write_text("")
    (package / "tasks" / "base.py").write_text("from nclb.models import fake\n")
    (package / "models" / "fake.py").write_text(
        "def build():\n    from ..tasks.base import Task\n    return Task\n"
    )
    graph = import_graph(package)
    assert upward_imports(graph) == ["nclb.models.fake (models) -> nclb.tasks.base (tasks)"]
    assert layer_of("nclb.lmeval.__main__") == layer_of("nclb.cli")
    assert layer_of("nclb.lmeval.adapter") == layer_of("nclb.experiments.bench")
    assert layer_of("nclb.newmodule") is None
