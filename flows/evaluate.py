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
    """Score the folds of every configuration (and their ensemble), choose one, write the CV report."""
    from components.evaluation import configurations as cfg
    from components.evaluation.postprocess_report import decide, describe, write_postprocessing
    from components.evaluation.presentation import fold_mlflow_metrics
    from components.evaluation.report import write_report
    from components.evaluation.scoring import distance_unit, has_volumes, scoring_options
    from components.inference.options import window_options
    from components.params.configurations import load_configurations
    from components.validation import read_manifest

    params = load_params(params_path)
    trained = [
        cfg.TrainedConfiguration(c.label, c.folds_dir, window_options(p))
        for c, p in load_configurations(params, Path(params_path))
    ]
    manifest = read_manifest(layout.MANIFEST)
    all_scored = cfg.cross_validate(
        trained,
        params.folds,
        read_splits(layout.SPLITS).folds,
        manifest,
        Path(params.data.dir),
        scoring_options(params),
    )
    comparison = cfg.comparison(all_scored, [c.name for c in trained])
    scored = all_scored[comparison["chosen"]]  # the reports and the postprocessing: the chosen one's
    unit = distance_unit(params, has_volumes(manifest))
    names = params.data.class_names
    decision, summary = decide(scored.candidates, names, params.evaluate.connectivity)
    headline = write_report(scored, layout.CV_REPORTS, names, by_fold=True, unit=unit)
    write_postprocessing(layout.POSTPROCESSING, decision, summary, scored.per_case["case_id"].nunique())
    cfg.write_comparison(layout.CONFIGURATIONS, comparison)
    print(f"postprocessing chosen on the out-of-fold cases: {describe(decision, names)}")
    fold_metrics = {c.name: fold_mlflow_metrics(all_scored[c.name].per_case) for c in trained}
    return {"headline": headline, "comparison": comparison, "fold_metrics": fold_metrics}


@task(cache_policy=NO_CACHE)
def log_to_mlflow(result: dict) -> None:
    """Per-fold means to each configuration's fold runs, the CV summary, the configurations'
    comparison and plots to the parent run."""
    from components.evaluation.configurations import comparison_metrics
    from components.evaluation.presentation import headline_markdown, headline_mlflow_metrics
    from components.tracking.run_record import RunRecord
    from components.tracking.tracker import Tracker

    headline, comparison = result["headline"], result["comparison"]
    rec = RunRecord.load(layout.RUN_RECORD)
    tracker = Tracker(rec.experiment, rec.tracking_uri)
    first = next(iter(result["fold_metrics"]))
    runs = {first: rec.fold_run_ids, **rec.configuration_runs}  # each configuration's fold runs
    for name, per_fold in result["fold_metrics"].items():
        for fold, run_id in runs.get(name, {}).items():
            tracker.log_metrics(run_id, per_fold.get(fold, {}))
    tracker.log_metrics(rec.parent_run_id, headline_mlflow_metrics(headline, "cv"))
    if len(comparison["candidates"]) > 1:
        tracker.log_metrics(rec.parent_run_id, comparison_metrics(comparison))
        tracker.set_tags(rec.parent_run_id, {"segflow.chosen_configuration": comparison["chosen"]})
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
        result = evaluate_all_folds(params_path)
        log_to_mlflow(result)
    print(headline_markdown(result["headline"], "Cross-validation (fold mean ± sd)"))
    if len(result["comparison"]["candidates"]) > 1:
        from components.evaluation.presentation import configurations_line

        print(configurations_line(result["comparison"]))
    return str(layout.CV_REPORTS)


if __name__ == "__main__":
    run(evaluate_flow)
