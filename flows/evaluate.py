"""evaluate stage: each fold model on its validation cases -> reports/cv/ (DVC metrics + plots), MLflow."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from components.config import load_params
from components.evaluation.folds import evaluate_folds
from components.evaluation.report import write_report
from components.evaluation.scoring import distance_unit, scoring_options
from components.evaluation.summary import fold_metric_means, summary_markdown, summary_metrics
from components.preprocessing.prepare import load_splits
from components.tracking.run_record import RunRecord
from components.tracking.tracker import Tracker
from components.validation import read_manifest
from flows.stage import main

REPORT_DIR = Path("reports/cv")


@task(cache_policy=NO_CACHE)
def evaluate_all_folds(params_path: str) -> dict:
    """Score the folds and write the CV report."""
    params = load_params(params_path)
    splits = load_splits(Path("data/prepared"))
    scored = evaluate_folds(
        params.folds,
        splits.folds,
        read_manifest(Path("data/manifest.parquet")),
        Path(params.data.dir),
        Path("models/folds"),
        scoring_options(params),
    )
    return write_report(scored, REPORT_DIR, params.data.class_names, by_fold=True, unit=distance_unit(params))


@task(cache_policy=NO_CACHE)
def log_to_mlflow(summary: dict) -> None:
    """Per-fold means to the fold runs, the CV summary and plots to the parent run."""
    rec = RunRecord.load(Path("models/folds/run.json"))
    tracker = Tracker(rec.experiment, rec.tracking_uri)
    per_fold = fold_metric_means(pd.read_csv(REPORT_DIR / "per_case.csv"))
    for fold, run_id in rec.fold_run_ids.items():
        tracker.log_metrics(run_id, per_fold.get(fold, {}))
    tracker.log_metrics(rec.parent_run_id, summary_metrics(summary, "cv"))
    tracker.log_artifact(rec.parent_run_id, REPORT_DIR, "reports/cv")
    create_markdown_artifact(
        key="cv-summary", markdown=summary_markdown(summary, "Cross-validation (fold mean ± sd)")
    )


@flow(name="evaluate", log_prints=True)
def evaluate_flow(params_path: str = "params.yaml") -> str:
    """Evaluate every trained fold on its own validation cases."""
    summary = evaluate_all_folds(params_path)
    log_to_mlflow(summary)
    print(summary_markdown(summary, "Cross-validation (fold mean ± sd)"))
    return str(REPORT_DIR)


if __name__ == "__main__":
    main(evaluate_flow)
