"""The whole pipeline, for real: Prefect flow -> dvc repro -> stage flows -> MLflow registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from components.evaluation.last_run import last_run_results
from components.params_reads import PARAMS_READS_ENV
from tests.integration.conftest import BIN, run, served_pipeline
from tests.unit.architecture.test_dvc_contract import unlisted_reads

pytestmark = pytest.mark.slow

TINY = {
    "data.synthetic.n_cases": 36,
    "data.synthetic.image_size": 64,
    "data.synthetic.n_patients": 36,
    "preprocess.image_size": [48, 48],
    "preprocess.splits.n_folds": 2,
    "preprocess.splits.test_fraction": 0.2,
    "train.epochs": 15,
    "train.batch_size": 4,
    "ensemble.registered_model": "segflow-it",
    "tracking.experiment": "segflow-it",
    "evaluate.worst_cases": 3,
}


def _dvc(root: Path, env: dict[str, str], *args: str, check: bool = True):
    return run([str(BIN / "dvc"), *args], root, env, check=check)


def _commit(root: Path, env: dict[str, str], msg: str) -> None:
    run(["git", "add", "-A"], root, env)
    run(["git", "commit", "-qm", msg], root, env)


def test_pipeline_end_to_end(
    project: tuple[Path, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, env = project
    reads_log = tmp_path / "params_reads.jsonl"  # outside the project: no DVC/git noise
    monkeypatch.setenv(PARAMS_READS_ENV, str(reads_log))
    from components.config_edit import apply_overrides
    from flows.pipeline import pipeline

    apply_overrides(root / "params.yaml", TINY)
    run([str(BIN / "segflow"), "generate", "--out", "data/raw"], root, env)
    _dvc(root, env, "add", "-q", "data/raw")
    _commit(root, env, "tiny project")

    summary = pipeline()  # the deployment's flow, run by the real Prefect engine
    monkeypatch.delenv(PARAMS_READS_ENV)

    # Every params key a stage read is in its dvc.yaml params (else a change would not re-run it).
    reads = [json.loads(line) for line in reads_log.read_text().splitlines()]
    assert {r["stage"] for r in reads} == {"validate", "preprocess", "train", "evaluate", "ensemble"}
    assert unlisted_reads(reads, yaml.safe_load((root / "dvc.yaml").read_text())) == []

    # Outputs of every stage.
    for rel in (
        "data/manifest.parquet",
        "reports/validation/result.json",
        "data/prepared/splits.json",
        "models/folds/fold_0/best.pt",
        "models/folds/fold_1/history.csv",
        "reports/cv/per_case.csv",
        "reports/cv/summary.json",
        "reports/test/summary.json",
        "models/ensemble/model/MLmodel",
        "reports/cv/plots/box_dice.png",
        "reports/test/plots/roc.png",
    ):
        assert (root / rel).exists(), rel
    splits = json.loads((root / "data/prepared/splits.json").read_text())
    assert len(splits["folds"]) == 2 and splits["test"]

    # Learned something: the two organs are easy on this phantom set.
    cv, test = summary["cv"], summary["test"]
    assert cv["organ_a"]["dice"]["mean"] > 0.6, cv
    assert test["organ_a"]["dice"]["mean"] > 0.6, test
    assert set(cv) >= {"organ_a", "organ_b", "lesion"}

    # Registry: first version is the champion, tagged with lineage.
    reg = summary["registration"]
    assert (reg["version"], reg["alias"]) == ("1", "champion")
    client = MlflowClient()
    mv = client.get_model_version_by_alias("segflow-it", "champion")
    assert "**Gate:** first version of this model." in mv.description  # the registry's model card
    assert "| organ_a |" in mv.description and "test Dice [95% CI]" in mv.description
    assert client.get_registered_model("segflow-it").tags["segflow.champion_reason"].startswith("v1: ")
    for tag in (
        "segflow.git_commit",
        "segflow.data_dvc_md5",
        "segflow.params_sha256",
        "segflow.prefect_flow_run_id",
        "segflow.prefect_pipeline_flow_run_id",
        "segflow.test_dice",
    ):
        assert mv.tags.get(tag) not in (None, "", "unknown", "none"), (tag, mv.tags)
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    assert mv.tags["segflow.data_dvc_md5"] == next(
        d["md5"] for d in lock["stages"]["validate"]["deps"] if d["path"] == "data/raw"
    )
    exp = client.get_experiment_by_name("segflow-it")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    for r in runs:  # the DVC-versioned input is each training run's MLflow dataset
        if r.data.tags["mlflow.runName"] != "ensemble":
            [inp] = r.inputs.dataset_inputs
            assert (inp.dataset.name, inp.dataset.digest) == ("raw", mv.tags["segflow.data_dvc_md5"])
    children = {
        r.data.tags["mlflow.runName"]
        for r in runs
        if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id
    }
    assert children == {"fold-0", "fold-1", "ensemble"}
    ensemble_run = next(r for r in runs if r.data.tags["mlflow.runName"] == "ensemble")
    assert parents[0].info.status == "FINISHED"  # ended by the last stage: it spans the pipeline
    assert parents[0].info.end_time >= ensemble_run.info.end_time
    for r in runs:  # every run carries the lineage tags
        for tag in ("segflow.git_commit", "segflow.data_dvc_md5", "segflow.params_sha256"):
            assert r.data.tags.get(tag) not in (None, "", "unknown"), (r.data.tags["mlflow.runName"], tag)
    fold0 = next(r for r in runs if r.data.tags["mlflow.runName"] == "fold-0")
    assert len(client.get_metric_history(fold0.info.run_id, "val_dice")) == TINY["train.epochs"]
    assert "checkpoint" in {a.path for a in client.list_artifacts(fold0.info.run_id)}

    # DVC: up to date, a no-op repro, metrics visible.
    assert "up to date" in _dvc(root, env, "status").stdout
    noop = _dvc(root, env, "repro").stdout
    assert "Data and pipelines are up to date" in noop and "Running stage" not in noop, noop
    metrics = _dvc(root, env, "metrics", "show").stdout
    assert "reports/cv/summary.json" in metrics and "reports/test/summary.json" in metrics

    # A train param change makes train and what follows stale, not validate or preprocess.
    _commit(root, env, "first run")
    apply_overrides(root / "params.yaml", {"train.epochs": 2})
    assert set(json.loads(_dvc(root, env, "status", "--json").stdout)) == {"train"}
    lock1 = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    manifest_mtime = (root / "data/manifest.parquet").stat().st_mtime_ns

    # Re-run through the served Prefect deployment, with the param given at trigger time:
    # a second version, gated against the champion on the same test split.
    with served_pipeline(root, env):
        trig = run(
            [
                str(BIN / "prefect"),
                "deployment",
                "run",
                "segflow-pipeline/segflow-local",
                "-p",
                'overrides={"train.epochs": 2}',
                "--watch",
                "--watch-timeout",
                "900",
            ],
            root,
            env,
        )
    assert "Completed" in trig.stdout, trig.stdout[-3000:]
    assert "up to date" in _dvc(root, env, "status").stdout
    summary2 = last_run_results(root)
    comparison = json.loads((root / "models/ensemble/comparison_with_champion.json").read_text())
    assert comparison["all"]["dice"]["n"] > 0 and comparison["a"] == "champion", comparison
    lock2 = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    rerun = {stage for stage in lock1 if lock1[stage] != lock2[stage]}
    assert rerun == {"train", "evaluate", "ensemble"}, rerun
    assert (root / "data/manifest.parquet").stat().st_mtime_ns == manifest_mtime  # validate did not run
    reg2 = summary2["registration"]
    assert reg2["version"] == "2"
    expected = "champion" if reg2["test_dice"] >= reg["test_dice"] else "challenger"
    assert reg2["alias"] == expected, reg2
    assert str(client.get_model_version_by_alias("segflow-it", expected).version) == "2"
    if expected == "challenger":
        assert str(client.get_model_version_by_alias("segflow-it", "champion").version) == "1"

    # The packaged model segments new images (CLI, registry URI).
    out = root / "pred"
    run(
        [
            str(BIN / "segflow"),
            "predict",
            "--model",
            "models:/segflow-it@champion",
            "--input",
            "data/raw/images",
            "--output",
            str(out),
        ],
        root,
        env,
    )
    n_images = len(list((root / "data/raw/images").iterdir()))
    assert len(list(out.glob("*.png"))) == n_images
    assert len(list((out / "overlays").glob("*.png"))) == n_images
