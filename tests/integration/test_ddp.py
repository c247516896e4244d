"""``train.ddp.nproc_per_node: 2``: a fold trains with DDP in two torchrun processes (gloo on the
CPU) under the real train flow: rank 0 writes one set of checkpoints (plain module keys, loadable
into the network), the history and the resumable state; it logs every epoch once to the fold's
MLflow run, which records the process group it came from. SIGTERM to the stage stops both
processes, ends the fold's run KILLED and keeps the last complete epoch; the rerun resumes it."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil  # type: ignore[import-untyped]  # a dependency of dvc
import pytest
import torch
from mlflow.tracking import MlflowClient

from components.core import layout
from components.models import build_model
from flows.runtime.ddp_fold import DDP_TAG
from tests.integration.conftest import prepared_project, resolve_as_written, tiny_training, train_in_process

pytestmark = [pytest.mark.slow, pytest.mark.scaleout]

EXPERIMENT = "segflow-ddp"
EPOCHS = 3
# the kill tests' length: at a few epochs a second, fold 0 must still be training when the signal
# lands after the poll, the process checks and the signal's way through the flow to torchrun (10 epochs
# once ended before SIGTERM arrived under a CI run's load)
KILL_EPOCHS = 40
TINY = tiny_training(EPOCHS, EXPERIMENT, train__folds=[0], train__ddp__nproc_per_node=2)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git project with prepared phantoms (the train stage's inputs) and 2 DDP processes per fold."""
    return prepared_project(tmp_path_factory.mktemp("ddp") / "proj", TINY)


def _copy(template: Path, dest: Path, epochs: int = EPOCHS) -> Path:
    from components.params.edit import apply_overrides

    shutil.copytree(template, dest, symlinks=True)
    apply_overrides(dest / "params.yaml", {"train.epochs": epochs})
    resolve_as_written(dest)  # the train stage reads the resolved params
    return dest


def _env(root: Path, prefect_api: str) -> dict[str, str]:
    return {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "PREFECT_API_URL": prefect_api,
    }


@pytest.fixture(scope="module")
def trained(template: Path, tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> Path:
    """The template's train stage run in this process (the real train flow), 2 DDP processes per fold."""
    root = _copy(template, tmp_path_factory.mktemp("ddp-run") / "proj")
    with pytest.MonkeyPatch.context() as m:
        train_in_process(root, prefect_api, _env(root, prefect_api), m)
    return root


def test_rank_0_writes_one_fold_folder_with_plain_module_checkpoints(trained: Path) -> None:
    root = trained
    folds = root / layout.FOLDS
    assert sorted(p.name for p in folds.iterdir() if p.is_dir()) == ["fold_0"]  # train.folds: [0]
    fold = layout.fold_dir(0, folds)
    assert sorted(p.name for p in fold.iterdir()) == sorted(
        [layout.BEST_CHECKPOINT, layout.LAST_CHECKPOINT, layout.HISTORY]
    )  # no spec, result, error or state file of the DDP processes among the stage's outputs
    net = build_model("unet", 1, 4, base_channels=8, depth=2)
    for name in (layout.BEST_CHECKPOINT, layout.LAST_CHECKPOINT):
        state = torch.load(fold / name, weights_only=True)["state_dict"]
        assert not any(k.startswith("module.") for k in state)  # the network's, not the DDP wrapper's
        net.load_state_dict(state)  # strict: every key of the network, nothing else
    with (fold / layout.HISTORY).open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(float(r["epoch"])) for r in rows] == list(range(EPOCHS))
    assert all(math.isfinite(float(r["train_loss"])) and 0 <= float(r["val_dice"]) <= 1 for r in rows)


def test_the_fold_run_came_from_a_two_process_gloo_group_and_logged_each_epoch_once(
    trained: Path,
) -> None:
    root = trained
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    exp = client.get_experiment_by_name(EXPERIMENT)
    runs = [r for r in client.search_runs([exp.experiment_id]) if "segflow.fold" in r.data.tags]
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.tags[DDP_TAG] == "2 processes, gloo"
    for key in ("train_loss", "val_dice"):
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        assert sorted(steps) == list(range(EPOCHS)), key  # rank 0 only, once per epoch
    assert 0 <= run.data.metrics["best_val_dice"] <= 1
    arts = [a.path for a in client.list_artifacts(run.info.run_id, "checkpoint")]
    assert arts == [f"checkpoint/{layout.BEST_CHECKPOINT}"]


