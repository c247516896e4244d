"""The plan in MLflow: params, files, and what the model's description says of it."""

from __future__ import annotations

import json
from pathlib import Path

from mlflow.tracking import MlflowClient

from components.tracking.plan_log import log_plan, plan_card_lines, plan_params
from components.tracking.tracker import Tracker

PLAN = {
    "configuration": "3d",
    "budget": {"device_name": "cpu x", "time_budget": "70m", "memory_gb": 5.9},
    "estimate": {"total_s": 4000.4},
    "values": {
        "train.model": {"used": {"name": "dynunet", "kwargs": {"base_filters": 16}}, "yours": None},
        "train.patch_size": {"used": [40, 56, 40], "yours": None},
        "train.batch_size": {"used": 2, "yours": None},
        "train.epochs": {"used": 7, "yours": 7},
        "train.iterations_per_epoch": {"used": 125, "yours": None},
    },
}


def test_plan_params_name_every_used_value_and_the_users() -> None:
    p = plan_params(PLAN)
    assert p["plan.train.patch_size"] == "[40, 56, 40]" and p["plan.train.epochs"] == "7"
    assert p["plan.configuration"] == "3d" and p["plan.expected_s"] == "4000"
    assert p["plan.yours"] == "train.epochs"


def test_the_card_states_the_network_and_the_users_values() -> None:
    lines = plan_card_lines(PLAN)
    assert "dynunet" in lines[0] and "patch [40, 56, 40]" in lines[0] and "7 epochs x 125 steps" in lines[0]
    assert lines[1].endswith("train.epochs")
    assert plan_card_lines(None) == []


def test_the_plan_is_logged_to_a_run(tmp_path: Path) -> None:
    plans = tmp_path / "plans"
    plans.mkdir()
    (plans / "plan.json").write_text(json.dumps(PLAN))
    (plans / "plan.md").write_text("# Plan")
    tracker = Tracker("plan-log", uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_id = tracker.start_run("parent")
    log_plan(tracker, run_id, plans)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert client.get_run(run_id).data.params["plan.train.batch_size"] == "2"
    assert {a.path for a in client.list_artifacts(run_id, "plan")} == {"plan/plan.json", "plan/plan.md"}
