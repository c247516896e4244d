"""``segflow plan`` on a dataset it has never seen, with the shipped params (everything auto): a
budget too short is refused before any training, naming the minimum; a workable one prints the
plan, writes plans/ and trains nothing (the user's values are tested in tests/unit/planning)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from components.params.edit import apply_overrides
from components.params.user import PLANNABLE, get_key
from tests.integration.conftest import BIN, project_env, run, shipped_project

pytestmark = pytest.mark.slow


def test_segflow_plan_refuses_a_short_budget_then_plans_without_training(
    tmp_path: Path, prefect_api: str
) -> None:
    root = tmp_path / "proj"
    env = project_env(root, prefect_api)
    shipped_project(root, env)
    apply_overrides(root / "params.yaml", {"data.synthetic.n_cases": 16, "data.synthetic.n_patients": 16})
    run([str(BIN / "segflow"), "generate", "--dims", "3", "--out", "vols"], root, env)
    segflow = [str(BIN / "segflow"), "plan", "--data", "vols", "--set", "preprocess.splits.n_folds=2"]

    short = run([*segflow, "--time-budget", "30s"], root, env, check=False)
    assert short.returncode == 1
    assert "plan.time_budget 30s is too short" in short.stderr and "give at least" in short.stderr
    assert not (root / "plans" / "plan.json").exists() and not (root / "models").exists()

    ok = run([*segflow, "--time-budget", "20m"], root, env)
    assert "Plan: 3d configuration" in ok.stdout and "train.patch_size" in ok.stdout
    plan = json.loads((root / "plans" / "plan.json").read_text())
    assert plan["configuration"] == "3d" and plan["budget"]["time_budget"] == "20m"
    assert plan["estimate"]["total_s"] <= 20 * 60 * 1.05
    resolved = yaml.safe_load((root / "plans" / "params.yaml").read_text())
    assert [k for k in PLANNABLE if get_key(resolved, k) == "auto"] == []  # every planned value resolved
    assert not (root / "models").exists() and not (root / "data" / "prepared").exists()  # nothing trained
