"""ensemble stage: fold ensemble (+TTA) on the test split -> reports/test/, packaged, registered, gated."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from components import layout
from components.config import load_params
from components.data.splits import read_splits, split_sha
from components.ensembling.packaged_model import score_model_uri
from components.ensembling.packaging import log_ensemble_model, save_ensemble_model
from components.evaluation.presentation import headline_markdown, headline_mlflow_metrics
from components.evaluation.report import write_report
from components.evaluation.scoring import distance_unit, score_cases, scoring_options
from components.inference.predictor import predictor_from_checkpoints
from components.metrics.reductions import mean_foreground_dice
from components.tracking.lineage import lineage_tags
from components.tracking.model_card import CardFacts, publish_model_card
from components.tracking.promotion import compare_with_champion, register_and_gate
from components.tracking.run_record import RunRecord
from components.tracking.tracker import Tracker
from components.validation import read_manifest
from flows.stage import current_flow_run_id, main, pipeline_flow_run_id


def _test_cases() -> tuple[pd.DataFrame, list[str]]:
    """Manifest rows of the held-out test split, and its case ids."""
    manifest = read_manifest(layout.MANIFEST)
    test = read_splits(layout.SPLITS).test
    return manifest[manifest["case_id"].astype(str).isin(test)], test


@task(cache_policy=NO_CACHE)
def score_test_split(params_path: str) -> dict:
    """Score the fold ensemble on the held-out test split and write the test report."""
    params = load_params(params_path)
    cases, _ = _test_cases()
    predictor = predictor_from_checkpoints(
        [layout.best_checkpoint(k) for k in params.folds], params.ensemble.tta
    )
    scored = score_cases(
        predictor, cases, Path(params.data.dir), scoring_options(params), desc="test ensemble"
    )
    headline = write_report(
        scored, layout.TEST_REPORTS, params.data.class_names, by_fold=False, unit=distance_unit(params)
    )
    test_dice = mean_foreground_dice(scored.per_case)
    if test_dice is None:
        raise ValueError(
            f"no foreground Dice on the {len(cases)} test case(s): nothing to gate the model on; "
            "check preprocess.splits.test_fraction and data.classes"
        )
    return {"headline": headline, "test_dice": test_dice}


@task(cache_policy=NO_CACHE)
def package_and_register(params_path: str, result: dict) -> dict:
    """Package preprocessing + fold models + TTA as one pyfunc model, register it, apply the gate."""
    params = load_params(params_path)
    rec = RunRecord.load(layout.RUN_RECORD)
    tracker = Tracker(rec.experiment, rec.tracking_uri)
    tags = lineage_tags(params.data.dir, current_flow_run_id(), pipeline_flow_run_id())
    run_id = tracker.start_run("ensemble", parent_id=rec.parent_run_id, tags=tags)
    tracker.log_params(
        run_id,
        {
            "folds": params.folds,
            "ensemble": params.ensemble.model_dump(mode="json"),
            "evaluate": params.evaluate.model_dump(mode="json"),
        },
    )
    tracker.log_metrics(run_id, headline_mlflow_metrics(result["headline"], "test"))
    tracker.log_artifact(run_id, layout.TEST_REPORTS, layout.TEST_REPORTS.as_posix())
    ckpts = [layout.best_checkpoint(k) for k in params.folds]
    args = (ckpts, params.ensemble.tta, params.data.class_names, params.data.channels)
    save_ensemble_model(layout.ENSEMBLE_MODEL, *args)
    uri = log_ensemble_model(tracker.uri, run_id, *args)
    cases, test_ids = _test_cases()
    name, split = params.ensemble.registered_model, split_sha(test_ids)
    per_case = pd.read_csv(layout.TEST_REPORTS / layout.PER_CASE_FILE)
    comparison = compare_with_champion(tracker, run_id, name, split, per_case, layout.CHAMPION_COMPARISON)
    if comparison is not None:
        diff = comparison["all"]["dice"]
        print(f"vs champion: mean Dice difference {diff['mean_diff']:+.4f} (Wilcoxon p={diff['wilcoxon_p']})")
    reg = register_and_gate(
        tracker,
        uri,
        name,
        result["test_dice"],
        split,
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
    layout.REGISTRATION.write_text(json.dumps(record, indent=2))
    prepared = json.loads(layout.PREPARED_INFO.read_text())
    publish_model_card(
        tracker,
        CardFacts(
            reg,
            params.data.class_names,
            params.data.channels,
            prepared["preprocess"],
            json.loads((layout.CV_REPORTS / layout.STATISTICS_FILE).read_text()),
            json.loads((layout.TEST_REPORTS / layout.STATISTICS_FILE).read_text()),
            comparison,
            tags,
            params.folds,
            params.ensemble.tta,
            int(prepared["n_cases"]),
            len(test_ids),
            distance_unit(params),
        ),
    )
    tracker.set_tags(run_id, {"segflow.registered_version": reg.version, "segflow.alias": reg.alias})
    tracker.log_metrics(rec.parent_run_id, headline_mlflow_metrics(result["headline"], "test"))
    tracker.end_run(run_id)
    return record


@flow(name="ensemble", log_prints=True)
def ensemble_flow(params_path: str = "params.yaml") -> dict:
    """Ensemble the folds on the test split, then register the packaged model."""
    result = score_test_split(params_path)
    record = package_and_register(params_path, result)
    md = headline_markdown(result["headline"], "Test set (fold ensemble)")
    md += (
        f"\n\nRegistered **{record['registered_model']}** v{record['version']} "
        f"as `{record['alias']}` ({record['reason']})."
    )
    create_markdown_artifact(key="test-summary", markdown=md)
    print(md)
    return record


if __name__ == "__main__":
    main(ensemble_flow)
