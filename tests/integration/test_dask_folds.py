"""``train.executor: dask``: the train flow's folds run as Prefect task runs on a Dask LocalCluster
(two single-threaded worker processes) and end exactly as a sequential run with the same seed:
the same history.csv and checkpoint tensors per fold, one MLflow child run per fold with the same
metrics; the fold task runs ran in the workers' processes, not the flow's."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from components.core import layout
from flows.train import EXECUTOR_TAG
from tests.integration.conftest import prepared_project, resolve_as_written, tiny_training, train_in_process

pytestmark = [pytest.mark.slow, pytest.mark.scaleout]

EXPERIMENT = "segflow-dask-folds"
TINY = tiny_training(3, EXPERIMENT)
RATE = "train_images_per_s"  # a speed: the one metric that may differ


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git project with prepared phantoms (the train stage's inputs)."""
    return prepared_project(tmp_path_factory.mktemp("dask-folds") / "proj", TINY)


def _train(
    template: Path, dest: Path, executor: str, prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Copy the project to ``dest``, set ``train.executor`` and run the train flow in this process
    (the Dask workers are its children: they inherit its environment and working directory)."""
    from components.params.edit import apply_overrides

    shutil.copytree(template, dest, symlinks=True)
    apply_overrides(dest / "params.yaml", {"train.executor": executor})
    resolve_as_written(dest)  # the train stage reads the resolved params
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{dest / 'mlflow.db'}", "PREFECT_API_URL": prefect_api}
    env["OMP_NUM_THREADS"] = "1"  # one thread in the Dask workers too: the same float reduction order
    with monkeypatch.context() as m:
        m.delenv("SEGFLOW_DASK_ADDRESS", raising=False)  # a LocalCluster of the flow's own
        train_in_process(dest, prefect_api, env, m)
    return dest


@pytest.fixture(scope="module")
def trained(
    template: Path, tmp_path_factory: pytest.TempPathFactory, prefect_api: str
) -> Iterator[tuple[Path, Path]]:
    base = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as mp:
        seq = _train(template, base / "sequential", "sequential", prefect_api, mp)
        dsk = _train(template, base / "dask", "dask", prefect_api, mp)
    yield seq, dsk


def _fold_runs(root: Path) -> dict[int, list]:
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    exp = client.get_experiment_by_name(EXPERIMENT)
    out: dict[int, list] = {}
    for r in client.search_runs([exp.experiment_id]):
        if "segflow.fold" in r.data.tags:
            out.setdefault(int(r.data.tags["segflow.fold"]), []).append(r)
    return out


def test_dask_folds_match_the_sequential_run(trained: tuple[Path, Path]) -> None:
    seq, dsk = trained
    for fold in (0, 1):
        a, b = layout.fold_dir(fold, seq / layout.FOLDS), layout.fold_dir(fold, dsk / layout.FOLDS)
        assert (a / layout.HISTORY).read_text() == (b / layout.HISTORY).read_text(), fold
        for name in (layout.BEST_CHECKPOINT, layout.LAST_CHECKPOINT):
            sa = torch.load(a / name, weights_only=True)["state_dict"]
            sb = torch.load(b / name, weights_only=True)["state_dict"]
            assert sa.keys() == sb.keys()
            assert all(torch.equal(sa[k], sb[k]) for k in sa), (fold, name)


def test_one_mlflow_child_run_per_fold_with_the_same_metrics(trained: tuple[Path, Path]) -> None:
    seq, dsk = trained
    runs_seq, runs_dsk = _fold_runs(seq), _fold_runs(dsk)
    assert sorted(runs_seq) == sorted(runs_dsk) == [0, 1]
    client = MlflowClient(f"sqlite:///{dsk / 'mlflow.db'}")
    client_seq = MlflowClient(f"sqlite:///{seq / 'mlflow.db'}")
    for fold in (0, 1):
        assert len(runs_dsk[fold]) == len(runs_seq[fold]) == 1
        rs, rd = runs_seq[fold][0], runs_dsk[fold][0]
        assert rd.info.status == "FINISHED"
        assert rd.data.tags["mlflow.parentRunId"]  # a child of the stage's parent run
        ms = {k: v for k, v in rs.data.metrics.items() if k != RATE}
        md = {k: v for k, v in rd.data.metrics.items() if k != RATE}
        assert ms == md, fold
        for key in ("train_loss", "val_dice"):
            hist_s = [(m.step, m.value) for m in client_seq.get_metric_history(rs.info.run_id, key)]
            hist_d = [(m.step, m.value) for m in client.get_metric_history(rd.info.run_id, key)]
            assert sorted(hist_s) == sorted(hist_d), (fold, key)
        assert rd.data.params["executor"] == "dask"
        assert {k: v for k, v in rs.data.params.items() if k != "executor"} == {
            k: v for k, v in rd.data.params.items() if k != "executor"
        }


def test_the_fold_task_runs_ran_on_dask_worker_processes(trained: tuple[Path, Path]) -> None:
    seq, dsk = trained
    me = f"(pid {os.getpid()})"
    for runs in _fold_runs(seq).values():
        assert runs[0].data.tags[EXECUTOR_TAG].endswith(me)  # in the flow's own process
    where = [runs[0].data.tags[EXECUTOR_TAG] for runs in _fold_runs(dsk).values()]
    assert all(w.startswith("dask worker tcp://127.0.0.1:") and not w.endswith(me) for w in where), where
    assert len({w.split(" (pid ")[1] for w in where}) == 2, where  # two folds at once: two workers
