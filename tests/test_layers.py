"""The package's layers, bottom to top, and the rule that imports only flow downward:

    core/  ←  variants/  ←  api.py  ←  analysis/  ←  experiments/  ←  the package's front (__init__, hf, __main__)

A module may import from its own layer or any layer below it, never from a layer above; within the
package there is no import circle. Both are read from the source (every import statement, also those
inside functions), so a lazy import cannot hide an arrow that runs back up.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "approxlab"
LAYERS = ("core", "variants", "api", "analysis", "experiments")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) < 2:
        return len(LAYERS)  # the package's front
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else len(LAYERS)


def _imports(path: Path) -> set:
    """Every approxlab module a file imports (absolute names), at any depth of the file."""
    name = _module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            if target.split(".")[0] != "approxlab":
                continue
            for alias in node.names:  # `from . import budget` names a module
                candidate = f"{target}.{alias.name}"
                found.add(candidate if _exists(candidate) else target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "approxlab")
    return found


def _exists(module: str) -> bool:
    path = PACKAGE.parent.joinpath(*module.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


MODULES = {_module_name(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_flow_downward(module):
    upward = sorted(t for t in MODULES[module] if _layer(t) > _layer(module))
    assert not upward, f"{module} (layer {_layer(module)}) imports from a layer above it: {upward}"


def test_no_import_circle():
    graph = {m: {t for t in targets if t in MODULES and t != m} for m, targets in MODULES.items()}
    # a package's __init__ importing its own submodules is how a package is built, not a circle
    for m in graph:
        graph[m] = {t for t in graph[m] if not t.startswith(m + ".")}
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycle = stack[stack.index(nxt):] + [nxt]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_the_layers_are_the_folders():
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and not p.name.startswith("_")} == {
        "core", "variants", "analysis", "experiments"}
