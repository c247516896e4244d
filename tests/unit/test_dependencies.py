"""One source for each fact about dependencies: names in pyproject.toml, pins in requirements*.txt,
every installed package (transitive ones too) with hashes in requirements-lock.txt, and the packaged
model's pip requirements = pyproject's ``serve`` extra (covering its imports)."""

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


LOCK = REPO / "requirements-lock.txt"
# Installed beside the lock: the venv's own installer (`python -m venv` seeds it) and segflow itself.
NOT_LOCKED = {"pip", "segflow"}


def locked(path: Path = LOCK) -> dict[str, tuple[str, list[str]]]:
    """``{name: (version, [sha256 hashes])}`` of a ``uv pip compile --generate-hashes`` lock."""
    out: dict[str, tuple[str, list[str]]] = {}
    name = ""
    for line in path.read_text().splitlines():
        text = line.split("#")[0].strip().rstrip("\\").strip()
        if not text:
            continue
        if text.startswith("--hash=sha256:"):
            assert name, f"{path.name}: hash before any package: {line!r}"
            out[name][1].append(text.removeprefix("--hash=sha256:"))
            continue
        match = re.fullmatch(r"([a-z0-9][a-z0-9-]*)==(\S+)", text)
        assert match, f"{path.name}: {line!r} is not a normalised `name==version` entry"
        name = match[1]
        out[name] = (match[2], [])
    return out


def test_lock_pins_exactly_the_installed_packages() -> None:
    lock = {name: version for name, (version, _) in locked().items()}
    installed = {norm(d.metadata["Name"]): d.version for d in metadata.distributions()}
    installed = {name: version for name, version in installed.items() if name not in NOT_LOCKED}
    extra = {n: v for n, v in installed.items() if lock.get(n) != v}
    missing = {n: v for n, v in lock.items() if installed.get(n) != v}
    assert (extra, missing) == ({}, {}), (
        f"installed but not in {LOCK.name} at that version: {extra}; locked but not installed: {missing}."
        " `make venv` installs exactly the lock; `make lock` re-resolves it after a pin changes"
    )


def test_lock_holds_each_top_level_pin() -> None:
    lock = {name: version for name, (version, _) in locked().items()}
    top = pins(REPO / "requirements.txt") | pins(REPO / "requirements-dev.txt")
    stale = {n: v for n, v in top.items() if lock.get(re.sub(r"\[.*\]", "", n)) != v}
    assert stale == {}, f"pinned in requirements*.txt but not in {LOCK.name}: {stale}; run `make lock`"


def test_every_locked_package_has_a_hash() -> None:
    lock = locked()
    assert len(lock) > len(pins(REPO / "requirements-dev.txt")) + len(pins(REPO / "requirements.txt"))
    unhashed = [name for name, (_, hashes) in lock.items() if not hashes]
    assert unhashed == []
    assert all(re.fullmatch(r"[0-9a-f]{64}", h) for _, hashes in lock.values() for h in hashes)


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
