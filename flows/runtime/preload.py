"""What a warm stage server imports ahead: each stage module and the imports it defers to its functions.

The stage modules import torch, MLflow, pandas and the heavy components inside the functions that
use them, so that a cold ``python -m flows.<stage>`` (or ``import flows.<stage>``) starts fast. A
warm server (:mod:`flows.runtime.warm`) exists to have paid those imports before a stage starts,
so it imports them too: every ``import`` inside a function or method of the stage module (read
from its source; those under ``if TYPE_CHECKING:`` never run and are left out). Nothing to keep
in step by hand: a deferred import added to a stage is preloaded from then on. Stdlib only.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util


def deferred_imports(module: str) -> list[str]:
    """The modules ``module`` imports inside its functions, in source order (no duplicates)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return []
    with open(spec.origin, encoding="utf-8") as fh:
        tree = ast.parse(fh.read(), spec.origin)
    found: list[str] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for branch in node.orelse:
                visit(branch, in_function)
            return
        if in_function and isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif in_function and isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append(node.module)
        inside = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for child in ast.iter_child_nodes(node):
            visit(child, inside)

    visit(tree, False)
    return list(dict.fromkeys(found))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def preload(modules: tuple[str, ...]) -> None:
    """Import ``modules`` and what each defers to its functions (:func:`deferred_imports`)."""
    for module in modules:
        importlib.import_module(module)
        for name in deferred_imports(module):
            importlib.import_module(name)
