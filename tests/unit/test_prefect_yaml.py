"""prefect.yaml stays coherent with the pipeline flow and the team stack (the real deployment run
is tests/integration/test_team_stack.py)."""

from __future__ import annotations

import inspect
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def _config() -> dict:
    return yaml.safe_load((REPO / "prefect.yaml").read_text())


def test_the_deployment_runs_the_pipeline_on_the_stack_pool() -> None:
    from flows.pipeline import pipeline
    from infra.stack.services import WORK_POOL

    [dep] = _config()["deployments"]
    path, _, name = dep["entrypoint"].partition(":")
    assert (REPO / path).is_file() and name == "pipeline"
    assert dep["work_pool"]["name"] == "segflow-gpu"
    if WORK_POOL == "segflow-gpu":  # the native stack's worker polls it (unless SEGFLOW_WORK_POOL)
        assert dep["work_pool"]["name"] == WORK_POOL
    assert "${SEGFLOW_WORK_POOL:-segflow-gpu}" in (REPO / "infra/production/compose.yaml").read_text()
    flow_params = inspect.signature(pipeline.fn).parameters
    assert set(dep["parameters"]) <= set(flow_params), dep["parameters"]
    assert "overrides" in dep["parameters"]


def test_flow_runs_start_in_the_workers_checkout() -> None:
    [step] = _config()["pull"]
    assert step == {
        "prefect.deployments.steps.set_working_directory": {"directory": "{{ $SEGFLOW_PROJECT_DIR }}"}
    }