def _next_epoch(state: Path) -> int:
    try:
        return int(torch.load(state, weights_only=True)["progress"]["next_epoch"])
    except (FileNotFoundError, RuntimeError, EOFError, KeyError):
        return -1


def _train_until_epoch(
    root: Path, env: dict[str, str], epoch: int
) -> tuple[subprocess.Popen[str], Path, list[psutil.Process]]:
    """Start the train stage; once fold 0 has ``epoch`` complete epochs: the process, the fold's
    state file and the processes of its DDP fold (torchrun and its two)."""
    cmd = [sys.executable, "-m", "flows.train"]
    proc = subprocess.Popen(
        cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline, state = time.monotonic() + 300, None
    while time.monotonic() < deadline and proc.poll() is None:
        found = list((root / ".segflow/resume/train").glob("*/fold_0/state.pt"))
        if found and _next_epoch(found[0]) >= epoch:
            state = found[0]
            break
        time.sleep(0.1)
    assert state is not None, f"fold 0 did not reach epoch {epoch} with DDP"
    ranks = [
        c
        for c in psutil.Process(proc.pid).children(recursive=True)
        if "flows.runtime.ddp_fold" in c.cmdline()
    ]
    assert len(ranks) == 3, ranks  # torchrun (its command line names the module too) and its two
    return proc, state, ranks


def _gone(p: psutil.Process) -> bool:
    return not p.is_running() or p.status() == psutil.STATUS_ZOMBIE


def test_sigkill_of_the_stage_stops_the_ddp_processes_too(
    template: Path, tmp_path: Path, prefect_api: str
) -> None:
    root = _copy(template, tmp_path / "proj", epochs=KILL_EPOCHS)
    proc, state, ranks = _train_until_epoch(root, _env(root, prefect_api), 1)
    proc.kill()
    proc.communicate(timeout=60)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not all(_gone(r) for r in ranks):
        time.sleep(0.2)
    assert all(_gone(r) for r in ranks), [r.cmdline() for r in ranks if not _gone(r)]  # none trains on
    assert 1 <= _next_epoch(state) < KILL_EPOCHS  # still a complete epoch to resume from
    assert not (root / layout.FOLDS).exists()


def test_sigterm_stops_both_processes_run_killed_then_rerun_resumes(
    template: Path, tmp_path: Path, prefect_api: str
) -> None:
    root = _copy(template, tmp_path / "proj", epochs=KILL_EPOCHS)
    env = _env(root, prefect_api)
    proc, state, ranks = _train_until_epoch(root, env, 2)
    workers = [r for r in ranks if "torch.distributed.run" not in r.cmdline()]
    listening = {
        c.laddr.ip for r in workers for c in r.net_connections("inet") if c.status == psutil.CONN_LISTEN
    }
    assert listening and listening <= {"127.0.0.1", "::1"}, listening  # gloo on loopback only
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode != 0, out
    assert out.count("SIGTERM received") >= 2, out[-3000:]  # the flow and the DDP processes
    assert all(_gone(r) for r in ranks)  # none left
    assert 2 <= _next_epoch(state) < KILL_EPOCHS
    runs = json.loads((state.parent.parent / "runs.json").read_text())
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    assert client.get_run(runs["folds"]["0"]).info.status == "KILLED"
    assert client.get_run(runs["parent"]).info.status == "KILLED"
    assert not (root / layout.FOLDS).exists()

    rerun = subprocess.run(
        [sys.executable, "-m", "flows.train"], cwd=root, env=env, capture_output=True, text=True, timeout=600
    )
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "fold 0: resuming from epoch" in rerun.stdout + rerun.stderr
    record = json.loads((root / layout.FOLDS / layout.RUN_RECORD.name).read_text())
    assert record["fold_run_ids"]["0"] == runs["folds"]["0"]  # the KILLED run, continued
    steps = [m.step for m in client.get_metric_history(runs["folds"]["0"], "val_dice")]
    assert sorted(steps) == list(range(KILL_EPOCHS))  # every epoch once across both attempts
