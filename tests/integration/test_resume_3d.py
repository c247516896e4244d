"""Resume in 3D, for real: a 3D patch training (NIfTI phantoms, DynUNet, random patches) SIGKILLed
mid-fold resumes on rerun from its last complete epoch and ends with exactly the weights, history
and metrics of an uninterrupted run, as 2D does (test_resume.py)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from mlflow.tracking import MlflowClient

from tests.integration.conftest import BIN, copy_project, project_env, run
from tests.integration.test_resume import (
    LIVENESS_S,
    _assert_same_as_reference,
    _freeze_at_epoch,
    _next_epoch,
    _training_pid,
)

pytestmark = pytest.mark.slow

EPOCHS = 6
EXPERIMENT = "segflow-resume-3d"
TINY_3D: dict[str, Any] = {
    "data.classes": {"background": 0, "tube": 1, "blob": 2},
    "data.channels": 1,
    "data.synthetic.n_cases": 8,
    "data.synthetic.n_patients": 8,
    "preprocess.spatial_mode": "patch",
    "preprocess.target_spacing": "median",
    "preprocess.crop_nonzero": True,
    "preprocess.intensity.method": "ct",
    "preprocess.intensity.kwargs": {},
    "preprocess.splits.n_folds": 2,
    "preprocess.splits.test_fraction": 0.25,
    "train.device": "cpu",
    "train.epochs": EPOCHS,
    "train.batch_size": 2,
    "train.scheduler.kwargs.warmup_epochs": 0,
    "train.model.name": "dynunet",
    "train.model.kwargs": {"encoder_weights": None, "base_filters": 4, "max_levels": 3},
    "train.patch_size": [8, 24, 24],
    "train.iterations_per_epoch": 3,
    "train.augment.transforms": [{"name": "RandFlip", "kwargs": {"prob": 0.5, "spatial_axis": [2]}}],
    "tracking.experiment": EXPERIMENT,
}
REPRO_TRAIN = [str(BIN / "dvc"), "repro", "--single-item", "train"]


def _env(root: Path, prefect_api: str) -> dict[str, str]:
    return project_env(root, prefect_api, OMP_NUM_THREADS="1")  # one float reduction order


@pytest.fixture(scope="module")
def template3d(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> Iterator[tuple[Path, Path]]:
    """A project whose validate, plan and preprocess stages ran (3D patch mode), and the folds of
    one uninterrupted training of its plan's params, trained in this process."""
    from components.core import layout
    from components.data.splits import read_splits
    from components.params.config import load_params
    from components.params.edit import apply_overrides
    from components.training.loop import train_fold

    base = tmp_path_factory.mktemp("resume3d")
    root = base / "proj"
    root.mkdir()
    copy_project(root)
    env = _env(root, prefect_api)
    apply_overrides(root / "params.yaml", TINY_3D)
    run(["git", "init", "-q", "-b", "main"], root, env)
    run([str(BIN / "dvc"), "init", "-q"], root, env)
    run([str(BIN / "segflow"), "generate", "--dims", "3", "--out", "data/raw"], root, env)
    run(["git", "add", "-A"], root, env)
    run(["git", "commit", "-qm", "tiny 3D project"], root, env)
    run([str(BIN / "dvc"), "repro", "preprocess"], root, env)  # validate, plan, preprocess

    params = load_params(root / layout.RESOLVED_PARAMS)
    assert params.preprocess.spatial_mode == "patch" and params.train.model.name == "dynunet"
    ref = base / "reference"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as OMP_NUM_THREADS=1 does in the stage processes
    os.environ["SEGFLOW_THREADS"] = "1"  # the fold setup applies it (components/core/threads.py)
    cwd = Path.cwd()
    os.chdir(root)  # relative paths in the plan's params (data.dir) are the project's
    try:
        splits = read_splits(root / layout.SPLITS)
        for fold in params.folds:
            train_fold(params, fold, splits, root / layout.PREPARED, ref / f"fold_{fold}")
    finally:
        os.chdir(cwd)
        torch.set_num_threads(threads)
        os.environ.pop("SEGFLOW_THREADS", None)
    yield root, ref


def test_sigkill_mid_fold_of_a_3d_patch_training_resumes_to_the_uninterrupted_result(
    template3d: tuple[Path, Path], tmp_path: Path, prefect_api: str
) -> None:
    root = tmp_path / "proj"
    shutil.copytree(template3d[0], root, symlinks=True)
    env = _env(root, prefect_api)
    proc = subprocess.Popen(
        REPRO_TRAIN, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    pid = _training_pid(proc)
    state = _freeze_at_epoch(proc, pid, root, fold=1, epoch=2)
    killed_at = _next_epoch(state)  # read while stopped: the last complete epoch the kill leaves
    os.kill(pid, signal.SIGKILL)
    out, _ = proc.communicate(timeout=LIVENESS_S)
    assert proc.returncode != 0, out
    assert 2 <= killed_at < EPOCHS, "killed too late to test a resume"
    assert not (root / "models/folds").exists()

    rerun = run(REPRO_TRAIN, root, env)
    log = rerun.stdout + rerun.stderr
    assert "fold 0: finished earlier, restored" in log
    assert f"fold 1: resuming from epoch {killed_at} (of {EPOCHS})" in log
    _assert_same_as_reference(root, template3d[1])  # weights and history, bit for bit

    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    record = json.loads((root / "models/folds/run.json").read_text())
    for fold, run_id in record["fold_run_ids"].items():
        finished = client.get_run(run_id)
        assert finished.info.status == "FINISHED", fold
        steps = sorted(m.step for m in client.get_metric_history(run_id, "val_dice"))
        assert steps == list(range(EPOCHS)), fold  # every epoch once, at its own step
        best = float(finished.data.metrics["best_val_dice"])
        history = (template3d[1] / f"fold_{fold}/history.csv").read_text().splitlines()
        header = history[0].split(",")
        ref_dice = max(float(row.split(",")[header.index("val_dice")]) for row in history[1:])
        assert best == pytest.approx(ref_dice, abs=1e-6), fold  # the metric an uninterrupted run ends with
