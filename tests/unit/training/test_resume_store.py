"""The train stage's resume folder (real files, a real MLflow SQLite store): the key separates
configurations, finished folds are recognised, publishing is all-or-nothing, runs are continued
or ended KILLED, never left RUNNING."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.core import layout
from components.tracking.tracker import Tracker
from components.training.resume_store import ResumeStore, resume_key
from flows.train import _drop_stale, _end_failed


def _prepared(root: Path, splits: str = '{"folds": [["a"], ["b"]]}') -> Path:
    prepared = root / "prepared"
    prepared.mkdir(parents=True, exist_ok=True)
    (prepared / layout.PREPARED_INFO.name).write_text('{"spec": 1}')
    (prepared / layout.SPLITS.name).write_text(splits)
    return prepared


def test_the_key_changes_with_the_params_and_the_prepared_data(tmp_path: Path) -> None:
    prepared = _prepared(tmp_path)
    key = resume_key({"train": {"epochs": 5}}, prepared)
    assert key == resume_key({"train": {"epochs": 5}}, prepared)
    assert key != resume_key({"train": {"epochs": 6}}, prepared)
    _prepared(tmp_path, '{"folds": [["b"], ["a"]]}')
    assert key != resume_key({"train": {"epochs": 5}}, prepared)


def _finish_fold(store: ResumeStore, fold: int) -> None:
    folder = store.fold_dir(fold)
    folder.mkdir(parents=True, exist_ok=True)
    for name in (layout.BEST_CHECKPOINT, layout.LAST_CHECKPOINT, layout.HISTORY):
        (folder / name).write_text(f"{name} of fold {fold}")


def test_finished_folds_and_publishing(tmp_path: Path) -> None:
    store = ResumeStore.open(tmp_path / "resume", "k1")
    _finish_fold(store, 0)
    assert store.finished(0) is None  # files, but its run did not end yet
    store.mark_finished(0, {"run_id": "r0", "best_val_dice": 0.5})
    assert store.finished(0) == {"run_id": "r0", "best_val_dice": 0.5}
    (store.fold_dir(0) / layout.HISTORY).unlink()
    assert store.finished(0) is None  # a final file gone: train it again

    _finish_fold(store, 0)
    _finish_fold(store, 1)
    dest = tmp_path / "models/folds"
    dest.mkdir(parents=True)
    (dest / "stale.txt").write_text("from an earlier training")

    def fail(tmp: Path) -> None:
        raise RuntimeError("killed while publishing")

    with pytest.raises(RuntimeError):
        store.publish([0, 1], dest, fail)
    assert sorted(p.name for p in dest.iterdir()) == ["stale.txt"]  # the old output, untouched
    assert not dest.with_name("folds.tmp").exists()  # and no half-built one next to it

    store.publish([0, 1], dest, lambda tmp: (tmp / "run.json").write_text("{}"))
    assert sorted(p.name for p in dest.iterdir()) == ["fold_0", "fold_1", "run.json"]
    assert (dest / "fold_1/history.csv").read_text() == "history.csv of fold 1"
    assert not dest.with_name("folds.tmp").exists()
    store.remove()
    assert not store.root.exists() and (dest / "fold_0/best.pt").exists()


def test_runs_are_reopened_and_stale_ones_end_killed(tmp_path: Path) -> None:
    tracker = Tracker("resume-test", uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    old = ResumeStore.open(tmp_path / "resume", "old-params")
    stale_parent = tracker.start_run("pipeline-old")
    stale_fold = tracker.start_run("fold-0", parent_id=stale_parent)
    done_fold = tracker.start_run("fold-1", parent_id=stale_parent)
    tracker.end_run(done_fold)
    old.update_runs(parent=stale_parent, fold=(0, stale_fold))
    old.update_runs(fold=(1, done_fold))
    assert json.loads((old.root / "runs.json").read_text())["folds"] == {"0": stale_fold, "1": done_fold}

    current = ResumeStore.open(tmp_path / "resume", "new-params")
    assert current.stale() == [old.root]
    _drop_stale(tracker, current)
    assert tracker.run_status(stale_parent) == tracker.run_status(stale_fold) == "KILLED"
    assert tracker.run_status(done_fold) == "FINISHED"  # only RUNNING runs are ended
    assert not old.root.exists() and current.root.exists()

    # A killed run is continued by a resume, and ends KILLED again on a stop, FAILED on an error.
    assert tracker.reopen_run(stale_fold) and tracker.run_status(stale_fold) == "RUNNING"
    _end_failed(tracker, stale_fold, KeyboardInterrupt())
    assert tracker.run_status(stale_fold) == "KILLED"
    tracker.reopen_run(stale_fold)
    _end_failed(tracker, stale_fold, ValueError("boom"))
    assert tracker.run_status(stale_fold) == "FAILED"
    assert not tracker.reopen_run("0" * 32) and tracker.run_status("0" * 32) is None

    tracker.log_metrics(stale_fold, {"val_dice": 0.1}, step=0)
    tracker.log_metrics(stale_fold, {"val_dice": 0.2}, step=3)
    assert tracker.logged_steps(stale_fold, "val_dice") == {0, 3}
