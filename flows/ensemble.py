"""ensemble stage: fold ensemble (+TTA) on the test split -> reports/test/, packaged, registered, gated."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from prefect import flow, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from components.core import layout
from components.data.splits import read_splits
from components.params.config import load_params
from components.tracking.lineage import lineage_tags
from components.tracking.links import (
    NOTE_TAG,
    experiment_url,
    mlflow_ui_base,
    model_version_url,
    run_note,
    run_url,
)
from flows.runtime.stage import current_flow_run_id, pipeline_flow_run_id, run

if TYPE_CHECKING:
    import pandas as pd

    from components.inference.configurations import Member
    from components.tracking.run_record import RunRecord
    from components.tracking.tracker import Tracker

# pandas, torch, MLflow and the scoring and packaging code are imported where they are used:
# `import flows.ensemble` stays under 3 s on 2 cores (bench/stage_import.py); a warm stage server
# imports them ahead (flows/runtime/preload.py).


def _test_cases() -> pd.DataFrame:
    """Manifest rows of the held-out test split."""
    from components.validation import read_manifest

    manifest = read_manifest(layout.MANIFEST)
    return manifest[manifest["case_id"].astype(str).isin(read_splits(layout.SPLITS).test)]


def _members(params_path: str) -> list[Member]:
    """The configuration(s) cross-validation chose, with the postprocessing chosen on them."""
    from components.ensembling.chosen import chosen_members
    from components.evaluation.configurations import read_comparison
    from components.evaluation.postprocess_report import read_postprocessing

    pp = read_postprocessing(layout.POSTPROCESSING)
    comparison = read_comparison(layout.CONFIGURATIONS)
    return chosen_members(load_params(params_path), Path(params_path), comparison, pp)


@task(cache_policy=NO_CACHE)
def score_test_split(params_path: str) -> dict:
    """Score the chosen configuration's fold ensemble (or the configurations' ensemble) on the
    held-out test split and write the test report."""
    from components.evaluation.postprocess_report import read_postprocessing
    from components.evaluation.report import write_report
    from components.evaluation.scoring import distance_unit, has_volumes, score_cases, scoring_options
    from components.inference.configurations import predictor_from_members
    from components.metrics.reductions import mean_foreground_dice

    params = load_params(params_path)
    cases = _test_cases()
    pp = read_postprocessing(layout.POSTPROCESSING)
    predictor = predictor_from_members(_members(params_path), pp)
    scored = score_cases(
        predictor, cases, Path(params.data.dir), scoring_options(params, pp), desc="test ensemble"
    )
    headline = write_report(
        scored,
        layout.TEST_REPORTS,
        params.data.class_names,
        by_fold=False,
        unit=distance_unit(params, has_volumes(cases)),
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
    from components.evaluation.postprocess_report import read_postprocessing
    from components.evaluation.presentation import headline_mlflow_metrics
    from components.evaluation.scoring import distance_unit, has_volumes, scoring_options
    from components.tracking.release import release_ensemble
    from components.tracking.run_record import RunRecord
    from components.tracking.tracker import Tracker

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
    cases = _test_cases()
    members = _members(params_path)
    try:
        record = release_ensemble(
            tracker,
            run_id,
            params.ensemble.registered_model,
            params.folds,
            members[0].options,  # the first (or only) chosen configuration's, with the postprocessing
            params.data.channels,
            result["test_dice"],
            cases,
            Path(params.data.dir),
            scoring_options(params, read_postprocessing(layout.POSTPROCESSING)),
            tags,
            distance_unit(params, has_volumes(cases)),
            members,
        )
    except BaseException as exc:
        tracker.end_run(run_id, ok=False, error=exc)  # never left RUNNING
        raise
    tracker.log_metrics(rec.parent_run_id, headline_mlflow_metrics(result["headline"], "test"))
    record = {**record, "links": _link_runs(tracker, rec, run_id, record)}
    layout.REGISTRATION.write_text(json.dumps(record, indent=2))
    tracker.end_run(run_id)
    return record


def _link_runs(tracker: Tracker, rec: RunRecord, run_id: str, record: dict) -> dict[str, str]:
    """Describe every run of this pipeline with links to its Prefect flow runs and the new model
    version; return the MLflow URLs (for the Prefect artifacts and registration.json)."""
    base = mlflow_ui_base(tracker.uri)
    name, version = record["registered_model"], str(record["version"])
    version_url = model_version_url(base, name, version)
    for rid in [rec.parent_run_id, *rec.all_fold_runs(), run_id]:
        note = run_note(tracker.client.get_run(rid).data.tags, name, version, version_url)
        tracker.set_tags(rid, {NOTE_TAG: note})
    return {
        f"MLflow model version ({name} v{version}, {record['alias']})": version_url,
        "MLflow ensemble run": run_url(base, tracker.experiment_id, run_id),
        "MLflow pipeline run": run_url(base, tracker.experiment_id, rec.parent_run_id),
        "MLflow experiment (training runs)": experiment_url(base, tracker.experiment_id),
    }


@flow(name="ensemble", log_prints=True)
def ensemble_flow(params_path: str = str(layout.RESOLVED_PARAMS)) -> dict:
    """Ensemble the folds on the test split, then register the packaged model."""
    from components.evaluation.last_run import links_markdown
    from components.evaluation.presentation import headline_markdown
    from components.evaluation.report_index import write_report_index
    from components.tracking.run_record import RunRecord, parent_run_outcome

    with parent_run_outcome(RunRecord.load(layout.RUN_RECORD), last_stage=True):
        result = score_test_split(params_path)
        record = package_and_register(params_path, result)
        index = write_report_index()  # last: it shows the registration too
    md = headline_markdown(result["headline"], "Test set (fold ensemble)")
    md += (
        f"\n\nRegistered **{record['registered_model']}** v{record['version']} "
        f"as `{record['alias']}` ({record['reason']})."
    )
    md += "\n\n" + links_markdown(record["links"])
    md += f"\n\nAll reports: `{index}`."
    create_markdown_artifact(key="test-summary", markdown=md)
    label, url = next(iter(record["links"].items()))
    create_link_artifact(key="model-version", link=url, link_text=label)
    print(md)
    return record


if __name__ == "__main__":
    run(ensemble_flow)
