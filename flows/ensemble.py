"""ensemble stage: fold ensemble (+TTA) on the test split -> reports/test/, packaged, registered, gated."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from components.config import load_params
from components.ensembling.package import fold_ensemble, mean_foreground_dice, score_model_uri
from components.evaluation.folds import fold_checkpoint
from components.evaluation.report import write_report
from components.evaluation.scoring import distance_unit, score_cases, scoring_options
from components.evaluation.statistics import compare_paired
from components.evaluation.summary import summary_markdown, summary_metrics
from components.preprocessing.prepare import load_splits, split_sha
from components.tracking.lineage import lineage_tags
from components.tracking.registry import (
    champion_per_case,
    log_ensemble_model,
    register_and_gate,
    save_ensemble_model,
)
from components.tracking.run_record import RunRecord
from components.tracking.tracker import Tracker
from components.validation import read_manifest
from flows.stage import current_flow_run_id, main, pipeline_flow_run_id

REPORT_DIR = Path("reports/test")
ENSEMBLE_DIR = Path("models/ensemble")
FOLDS_DIR = Path("models/folds")


def _test_cases() -> tuple[pd.DataFrame, list[str]]:
    """Manifest rows of the held-out test split, and its case ids."""
    manifest = read_manifest(Path("data/manifest.parquet"))
    test = load_splits(Path("data/prepared")).test
    return manifest[manifest["case_id"].astype(str).isin(test)], test


@task(cache_policy=NO_CACHE)
def test_ensemble(params_path: str) -> dict:
    """Score the fold ensemble on the held-out test split and write the test report."""
    params = load_params(params_path)
    cases, _ = _test_cases()
    predictor = fold_ensemble([fold_checkpoint(FOLDS_DIR, k) for k in params.folds], params.ensemble.tta)
    scored = score_cases(
        predictor, cases, Path(params.data.dir), scoring_options(params), desc="test ensemble"
    )
    summary = write_report(
        scored, REPORT_DIR, params.data.class_names, by_fold=False, unit=distance_unit(params)
    )
    return {"summary": summary, "test_dice": mean_foreground_dice(scored)}


def compare_with_champion(tracker: Tracker, run_id: str, name: str, split: str) -> None:
    """Paired tests (Wilcoxon, t-test, mean difference CI) of this ensemble against the champion."""
    champion = champion_per_case(tracker, name, split)
    path = ENSEMBLE_DIR / "comparison_with_champion.json"
    if champion is None:
        path.write_text(json.dumps({"note": "no champion tested on this test split"}))
        return
    result = compare_paired(champion, pd.read_csv(REPORT_DIR / "per_case.csv"), metrics=("dice", "hd95"))
    path.write_text(json.dumps({"a": "champion", "b": "this ensemble", **result}, indent=2))
    tracker.log_artifact(run_id, path)
    diff = result["all"]["dice"]
    print(f"vs champion: mean Dice difference {diff['mean_diff']:+.4f} (Wilcoxon p={diff['wilcoxon_p']})")


@task(cache_policy=NO_CACHE)
def package_and_register(params_path: str, result: dict) -> dict:
    """Package preprocessing + fold models + TTA as one pyfunc model, register it, apply the gate."""
    params = load_params(params_path)
    rec = RunRecord.load(FOLDS_DIR / "run.json")
    tracker = Tracker(rec.experiment, rec.tracking_uri)
    tags = lineage_tags(params.data.dir, current_flow_run_id(), pipeline_flow_run_id())
    run_id = tracker.start_run("ensemble", parent_id=rec.parent_run_id, tags=tags)
    tracker.log_params(run_id, {"tta": params.ensemble.tta, "folds": params.folds})
    tracker.log_metrics(run_id, summary_metrics(result["summary"], "test"))
    tracker.log_artifact(run_id, REPORT_DIR, "reports/test")
    ckpts = [fold_checkpoint(FOLDS_DIR, k) for k in params.folds]
    args = (ckpts, params.ensemble.tta, params.data.class_names, params.data.channels)
    save_ensemble_model(ENSEMBLE_DIR / "model", *args)
    uri = log_ensemble_model(tracker, run_id, *args)
    cases, test_ids = _test_cases()
    compare_with_champion(tracker, run_id, params.ensemble.registered_model, split_sha(test_ids))
    reg = register_and_gate(
        tracker,
        uri,
        params.ensemble.registered_model,
        result["test_dice"],
        split_sha(test_ids),
        {**tags, "mlflow_run_id": run_id},
        score_uri=lambda u: score_model_uri(u, cases, Path(params.data.dir), scoring_options(params)),
    )
    record = {
        "registered_model": reg.name,
        "version": reg.version,
        "alias": reg.alias,
        "test_dice": reg.test_dice,
        "champion_dice_before": reg.champion_dice,
        "reason": reg.reason,
        "model_uri": uri,
        "run_id": run_id,
    }
    (ENSEMBLE_DIR / "registration.json").write_text(json.dumps(record, indent=2))
    tracker.set_tags(run_id, {"segflow.registered_version": reg.version, "segflow.alias": reg.alias})
    tracker.log_metrics(rec.parent_run_id, summary_metrics(result["summary"], "test"))
    tracker.end_run(run_id)
    return record


@flow(name="ensemble", log_prints=True)
def ensemble_flow(params_path: str = "params.yaml") -> dict:
    """Ensemble the folds on the test split, then register the packaged model."""
    result = test_ensemble(params_path)
    record = package_and_register(params_path, result)
    md = summary_markdown(result["summary"], "Test set (fold ensemble)")
    md += (
        f"\n\nRegistered **{record['registered_model']}** v{record['version']} "
        f"as `{record['alias']}` ({record['reason']})."
    )
    create_markdown_artifact(key="test-summary", markdown=md)
    print(md)
    return record


if __name__ == "__main__":
    main(ensemble_flow)
