"""evaluate stage: each fold model on its validation cases -> reports/cv/ (DVC metrics + plots), MLflow."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from components.core import layout
from components.data.splits import read_splits
from components.params.config import load_params
from flows.runtime.stage import run

# pandas, torch, MLflow and the scoring code are imported where they are used: `import
# flows.evaluate` stays under 3 s on 2 cores (bench/stage_import.py); a warm stage server imports
# them ahead (flows/runtime/preload.py).


@task(cache_policy=NO_CACHE)
def evaluate_all_folds(params_path: str) -> dict:
    """Score the folds and write the CV report."""
    from components.evaluation.cross_validation import evaluate_folds
    from components.evaluation.postprocess_report import decide, describe, write_postprocessing
    from components.evaluation.report import write_report
    from components.evaluation.scoring import distance_unit, has_volumes, scoring_options
    from components.inference.options import window_options
    from components.validation import read_manifest

    params = load_params(params_path)
    splits = read_splits(layout.SPLITS)
    manifest = read_manifest(layout.MANIFEST)
    scored = evaluate_folds(
        params.folds,
        splits.folds,
        manifest,
        Path(params.data.dir),
        layout.FOLDS,
        scoring_options(params),
        window_options(params),
    )
    unit = distance_unit(params, has_volumes(manifest))
    names = params.data.class_names
    decision, summary = decide(scored.candidates, names, params.evaluate.connectivity)
    headline = write_report(scored, layout.CV_REPORTS, names, by_fold=True, unit=unit)
    write_postprocessing(layout.POSTPROCESSING, decision, summary, scored.per_case["case_id"].nunique())
    print(f"postprocessing chosen on the out-of-fold cases: {describe(decision, names)}")
    return headline


@task(cache_policy=NO_CACHE)
def log_to_mlflow(headline: dict) -> None:
    """Per-fold means to the fold runs, the CV summary and plots to the parent run."""
    import pandas as pd

    from components.evaluation.presentation import (
        fold_mlflow_metrics,
        headline_markdown,
        headline_mlflow_metrics,
    )
    from components.tracking.run_record import RunRecord
    from components.tracking.tracker import Tracker

    rec = RunRecord.load(layout.RUN_RECORD)
    tracker = Tracker(rec.experiment, rec.tracking_uri)
    per_fold = fold_mlflow_metrics(pd.read_csv(layout.CV_REPORTS / layout.PER_CASE_FILE))
    for fold, run_id in rec.fold_run_ids.items():
        tracker.log_metrics(run_id, per_fold.get(fold, {}))
    tracker.log_metrics(rec.parent_run_id, headline_mlflow_metrics(headline, "cv"))
    tracker.log_artifact(rec.parent_run_id, layout.CV_REPORTS, layout.CV_REPORTS.as_posix())
    create_markdown_artifact(
        key="cv-summary", markdown=headline_markdown(headline, "Cross-validation (fold mean ± sd)")
    )


@flow(name="evaluate", log_prints=True)
def evaluate_flow(params_path: str = str(layout.RESOLVED_PARAMS)) -> str:
    """Evaluate every trained fold on its own validation cases."""
    from components.evaluation.presentation import headline_markdown
    from components.tracking.run_record import RunRecord, parent_run_outcome

    with parent_run_outcome(RunRecord.load(layout.RUN_RECORD), last_stage=False):
        headline = evaluate_all_folds(params_path)
        log_to_mlflow(headline)
    print(headline_markdown(headline, "Cross-validation (fold mean ± sd)"))
    return str(layout.CV_REPORTS)


if __name__ == "__main__":
    run(evaluate_flow)
