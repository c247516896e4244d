"""Stage modules start fast: ``import flows.<stage>`` leaves torch, MLflow, GX and the other heavy
libraries to the functions that use them (bench/stage_import.py times it); a warm stage server
imports those ahead (flows/runtime/preload.py), from the stage's own source."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flows.runtime.preload import deferred_imports
from flows.runtime.warm import STAGE_MODULES

REPO = Path(__file__).resolve().parents[3]
# Each costs 0.3-2.3 s to import on a 2-core machine (STACK_NOTES.md); together they made
# train/evaluate/ensemble take 6-8 s before their first line ran.
HEAVY = (
    "torch",
    "mlflow",
    "great_expectations",
    "monai",
    "segmentation_models_pytorch",
    "albumentations",
    "matplotlib",
    "dask",
    "distributed",
)


def _loaded_after(code: str) -> list[str]:
    """The :data:`HEAVY` libraries a fresh interpreter holds after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    return list(json.loads(out.splitlines()[-1]))


@pytest.mark.parametrize("module", STAGE_MODULES)
def test_importing_a_stage_imports_no_heavy_library(module: str) -> None:
    assert _loaded_after(f"import {module}") == []


def test_a_warm_server_preloads_what_the_stages_defer() -> None:
    loaded = _loaded_after(f"from flows.runtime.preload import preload; preload({STAGE_MODULES!r})")
    assert {"torch", "mlflow", "segmentation_models_pytorch"} <= set(loaded)


def test_deferred_imports_are_read_from_the_functions_of_the_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "fake_flow.py").write_text(
        textwrap.dedent(
            """
            from __future__ import annotations
            import json
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                import decimal

            def stage() -> None:
                import csv
                from email.message import Message
                from . import sibling
                if TYPE_CHECKING:
                    import fractions

            class Runner:
                def run(self) -> None:
                    import statistics, csv
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert deferred_imports("fake_flow") == ["csv", "email.message", "statistics"]
    assert deferred_imports("no_such_module_here") == []
