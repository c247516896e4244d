"""Each room holds one kind of thing (ARCHITECTURE.md, repository layout).

``flows/`` top level: the stage flows (one per DVC stage), the pipeline flow, the CLI and its
package face; the machinery that runs stages and folds lives in ``flows/runtime/``. ``components/``
root holds packages only (its ``__init__`` is the package face), grouped by concern.
"""

from __future__ import annotations

from tests.unit.architecture.import_graph import REPO
from tests.unit.architecture.test_dvc_contract import STAGES

FLOWS_TOP = {f"{s}.py" for s in STAGES} | {"__init__.py", "pipeline.py", "plan.py", "cli.py"}


def loose_modules() -> list[str]:
    """Python files at ``flows/`` top level that are not a stage, the pipeline or the CLI, and
    files at ``components/`` root other than the package face."""
    flows = sorted(p.name for p in (REPO / "flows").glob("*.py") if p.name not in FLOWS_TOP)
    components = sorted(p.name for p in (REPO / "components").glob("*.py") if p.name != "__init__.py")
    return [f"flows/{n}" for n in flows] + [f"components/{n}" for n in components]


def test_flows_top_level_holds_stages_pipeline_and_cli_only() -> None:
    assert loose_modules() == []


def test_runtime_machinery_has_its_own_package() -> None:
    runtime = {p.name for p in (REPO / "flows" / "runtime").glob("*.py")}
    assert {"stage.py", "warm.py", "warm_resident.py", "fold_executor.py", "ddp_fold.py"} <= runtime


def test_components_root_packages_are_named_by_concern() -> None:
    for package in ("core", "params", "workspace"):
        assert (REPO / "components" / package / "__init__.py").is_file(), package
