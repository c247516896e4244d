"""The configuration chosen on cross-validation, for real: tiny 3D phantoms with the shipped params
and ``plan.configurations: [3d, 2d]`` through ``dvc repro``. The plan writes both configurations'
params, train trains both configurations' folds (a tagged MLflow child run each), evaluate scores
3d, 2d and their ensemble on the out-of-fold cases and chooses, and the registered model is the
chosen one; every params key a stage read is listed in dvc.yaml, and a second repro runs nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from components.params.edit import apply_overrides
from components.params.reads import PARAMS_READS_ENV
from components.training.checkpoint import load_checkpoint
from tests.integration.conftest import BIN, project_env, run, shipped_project
from tests.unit.architecture.test_dvc_contract import unlisted_reads

pytestmark = pytest.mark.slow

EXPERIMENT = "segflow-it-configurations"
TINY = {
    "data.synthetic.n_cases": 10,
    "data.synthetic.n_patients": 10,
    "plan.configurations": ["3d", "2d"],
    "plan.time_budget": "20m",
    "preprocess.splits.n_folds": 2,
    "train.epochs": 1,  # yours win over the plan's, in both configurations: a seconds-long training
    "train.iterations_per_epoch": 2,
    "train.folds": None,  # every fold (the plan would train fewer, each further, at 2 steps a fold)
    "evaluate.worst_cases": 1,
    "ensemble.registered_model": EXPERIMENT,
    "tracking.experiment": EXPERIMENT,
}


def test_3d_and_2d_are_trained_compared_on_cv_and_the_chosen_one_registered(
    tmp_path: Path, prefect_api: str
) -> None:
    root = tmp_path / "proj"
    reads = tmp_path / "reads.jsonl"
    env = project_env(root, prefect_api, SEGFLOW_WARM_IDLE_S="0")
    shipped_project(root, env)
    apply_overrides(root / "params.yaml", TINY)
    run([str(BIN / "segflow"), "generate", "--dims", "3"], root, env)
    run(["git", "add", "-A"], root, env)
    run(["git", "commit", "-qm", "tiny volumes"], root, env)

    run([str(BIN / "dvc"), "repro"], root, {**env, PARAMS_READS_ENV: str(reads)})  # the keys each stage reads

    plan = json.loads((root / "plans/plan.json").read_text())
    assert [c["params"] for c in plan["configurations"]] == ["plans/params.yaml", "plans/params-2d.yaml"]
    first = yaml.safe_load((root / "plans/params.yaml").read_text())
    second = yaml.safe_load((root / "plans/params-2d.yaml").read_text())
    assert first["plan"]["configurations"] == second["plan"]["configurations"] == ["3d", "2d"]
    assert len(first["train"]["patch_size"]) == 3 and len(second["train"]["patch_size"]) == 2
    assert first["preprocess"] == second["preprocess"]  # one prepared dataset serves both

    folds = root / "models/folds"
    specs = [load_checkpoint(folds / sub / "fold_1/best.pt")[2] for sub in ("", "2d")]
    assert specs[0].slice_axis is None and specs[1].slice_axis is not None  # type: ignore[union-attr]
    record = json.loads((folds / "run.json").read_text())
    assert sorted(record["fold_run_ids"]) == ["0", "1"] and sorted(record["configuration_runs"]["2d"]) == [
        "0",
        "1",
    ]

    doc = json.loads((root / "reports/cv/configurations.json").read_text())
    assert sorted(doc["candidates"]) == ["2d", "3d", "3d+2d"] and doc["chosen"] in doc["candidates"]
    scores = {n: c["dice"] for n, c in doc["candidates"].items()}
    assert scores[doc["chosen"]] == max(s for s in scores.values() if s is not None)
    assert all(c["n_cases"] == 8 for c in doc["candidates"].values())  # every out-of-fold case

    import mlflow

    # The project's store named on the client: mlflow.set_tracking_uri would outlive this test in
    # the process and point later tests' clients (which read MLFLOW_TRACKING_URI) at this store.
    client = mlflow.MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id])
    tagged = sorted(
        (r.data.tags["segflow.configuration"], r.data.tags["mlflow.runName"])
        for r in runs
        if "segflow.fold" in r.data.tags
    )
    assert tagged == [("2d", "2d fold-0"), ("2d", "2d fold-1"), ("3d", "3d fold-0"), ("3d", "3d fold-1")]
    assert all("cv_dice_tube" in r.data.metrics for r in runs if "segflow.fold" in r.data.tags)
    parent = next(r for r in runs if "segflow.chosen_configuration" in r.data.tags)
    assert parent.data.tags["segflow.chosen_configuration"] == doc["chosen"]
    assert {"cv_config_dice_3d", "cv_config_dice_2d", "cv_config_dice_ensemble"} <= set(parent.data.metrics)

    packaged = json.loads((root / "models/ensemble/model/artifacts/ensemble.json").read_text())
    members = [m["name"] for m in packaged.get("members", [])] or [doc["chosen"]]
    assert members == doc["members"]
    registration = json.loads((root / "models/ensemble/registration.json").read_text())
    card = client.get_model_version(EXPERIMENT, registration["version"]).description
    assert "chosen on cross-validation" in card and doc["chosen"] in card

    recorded = [json.loads(line) for line in reads.read_text().splitlines()]
    assert unlisted_reads(recorded, yaml.safe_load((root / "dvc.yaml").read_text())) == []
    again = run([str(BIN / "dvc"), "repro"], root, env)
    assert "Running stage" not in again.stdout  # unchanged: nothing re-runs
