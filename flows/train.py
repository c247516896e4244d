"""train stage: all k folds, one MLflow child run each under one parent run -> models/folds/.

Resume: each fold keeps its resumable state (every complete epoch) and, once done, its final files
in ``.segflow/resume/train/<key>/`` (components/training/resume_store.py), outside the stage's
DVC outs. Re-running the stage after a kill resumes each unfinished fold from its last complete
epoch, restores the finished ones, and continues the same MLflow parent and fold runs. Runs of an
attempt that can no longer be resumed (other params or data) are ended KILLED.

Cancellation: SIGTERM (a Prefect cancellation sends it), SIGINT (Ctrl-C): the fold stops after the
current step, the runs end KILLED, and the signal then takes its usual course (non-zero exit).
``models/folds`` appears only when every fold is done, in one rename.

Executors (``train.executor``): ``sequential`` trains the folds one after another in this process;
``dask`` runs each fold's task run on a Dask cluster (flows/runtime/fold_executor.py: the cluster, the
workers' threads and GPUs, how a stop reaches the folds). The fold task is the same in both, and
so are its checkpoints, history, metrics and MLflow run (seeded per fold; equal on the CPU).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict
from uuid import UUID

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import TerminationSignal

from components.core import layout
from components.data.splits import read_splits
from components.params.config import AUTO, Params, load_params
from components.params.configurations import load_configurations
from components.tracking.lineage import lineage_tags, log_input_dataset
from components.tracking.plan_log import log_plan
from components.training.interrupt import StopRequest, graceful_stop
from components.training.resume_store import RUNS_FILE, ResumeStore, read_runs, resume_key
from flows.runtime.fold_executor import FoldStopped, in_directory, run_on_dask, where_running
from flows.runtime.fold_jobs import CONFIGURATION_TAG, FoldJob, fold_jobs, publish_folds
from flows.runtime.stage import current_flow_run_id, pipeline_flow_run_id, run

if TYPE_CHECKING:
    from components.tracking.tracker import Tracker

# torch, MLflow and the training code are imported where they are used: `import flows.train`
# (a cold stage start, a Dask worker unpickling a fold task) stays under 3 s on 2 cores
# (bench/stage_import.py); a warm stage server imports them ahead (flows/runtime/preload.py).

RESUME_BASE = layout.RESUME / "train"
INTERRUPTS = (KeyboardInterrupt, SystemExit, TerminationSignal, FoldStopped)
EXECUTOR_TAG = "segflow.executor"  # where the fold's task ran: this process, or which Dask worker


class FoldResult(TypedDict):
    """What :func:`train_one_fold` returns."""

    fold: int
    run_id: str
    best_val_dice: float
    configuration: str | None


def stage_params(params: Params) -> dict[str, Any]:
    """Only what this stage reads (its dvc.yaml params): logged to the parent run, hashed for resume."""
    data = params.data
    return {
        "data": {"dir": data.dir, "classes": data.classes, "channels": data.channels},
        "preprocess": params.preprocess.model_dump(mode="json"),
        "train": params.train.model_dump(mode="json"),
        "tracking": params.tracking.model_dump(mode="json"),
    }


def _end_failed(tracker: Tracker, run_id: str, exc: BaseException) -> None:
    """End a run KILLED when it was interrupted (signal, cancellation), FAILED otherwise."""
    if isinstance(exc, INTERRUPTS):
        tracker.kill_if_running(run_id)
    else:
        tracker.end_run(run_id, ok=False, error=exc)


def _fold_run(
    tracker: Tracker, store: ResumeStore, params: Params, fold: int, parent: str, tags: dict[str, str]
) -> str:
    """The fold's MLflow run: the interrupted attempt's, re-opened, else a new child of ``parent``
    (named ``fold-<k>``, or ``<configuration> fold-<k>`` when the run trains several)."""
    fold_params = {"fold": fold, **params.train.model_dump(mode="json")}
    run_id = store.runs()["folds"].get(str(fold))
    where = {EXECUTOR_TAG: where_running()}
    if run_id and tracker.reopen_run(run_id):
        tracker.set_tags(run_id, where)
        tracker.log_params(run_id, fold_params)  # the same values (in case a kill came before them)
        return str(run_id)
    several = (
        tags.get(CONFIGURATION_TAG)
        and params.plan.configurations != AUTO
        and len(params.plan.configurations) > 1
    )
    name = f"{tags[CONFIGURATION_TAG]} fold-{fold}" if several else f"fold-{fold}"
    run_id = tracker.start_run(name, parent_id=parent, tags={**tags, "segflow.fold": str(fold), **where})
    store.update_runs(fold=(fold, run_id))
    tracker.log_params(run_id, fold_params)
    log_input_dataset(
        tracker, run_id, params.data.dir, read_splits(layout.SPLITS), params.data.class_names, fold
    )
    return run_id


@task(cache_policy=NO_CACHE)
def train_one_fold(
    params_path: str,
    fold: int,
    experiment: str,
    parent_run_id: str,
    tags: dict[str, str],
    resume_root: str,
    stop: StopRequest | None = None,
    workdir: str | None = None,
) -> FoldResult:
    """Train (or resume, or restore) fold ``fold`` in its MLflow child run; return its best Dice.

    ``workdir``: the flow's working directory (the project), where the fold runs: a remote Dask
    worker's own differs. Every argument and the result are plain data (they cross to workers).
    """
    with in_directory(workdir):
        return _train_one_fold(params_path, fold, experiment, parent_run_id, tags, resume_root, stop)


def _train_one_fold(
    params_path: str,
    fold: int,
    experiment: str,
    parent_run_id: str,
    tags: dict[str, str],
    resume_root: str,
    stop: StopRequest | None,
) -> FoldResult:
    from components.tracking.tracker import Tracker
    from components.training.loop import train_fold
    from flows.runtime.ddp_fold import DDPFoldSpec, train_fold_ddp

    store = ResumeStore(Path(resume_root))
    done = store.finished(fold)
    configuration = tags.get(CONFIGURATION_TAG)
    if done is not None:
        print(f"fold {fold}: finished earlier, restored — {store.fold_dir(fold)}")
        return {
            "fold": fold,
            "run_id": done["run_id"],
            "best_val_dice": done["best_val_dice"],
            "configuration": configuration,
        }
    params = load_params(params_path)
    tracker = Tracker(experiment)
    run_id = _fold_run(tracker, store, params, fold, parent_run_id, tags)
    folder = store.fold_dir(fold)
    try:
        if params.train.ddp.nproc_per_node > 1:
            spec = DDPFoldSpec(params_path, fold, str(folder), experiment, run_id)
            res = train_fold_ddp(spec, params.train.ddp.nproc_per_node, stop)
        else:
            res = train_fold(
                params,
                fold,
                read_splits(layout.SPLITS),
                layout.PREPARED,
                folder,
                log_metrics=tracker.epoch_logger(run_id),
                resume_dir=folder,
                stop=stop,
            )
        summary = {
            "best_val_dice": res.best_val_dice,
            "best_epoch": res.best_epoch,
            "train_images_per_s": res.train_images_per_s,
        }
        tracker.log_metrics(run_id, summary)
        tracker.log_artifact(run_id, res.history)
        tracker.log_dict(run_id, res.augmentation, "augmentation.json")
        tracker.log_artifact(run_id, res.best_checkpoint, "checkpoint")
    except BaseException as exc:
        _end_failed(tracker, run_id, exc)
        raise
    tracker.end_run(run_id)
    store.mark_finished(fold, {"fold": fold, "run_id": run_id, **summary})
    print(
        f"{configuration + ' ' if configuration else ''}fold {fold}: best val Dice {res.best_val_dice:.4f} "
        f"at epoch {res.best_epoch}, {res.train_images_per_s:.1f} train images/s"
    )
    return {
        "fold": fold,
        "run_id": run_id,
        "best_val_dice": res.best_val_dice,
        "configuration": configuration,
    }


def _crash_flow_run(flow_run_id: str | None, why: str) -> None:
    """Mark a Prefect flow run left RUNNING by a killed process Crashed (best effort)."""
    if not flow_run_id or flow_run_id == current_flow_run_id():
        return
    try:
        from prefect.client.orchestration import get_client
        from prefect.states import Crashed

        with get_client(sync_client=True) as client:
            run = client.read_flow_run(UUID(flow_run_id))
            if run.state is not None and run.state.is_running():
                client.set_flow_run_state(run.id, Crashed(message=why), force=True)
    except Exception as exc:  # another Prefect server, or none: nothing to tidy there
        print(f"train: could not mark the interrupted flow run {flow_run_id} crashed: {exc}")


def _drop_stale(tracker: Tracker, store: ResumeStore) -> None:
    """End the runs of resume folders of another configuration KILLED and delete the folders."""
    for folder in store.stale():
        old = read_runs(folder)
        others = [read_runs(sub)["folds"] for sub in folder.iterdir() if (sub / RUNS_FILE).is_file()]
        for rid in [old["parent"], *old["folds"].values(), *(r for runs in others for r in runs.values())]:
            if rid and tracker.kill_if_running(rid):
                print(f"train: MLflow run {rid} of an interrupted training with other params/data: KILLED")
        _crash_flow_run(old["flow_run"], "killed; superseded by a training with other params or data")
        shutil.rmtree(folder, ignore_errors=True)


def _parent_run(tracker: Tracker, store: ResumeStore, params: Params, tags: dict[str, str]) -> str:
    """The interrupted attempt's parent run, re-opened, else a new one with the stage's params."""
    runs = store.runs()
    _crash_flow_run(runs["flow_run"], "killed; the next train run resumed its training")
    store.update_runs(flow_run=current_flow_run_id())
    if runs["parent"] and tracker.reopen_run(runs["parent"]):
        tracker.set_tags(runs["parent"], tags)  # lineage of the attempt that completes it
        tracker.log_params(runs["parent"], stage_params(params))  # the same values, as the key says
        print(f"train: resuming an interrupted training — {store.root}")
        return str(runs["parent"])
    parent = tracker.start_run(f"pipeline-{time.strftime('%Y%m%d-%H%M%S')}", tags=tags)
    store.update_runs(parent=parent)
    # A later evaluate/ensemble re-run with other params logs to this same parent run, and must
    # not find stale values of its keys here: only this stage's params.
    tracker.log_params(parent, stage_params(params))
    log_plan(tracker, parent, layout.PLANS)  # plan.* params and the plan's files
    log_input_dataset(tracker, parent, params.data.dir, read_splits(layout.SPLITS), params.data.class_names)
    return parent


def _run_folds(
    params: Params, jobs: list[FoldJob], experiment: str, parent: str, stop: StopRequest
) -> list[FoldResult]:
    """Every configuration's folds as task runs, by ``train.executor``: here one after another, or
    on Dask."""
    if params.train.executor == "dask":
        workdir = str(Path.cwd())
        calls = [
            {
                "params_path": str(Path(job["params_path"]).resolve()),
                "fold": k,
                "experiment": experiment,
                "parent_run_id": parent,
                "tags": job["tags"],
                "resume_root": str(Path(job["resume_root"]).resolve()),
                "workdir": workdir,
            }
            for job in jobs
            for k in params.folds
        ]
        return list(run_on_dask(train_one_fold, calls, stop))
    results = []
    for job in jobs:
        for k in params.folds:
            stop.check(f"before fold {k}")
            args = (job["params_path"], k, experiment, parent, job["tags"], job["resume_root"], stop)
            results.append(train_one_fold(*args))
    return results


@flow(name="train", log_prints=True)
def train_flow(params_path: str = str(layout.RESOLVED_PARAMS)) -> str:
    """Train every fold named by params.yaml (train.folds, default all)."""
    from components.preprocessing.prepare import check_prepared_matches
    from components.preprocessing.specs import expected_spec
    from components.tracking.run_record import RunRecord
    from components.tracking.tracker import Tracker

    params = load_params(params_path)
    configs = load_configurations(params, Path(params_path))  # the plan's 3d and 2d, or one
    for _, p in configs:  # one prepared dataset serves every configuration
        check_prepared_matches(layout.PREPARED, expected_spec(p, layout.PREPARED), p.data.class_names)
    tracker = Tracker(params.tracking.experiment)
    key = stage_params(params) if len(configs) == 1 else {c.label: stage_params(p) for c, p in configs}
    store = ResumeStore.open(RESUME_BASE, resume_key(key, layout.PREPARED))
    _drop_stale(tracker, store)
    tags = lineage_tags(params.data.dir, current_flow_run_id(), pipeline_flow_run_id())
    parent = _parent_run(tracker, store, params, tags)
    experiment = params.tracking.experiment
    jobs = fold_jobs(configs, store, tags)
    with graceful_stop() as stop:
        try:
            results = _run_folds(params, jobs, experiment, parent, stop)
        except BaseException as exc:
            for job in jobs:  # a fold on a worker that was shut down
                for rid in read_runs(Path(job["resume_root"]))["folds"].values():
                    if rid:
                        tracker.kill_if_running(rid)
            _end_failed(tracker, parent, exc)  # never left RUNNING by a failed or stopped fold
            raise
    first = configs[0][0].name
    runs: dict[str, dict[int, str]] = {}
    for r in results:
        runs.setdefault(str(r["configuration"]), {})[int(r["fold"])] = str(r["run_id"])
    others = {c.label: runs[str(c.name)] for c, _ in configs[1:]}
    record = RunRecord(tracker.uri, experiment, parent, runs[str(first)], others)
    publish_folds(configs, jobs, record, store)
    store.remove()
    # The parent stays RUNNING: evaluate and ensemble log to it by id, and the last stage ends it.
    return str(layout.FOLDS)


if __name__ == "__main__":
    run(train_flow)
