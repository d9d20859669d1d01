"""The layer table of docs/ARCHITECTURE.md, held against every import in the package.

A module may import from its own layer or below, never above; the library never imports click or rich.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "dockyard"

LAYERS: dict[str, int] = {
    "oci": 0, "errors": 0, "progress": 0, "__init__": 0, "goformat": 0, "gotemplate": 0, "fs": 0,
    "userns": 0, "interruptible": 0, "record": 0, "fsflags": 0, "fdio": 0,
    "image": 1, "archive": 1, "dockerfile": 1,
    "content": 2, "snapshot": 2, "metadata": 2,
    "imageops": 3, "registry": 3, "executor": 3,
    "builder": 4, "containers": 4,
    "client": 5, "config": 5, "tools": 5, "testkit": 5, "supplychain": 5,
    "cli": 6, "__main__": 6,
}
UI_ONLY = {"click", "rich"}
# The package root re-exports the composition root lazily (``dockyard.Client``): the one upward import.
ALLOWED = {("__init__", "client")}


def _top(module_path: Path) -> str:
    rel = module_path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def _imports(tree: ast.AST) -> list[tuple[str, int]]:
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno))
            if node.module == "dockyard":
                found.extend((f"dockyard.{alias.name}", node.lineno) for alias in node.names)
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_top_level_module_has_a_layer() -> None:
    tops = {_top(p) for p in MODULES}
    assert tops <= set(LAYERS), f"add these to the layer table: {sorted(tops - set(LAYERS))}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path: Path) -> None:
    own = _top(path)
    own_layer = LAYERS[own]
    for name, line in _imports(ast.parse(path.read_text(), str(path))):
        root = name.split(".")[0]
        if root in UI_ONLY:
            assert own_layer == 6, f"{path.name}:{line}: the library must not import {root}"
        if root != "dockyard" or name == "dockyard":
            continue
        target = name.split(".")[1]
        if target == "__version__":
            continue
        assert target in LAYERS, f"{path.name}:{line}: unknown module dockyard.{target}"
        if path.parent == PACKAGE and (own, target) in ALLOWED:
            continue
        assert LAYERS[target] <= own_layer, (
            f"{path.relative_to(PACKAGE)}:{line}: {own} (L{own_layer}) imports {name} (L{LAYERS[target]})"
        )


def test_value_classes_are_records_not_dataclasses() -> None:
    """``dataclasses`` costs ~70M instructions to import and ~4M per class: the package makes its
    value classes with ``dockyard.record`` (docs/ARCHITECTURE.md, "making a value class")."""
    offenders = [f"{path.relative_to(PACKAGE)}:{line}" for path in MODULES
                 for name, line in _imports(ast.parse(path.read_text(), str(path))) if name == "dataclasses"]
    assert not offenders, f"use dockyard.record: {offenders}"
