"""One source for each fact about dependencies: names in pyproject.toml, pins in requirements*.txt,
and the packaged model's pip requirements = pyproject's ``serve`` extra (covering its imports)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from components.ensembling.packaging import serving_requirements
from tests.unit.architecture.import_graph import REPO, closure, import_graph, module_files

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def norm(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    """``{name: version}`` of a requirements file's ``name==version`` lines (``-r`` not followed)."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            name, _, version = line.partition("==")
            assert version, f"{path.name}: {line!r} is not pinned with =="
            out[norm(name)] = version
    return out


def test_pyproject_names_are_exactly_the_pinned_lock() -> None:
    assert sorted(norm(d) for d in PYPROJECT["dependencies"]) == sorted(pins(REPO / "requirements.txt"))
    dev = PYPROJECT["optional-dependencies"]["dev"]
    assert sorted(norm(d) for d in dev) == sorted(pins(REPO / "requirements-dev.txt"))


def test_serve_extra_is_part_of_the_runtime_dependencies() -> None:
    runtime = {norm(d) for d in PYPROJECT["dependencies"]}
    assert {norm(d) for d in PYPROJECT["optional-dependencies"]["serve"]} <= runtime


def test_packaged_model_requirements_are_the_serve_extra_at_the_locked_versions() -> None:
    locked = pins(REPO / "requirements.txt")
    reqs = dict(r.split("==") for r in serving_requirements())
    assert {norm(n) for n in reqs} == {norm(d) for d in PYPROJECT["optional-dependencies"]["serve"]}
    assert all(locked[norm(n)] == v for n, v in reqs.items())


def third_party_imports(start: str) -> set[str]:
    """Top-level non-project, non-stdlib modules imported by ``start``'s code (transitively)."""
    files = module_files()
    found: set[str] = set()
    for mod in closure(import_graph(), start):
        for node in ast.walk(ast.parse(files[mod].read_text())):
            if isinstance(node, ast.Import):
                found.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m not in {"components", "flows"}}


def test_serve_extra_covers_every_import_of_the_packaged_model() -> None:
    dists = metadata.packages_distributions()
    serve = {norm(d) for d in PYPROJECT["optional-dependencies"]["serve"]}
    needed = {
        m: {norm(d) for d in dists.get(m, [])}
        for m in third_party_imports("components.ensembling.mlflow_model")
    }
    missing = {m: d for m, d in needed.items() if not d & serve}
    assert missing == {}, f"imported by the packaged model's code but not in the serve extra: {missing}"
