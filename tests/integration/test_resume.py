"""The train stage for real (subprocesses, Prefect server, MLflow SQLite, DVC): a SIGKILL mid-fold
resumes from the last complete epoch on rerun; a SIGTERM stops it within seconds with its runs
KILLED; both then end with exactly the metrics of an uninterrupted run."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings

from tests.integration.conftest import (
    BIN,
    copy_project,
    project_env,
    resolve_as_written,
    run,
    tiny_training,
    train_in_process,
)

pytestmark = pytest.mark.slow

EPOCHS = 16
TINY = tiny_training(EPOCHS, "segflow-resume", train__class_aware_sampling=True)
LIVENESS_S = 240  # generous: a stage process that hangs fails the test instead of the suite
FOLD_FILES = ("best.pt", "last.pt", "history.csv")


def _env(root: Path, prefect_api: str) -> dict[str, str]:
    # the same thread count in every run: the same float reduction order
    return project_env(root, prefect_api, OMP_NUM_THREADS="1")


TRAIN = [str(BIN / "python"), "-m", "flows.train"]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> Iterator[tuple[Path, Path]]:
    """A git + DVC project with prepared phantoms, and the folds of one uninterrupted training."""
    from components.data.discovery import discover
    from components.data.synthetic import generate_phantoms
    from components.params.edit import apply_overrides
    from components.preprocessing.pipeline import spec_from_params
    from components.preprocessing.prepare import prepare_dataset
    from components.training.loop import train_fold
    from components.validation import build_metadata

    base = tmp_path_factory.mktemp("resume")
    root = base / "proj"
    root.mkdir()
    copy_project(root)
    env = _env(root, prefect_api)
    run(["git", "init", "-q", "-b", "main"], root, env)
    run([str(BIN / "dvc"), "init", "-q"], root, env)
    params = apply_overrides(root / "params.yaml", TINY)
    resolve_as_written(root)  # the train stage reads the plan's resolved params
    data = generate_phantoms(root / "data/raw", n_cases=20, size=48, seed=0, n_patients=20)
    meta = build_metadata(discover(data), sorted(params.data.classes.values()), root=data)
    splits = prepare_dataset(meta, data, params, spec_from_params(params), root / "data/prepared")
    run(["git", "add", "-A"], root, env)
    run(["git", "commit", "-qm", "tiny project"], root, env)

    ref = base / "reference"  # the uninterrupted run: the same folds trained in this process
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as OMP_NUM_THREADS=1 does in the stage processes
    os.environ["SEGFLOW_THREADS"] = "1"  # the fold setup applies it (components/core/threads.py)
    try:
        for fold in params.folds:
            train_fold(params, fold, splits, root / "data/prepared", ref / f"fold_{fold}")
    finally:
        torch.set_num_threads(threads)
        os.environ.pop("SEGFLOW_THREADS", None)
    yield root, ref


@pytest.fixture
def workspace(template: tuple[Path, Path], tmp_path: Path, prefect_api: str) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "proj"
    shutil.copytree(template[0], root, symlinks=True)
    return root, _env(root, prefect_api)


def _output(proc: subprocess.Popen[str]) -> str:
    """What an ended process printed (its stdout is a pipe: the text, not the stream object)."""
    return proc.stdout.read() if proc.stdout else ""


def _resume_dir(root: Path) -> Path:
    keys = [p for p in (root / ".segflow/resume/train").iterdir() if p.is_dir()]
    assert len(keys) == 1, keys
    return keys[0]


def _next_epoch(state: Path) -> int:
    """Epochs the fold had completed when its state was last written (-1: no state yet)."""
    try:
        return int(torch.load(state, weights_only=True)["progress"]["next_epoch"])
    except (FileNotFoundError, RuntimeError, EOFError, KeyError):
        return -1


def _training_pid(proc: subprocess.Popen[str]) -> int:
    """The ``python -m flows.train`` process under ``dvc repro`` (waits for DVC to start it).

    DVC runs the command through ``$SHELL -c`` (``/bin/sh`` when unset); dash does not exec a lone
    command, so the shell, whose own command line holds the text, is a parent to skip: only the
    interpreter has ``-m flows.train`` as separate arguments."""
    import psutil

    deadline = time.monotonic() + LIVENESS_S
    while time.monotonic() < deadline:
        for child in psutil.Process(proc.pid).children(recursive=True):
            try:
                args = child.cmdline()
                if any(a == "-m" and b == "flows.train" for a, b in itertools.pairwise(args)):
                    return int(child.pid)
            except psutil.NoSuchProcess:
                continue
        if proc.poll() is not None:
            pytest.fail(f"dvc repro ended before it started the train stage:\n{_output(proc)}")
        time.sleep(0.05)
    raise AssertionError(f"no flows.train process under dvc repro after {LIVENESS_S} s")


def _freeze_at_epoch(proc: subprocess.Popen[str], pid: int, root: Path, fold: int, epoch: int) -> Path:
    """Stop (SIGSTOP) the training process once fold ``fold`` has ``epoch`` complete epochs.

    The state is read only while the process is stopped, so the epoch the test sees is the one the
    kill leaves: a fast epoch on an idle machine, or a descheduled test on a loaded one, cannot let
    the fold finish between the check and the kill."""
    deadline = time.monotonic() + LIVENESS_S
    while time.monotonic() < deadline:
        os.kill(pid, signal.SIGSTOP)
        base = root / ".segflow/resume/train"
        for state in base.glob(f"*/fold_{fold}/state.pt") if base.exists() else []:
            if _next_epoch(state) >= epoch:
                return state
        os.kill(pid, signal.SIGCONT)
        if proc.poll() is not None:
            pytest.fail(f"training ended before fold {fold} reached epoch {epoch}:\n{_output(proc)}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"fold {fold} did not reach epoch {epoch} in {LIVENESS_S} s")


def _assert_same_as_reference(root: Path, ref: Path) -> None:
    for fold in (0, 1):
        got, want = root / f"models/folds/fold_{fold}", ref / f"fold_{fold}"
        assert (got / "history.csv").read_bytes() == (want / "history.csv").read_bytes(), fold
        for name in ("best.pt", "last.pt"):
            a = torch.load(got / name, weights_only=True)["state_dict"]
            b = torch.load(want / name, weights_only=True)["state_dict"]
            assert all(torch.equal(a[k], b[k]) for k in b), (fold, name)


def _fold_runs(client: MlflowClient) -> dict[int, list]:
    exp = client.get_experiment_by_name("segflow-resume")
    runs = client.search_runs([exp.experiment_id])
    out: dict[int, list] = {}
    for r in runs:
        if "segflow.fold" in r.data.tags:
            out.setdefault(int(r.data.tags["segflow.fold"]), []).append(r)
    return out


def _assert_one_run_per_fold_finished(root: Path) -> None:
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    record = json.loads((root / "models/folds/run.json").read_text())
    for fold, runs in _fold_runs(client).items():
        assert [r.info.run_id for r in runs] == [record["fold_run_ids"][str(fold)]]  # continued, no duplicate
        assert runs[0].info.status == "FINISHED"
        steps = [m.step for m in client.get_metric_history(runs[0].info.run_id, "val_dice")]
        assert sorted(steps) == list(range(EPOCHS)), fold  # every epoch once, at its own step
    assert client.get_run(record["parent_run_id"]).info.status == "RUNNING"  # evaluate/ensemble end it


def test_sigkill_mid_fold_then_rerun_resumes_and_matches_an_uninterrupted_run(
    workspace: tuple[Path, dict[str, str]], template: tuple[Path, Path], prefect_api: str
) -> None:
    root, env = workspace
    repro = [str(BIN / "dvc"), "repro", "--single-item", "train"]
    proc = subprocess.Popen(
        repro, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    pid = _training_pid(proc)
    state = _freeze_at_epoch(proc, pid, root, fold=1, epoch=2)
    killed_at = _next_epoch(state)  # read while stopped: the last complete epoch the kill leaves
    os.kill(pid, signal.SIGKILL)
    out, _ = proc.communicate(timeout=LIVENESS_S)
    assert proc.returncode != 0, out
    assert 2 <= killed_at < EPOCHS, "killed too late to test a resume"

    # Nothing a later stage could take for valid, and DVC did not record the stage.
    assert not (root / "models/folds").exists()
    lock = root / "dvc.lock"
    assert not lock.exists() or "train" not in (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    runs = json.loads((_resume_dir(root) / "runs.json").read_text())
    assert client.get_run(runs["folds"]["1"]).info.status == "RUNNING"  # what a kill -9 leaves

    rerun = run(repro, root, env)
    log = rerun.stdout + rerun.stderr
    assert "fold 0: finished earlier, restored" in log
    assert f"fold 1: resuming from epoch {killed_at} (of {EPOCHS})" in log
    _assert_same_as_reference(root, template[1])
    _assert_one_run_per_fold_finished(root)
    record = json.loads((root / "models/folds/run.json").read_text())
    assert record["parent_run_id"] == runs["parent"]  # the interrupted attempt's parent, continued
    assert record["fold_run_ids"] == runs["folds"]
    assert not (root / ".segflow/resume/train").exists() or not any(
        (root / ".segflow/resume/train").iterdir()
    )
    assert "train" in yaml.safe_load(lock.read_text())["stages"]
    with temporary_settings(updates={PREFECT_API_URL: prefect_api}), get_client(sync_client=True) as prefect:
        killed = prefect.read_flow_run(UUID(runs["flow_run"])).state
    assert killed is not None and killed.is_crashed(), killed  # not RUNNING forever: the rerun tidied it


def test_sigterm_stops_within_seconds_runs_killed_then_rerun_matches(
    workspace: tuple[Path, dict[str, str]],
    template: tuple[Path, Path],
    prefect_api: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, env = workspace
    proc = subprocess.Popen(
        TRAIN, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    _freeze_at_epoch(proc, proc.pid, root, fold=0, epoch=1)
    # SIGTERM while stopped, then continue: the signal is the first thing the process sees, so fold 0
    # (16 epochs of seconds-long phantoms) cannot finish between the check and the stop
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    os.kill(proc.pid, signal.SIGCONT)
    out, _ = proc.communicate(timeout=LIVENESS_S)
    print(f"train exited {time.monotonic() - sent:.2f} s after SIGTERM (code {proc.returncode})")
    assert proc.returncode != 0, out
    assert "SIGTERM received" in out

    resume = _resume_dir(root)
    state = resume / "fold_0/state.pt"
    assert _next_epoch(state) >= 1  # the last complete epoch, resumable
    assert not (root / "models/folds").exists()
    runs = json.loads((resume / "runs.json").read_text())
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    assert client.get_run(runs["folds"]["0"]).info.status == "KILLED"
    assert client.get_run(runs["parent"]).info.status == "KILLED"
    with temporary_settings(updates={PREFECT_API_URL: prefect_api}), get_client(sync_client=True) as prefect:
        flow_state = prefect.read_flow_run(UUID(runs["flow_run"])).state
    assert flow_state is not None and not flow_state.is_running(), flow_state

    # The rerun, in this process (the same train flow on the real Prefect engine; no process start).
    train_in_process(root, prefect_api, {"MLFLOW_TRACKING_URI": env["MLFLOW_TRACKING_URI"]}, monkeypatch)
    record = json.loads((root / "models/folds/run.json").read_text())
    assert record["fold_run_ids"]["0"] == runs["folds"]["0"]  # the KILLED run, continued
    assert record["parent_run_id"] == runs["parent"]
    _assert_same_as_reference(root, template[1])
    _assert_one_run_per_fold_finished(root)
