"""train stage: all k folds, one MLflow child run each under one parent run -> models/folds/."""

from __future__ import annotations

import time
from typing import TypedDict

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from components import layout
from components.config import load_params
from components.data.splits import read_splits
from components.preprocessing.prepare import check_prepared_matches
from components.preprocessing.specs import expected_spec
from components.tracking.lineage import lineage_tags, log_input_dataset
from components.tracking.run_record import RunRecord
from components.tracking.tracker import Tracker
from components.training.loop import train_fold
from flows.stage import current_flow_run_id, main, pipeline_flow_run_id


class FoldResult(TypedDict):
    """What :func:`train_one_fold` returns."""

    fold: int
    run_id: str
    best_val_dice: float


@task(cache_policy=NO_CACHE)
def train_one_fold(
    params_path: str, fold: int, experiment: str, parent_run_id: str, tags: dict[str, str]
) -> FoldResult:
    """Train fold ``fold`` in its own MLflow child run; return its best validation Dice."""
    params = load_params(params_path)
    tracker = Tracker(experiment)
    run_id = tracker.start_run(
        f"fold-{fold}", parent_id=parent_run_id, tags={**tags, "segflow.fold": str(fold)}
    )
    tracker.log_params(run_id, {"fold": fold, **params.train.model_dump(mode="json")})
    splits = read_splits(layout.SPLITS)
    log_input_dataset(tracker, run_id, params.data.dir, splits, params.data.class_names, fold)
    out_dir = layout.fold_dir(fold)
    try:
        res = train_fold(
            params,
            fold,
            splits,
            layout.PREPARED,
            out_dir,
            log_metrics=lambda m, step: tracker.log_metrics(run_id, m, step),
        )
    except BaseException as exc:
        tracker.end_run(run_id, ok=False, error=exc)
        raise
    tracker.log_metrics(
        run_id,
        {
            "best_val_dice": res.best_val_dice,
            "best_epoch": res.best_epoch,
            "train_images_per_s": res.train_images_per_s,
        },
    )
    tracker.log_artifact(run_id, res.history)
    tracker.log_dict(run_id, res.augmentation, "augmentation.json")
    tracker.log_artifact(run_id, res.best_checkpoint, "checkpoint")
    tracker.end_run(run_id)
    print(
        f"fold {fold}: best val Dice {res.best_val_dice:.4f} at epoch {res.best_epoch}, "
        f"{res.train_images_per_s:.1f} train images/s"
    )
    return {"fold": fold, "run_id": run_id, "best_val_dice": res.best_val_dice}


@flow(name="train", log_prints=True)
def train_flow(params_path: str = "params.yaml") -> str:
    """Train every fold named by params.yaml (train.folds, default all)."""
    params = load_params(params_path)
    check_prepared_matches(layout.PREPARED, expected_spec(params, layout.PREPARED), params.data.class_names)
    tracker = Tracker(params.tracking.experiment)
    tags = lineage_tags(params.data.dir, current_flow_run_id(), pipeline_flow_run_id())
    parent = tracker.start_run(f"pipeline-{time.strftime('%Y%m%d-%H%M%S')}", tags=tags)
    # Only what this stage reads (its dvc.yaml params): a later evaluate/ensemble re-run with other
    # params logs to this same parent run, and must not find stale values of its keys here.
    data = params.data
    tracker.log_params(
        parent,
        {
            "data": {"dir": data.dir, "classes": data.classes, "channels": data.channels},
            "preprocess": params.preprocess.model_dump(mode="json"),
            "train": params.train.model_dump(mode="json"),
            "tracking": params.tracking.model_dump(mode="json"),
        },
    )
    log_input_dataset(tracker, parent, data.dir, read_splits(layout.SPLITS), data.class_names)
    try:
        results = [
            train_one_fold(params_path, k, params.tracking.experiment, parent, tags) for k in params.folds
        ]
    except BaseException as exc:
        tracker.end_run(parent, ok=False, error=exc)  # never left RUNNING by a failed fold
        raise
    RunRecord(
        tracker.uri, params.tracking.experiment, parent, {int(r["fold"]): str(r["run_id"]) for r in results}
    ).save(layout.RUN_RECORD)
    # The parent stays RUNNING: evaluate and ensemble log to it by id, and the last stage ends it.
    return str(layout.FOLDS)


if __name__ == "__main__":
    main(train_flow)
