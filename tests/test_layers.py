"""The package's layers: every import in src/cityseg points down the pipeline, lazy imports included,
and no two modules import each other (directly or round a ring)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
LAYERS = ("errors", "labels", "label_maps", "fileio", "config", "preprocess", "fusion", "bundle", "data",
          "synthetic", "models", "training", "tensorrt", "inference", "export", "acquisition", "evaluation",
          "ros", "fleet", "benchmarking", "demo", "cli", "__main__")
"""Top-level modules and packages of cityseg, lowest first (the order of the package docstring)."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every cityseg module ``path`` imports, at module level or inside a function."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {m for m in found if m == "cityseg" or m.startswith("cityseg.")}


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in (SRC / "cityseg").rglob("*.py")}
    return {name: {m for m in imported_modules(path) if m in files and m != name} for name, path in files.items()}


def layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    return LAYERS.index(top) if top in LAYERS else -1


def test_every_top_level_module_has_a_layer():
    tops = {p.stem for p in (SRC / "cityseg").iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    assert tops - {"__init__"} <= set(LAYERS), f"add {sorted(tops - {'__init__'} - set(LAYERS))} to LAYERS"


DECLARED_UPWARD = {("cityseg.inference.backends.tensorrt", "cityseg.export.tensorrt_build")}
"""The one lazy upward import, also the one ignore of .importlinter: an engine built for another GPU
is rebuilt by the converter, imported only then (running engines never loads it)."""


def test_imports_only_point_down():
    upward = sorted(f"{source} imports {target}" for source, targets in import_graph().items() for target in targets
                    if layer(target) > layer(source) and (source, target) not in DECLARED_UPWARD)
    assert upward == []


def test_no_import_rings():
    graph = import_graph()
    rings, state = [], {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                rings.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert [r for r in rings if not is_package_reexport(r)] == []


def is_package_reexport(ring: str) -> bool:
    """``pkg -> pkg.mod -> pkg``: a module importing its own package's __init__ (which imports it)."""
    modules = ring.split(" -> ")
    return len(modules) == 3 and modules[0] == modules[2] and modules[1].startswith(modules[0] + ".")


ROS_GROUPS = ("core", "bag", "live")
"""Groups of cityseg.ros, lowest first: the ROS-free per-frame core, the offline replay, the live node."""


def test_ros_groups_only_point_down():
    def group(module: str) -> int:
        parts = module.split(".")
        return ROS_GROUPS.index(parts[2]) if len(parts) > 2 and parts[1] == "ros" and parts[2] in ROS_GROUPS else -1

    upward = sorted(f"{source} imports {target}" for source, targets in import_graph().items() for target in targets
                    if group(source) >= 0 and group(target) > group(source))
    assert upward == []
