"""The static import graph of ``components/`` and ``flows/``, for the architecture tests.

Every ``import``/``from ... import`` counts, including those inside functions (lazy imports run
too), except those under ``if TYPE_CHECKING:`` (never executed). Importing ``a.b.c`` also imports
the packages ``a`` and ``a.b`` (their ``__init__`` modules run first).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
ROOTS = ("components", "flows")


def module_files(repo: Path = REPO) -> dict[str, Path]:
    """``{"components.io.images": Path(...), "components.io": .../__init__.py, ...}``."""
    out: dict[str, Path] = {}
    for root in ROOTS:
        for path in sorted((repo / root).rglob("*.py")):
            parts = list(path.relative_to(repo).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def _imported_names(tree: ast.AST, current: str) -> set[str]:
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                pkg = current.split(".")[: -node.level] if node.level else []
                base = ".".join([*pkg, base] if base else pkg)
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def import_graph(repo: Path = REPO, implicit_parents: bool = True) -> dict[str, set[str]]:
    """``{module: {project modules it imports directly}}``.

    Args:
        repo: Project root.
        implicit_parents: Also count the parent packages of each imported module (they run
            first). Right for "what code runs"; leave out for cycles, where a submodule's own
            package is not a back-edge.
    """
    files = module_files(repo)
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        deps: set[str] = set()
        for imported in _imported_names(ast.parse(path.read_text(), str(path)), name):
            candidates = _with_parents(imported) if implicit_parents else [imported]
            deps.update(p for p in candidates if p in files)
        deps.discard(name)
        graph[name] = deps
    return graph


def closure(graph: Mapping[str, Iterable[str]], start: str) -> set[str]:
    """``start`` and every module it imports, transitively (its parent packages included)."""
    seen: set[str] = set()
    todo = [p for p in _with_parents(start) if p in graph]
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        todo.extend(graph.get(mod, ()))
    return seen


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or None when it is acyclic."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := dfs(nxt)) is not None:
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := dfs(node)) is not None:
            return found
    return None
