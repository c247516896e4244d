"""Layers read top-down and nothing imports in a circle (ARCHITECTURE.md, rules of the house).

io -> data -> validation/preprocessing -> models/losses/metrics -> training -> inference ->
evaluation -> ensembling -> tracking -> flows; a module may import its own layer and those below.
``components`` never imports prefect or flows (also a ruff rule: components/.ruff.toml).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from tests.unit.architecture.import_graph import REPO, _imported_names, find_cycle, import_graph

LAYERS: Sequence[Sequence[str]] = (
    # foundation: project-wide basics (name registry, artifact layout, errors, run logs), then the
    # params (params.yaml -> typed config, edits, key rules) and the workspace's safety (lock, guard)
    ("components", "components.core"),
    ("components.params", "components.workspace"),
    ("components.io", "components.viz"),
    ("components.data",),
    ("components.validation", "components.preprocessing"),
    (
        "components.models",
        "components.losses",
        "components.metrics",
        "components.postprocessing",
        "components.windowing",
    ),
    ("components.training",),
    ("components.planning",),  # measures candidate networks with training's own pieces
    ("components.inference",),
    ("components.evaluation",),
    ("components.ensembling",),
    ("components.tracking", "components.services"),
    ("flows",),
)


def unit_of(module: str, layers: Sequence[Sequence[str]] = LAYERS) -> str:
    """The longest layer entry that is ``module`` or a package above it (``components`` itself
    covers only its ``__init__``, so a new package must be given a layer)."""
    best = ""
    for units in layers:
        for unit in units:
            inside = module.startswith(unit + ".") and unit != "components"
            if (module == unit or inside) and len(unit) > len(best):
                best = unit
    if not best:
        raise KeyError(f"{module}: in no layer; add its package to LAYERS in {__file__}")
    return best


def layer_of(module: str, layers: Sequence[Sequence[str]] = LAYERS) -> int:
    """Index of the layer that holds ``module``."""
    unit = unit_of(module, layers)
    return next(i for i, units in enumerate(layers) if unit in units)


def upward_imports(graph: Mapping[str, set[str]], layers: Sequence[Sequence[str]] = LAYERS) -> list[str]:
    """``"a -> b"`` for every import of a module of a higher layer."""
    return sorted(
        f"{mod} (layer {layer_of(mod, layers)}) -> {dep} (layer {layer_of(dep, layers)})"
        for mod, deps in graph.items()
        for dep in deps
        if layer_of(dep, layers) > layer_of(mod, layers)
    )


def unit_graph(
    graph: Mapping[str, set[str]], layers: Sequence[Sequence[str]] = LAYERS
) -> dict[str, set[str]]:
    """The import graph between layer units (packages), without self-edges."""
    out: dict[str, set[str]] = {}
    for mod, deps in graph.items():
        src = unit_of(mod, layers)
        out.setdefault(src, set()).update(d for d in (unit_of(x, layers) for x in deps) if d != src)
    return out


GRAPH = import_graph(implicit_parents=False)


def test_every_module_has_a_layer() -> None:
    for mod in GRAPH:
        layer_of(mod)  # raises with the module named


def test_no_module_imports_a_higher_layer() -> None:
    assert upward_imports(GRAPH) == []


def test_no_import_cycles_between_modules_or_packages() -> None:
    assert find_cycle(GRAPH) is None
    assert find_cycle(unit_graph(GRAPH)) is None


def test_components_never_import_prefect_or_flows() -> None:
    offenders = []
    for path in sorted((REPO / "components").rglob("*.py")):
        mod = ".".join(path.relative_to(REPO).with_suffix("").parts)
        for name in _imported_names(__import__("ast").parse(path.read_text()), mod):
            if name.split(".")[0] in {"prefect", "flows"}:
                offenders.append(f"{path.relative_to(REPO)} imports {name}")
    assert offenders == []


def test_the_checks_catch_a_back_arrow_and_a_cycle() -> None:
    """The checkers themselves fail on a graph with a violation (so a passing run means something)."""
    graph = {
        "components.evaluation.cross_validation": {"components.ensembling.packaging"},  # back-arrow
        "components.ensembling.packaging": {"components.evaluation.scoring"},
        "components.evaluation.scoring": {"components.evaluation.cross_validation"},  # closes a cycle
    }
    assert upward_imports(graph) == [
        "components.evaluation.cross_validation (layer 9) -> components.ensembling.packaging (layer 10)"
    ]
    assert find_cycle(graph) is not None
    assert find_cycle(unit_graph(graph)) == [
        "components.ensembling",
        "components.evaluation",
        "components.ensembling",
    ]
    with pytest.raises(KeyError, match="in no layer"):
        layer_of("components.brand_new_package.x")
