"""Two configurations in one train stage: each has its params, tagged runs and resume folder (the
second inside the first's), both publish into models/folds in one rename (the first's folds where a
single configuration's are, the second's under its name), the run record names every fold run, and
a superseded training's second-configuration runs end KILLED too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.core import layout
from components.params.config import Params, load_yaml, parse_params
from components.params.configurations import load_configurations, run_configurations
from components.tracking.run_record import RunRecord
from components.tracking.tracker import Tracker
from components.training.resume_store import ResumeStore
from flows.runtime.fold_jobs import CONFIGURATION_TAG, fold_jobs, publish_folds
from flows.train import _drop_stale
from tests.data import HANDSET_PARAMS

RAW = load_yaml(HANDSET_PARAMS.read_text())


def _raw(configurations: object) -> dict:
    train = {**RAW["train"], "folds": [0, 1]}
    return {**RAW, "train": train, "plan": {**RAW.get("plan", {}), "configurations": configurations}}


def _params(configurations: object) -> Params:
    return parse_params(_raw(configurations))


def _finish(store: ResumeStore, fold: int, text: str) -> None:
    folder = store.fold_dir(fold)
    folder.mkdir(parents=True, exist_ok=True)
    for name in (layout.BEST_CHECKPOINT, layout.LAST_CHECKPOINT, layout.HISTORY):
        (folder / name).write_text(f"{text} {name}")


def test_where_each_configurations_params_and_folds_are() -> None:
    resolved = Path("plans/params.yaml")
    hand = run_configurations(_params("auto"), resolved)
    assert [(c.name, c.params_path, c.folds_dir) for c in hand] == [(None, resolved, layout.FOLDS)]
    one = run_configurations(_params(["3d"]), resolved)
    assert [(c.name, c.folds_dir, c.first) for c in one] == [("3d", layout.FOLDS, True)]
    two = run_configurations(_params(["3d", "2d"]), resolved)
    assert [(c.name, str(c.params_path), str(c.folds_dir)) for c in two] == [
        ("3d", "plans/params.yaml", "models/folds"),
        ("2d", "plans/params-2d.yaml", "models/folds/2d"),
    ]


def test_a_second_configurations_params_from_another_plan_are_refused(tmp_path: Path) -> None:
    import yaml

    (tmp_path / "params-2d.yaml").write_text(yaml.safe_dump(_raw(["3d"])))
    with pytest.raises(ValueError, match="come from different plans"):
        load_configurations(_params(["3d", "2d"]), tmp_path / "params.yaml")


def test_both_configurations_publish_into_models_folds_in_one_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    configs = [(c, _params(["3d", "2d"])) for c in run_configurations(_params(["3d", "2d"]), Path("p.yaml"))]
    store = ResumeStore.open(tmp_path / "resume", "key")
    jobs = fold_jobs(configs, store, {"segflow.git": "abc"})
    assert [j["tags"][CONFIGURATION_TAG] for j in jobs] == ["3d", "2d"]
    assert Path(jobs[1]["resume_root"]) == store.root / "2d"  # removed with the first's folder
    second = ResumeStore(Path(jobs[1]["resume_root"]))
    for k in (0, 1):
        _finish(store, k, "3d")
        _finish(second, k, "2d")
    record = RunRecord("sqlite:///x.db", "e", "parent", {0: "a", 1: "b"}, {"2d": {0: "c", 1: "d"}})
    publish_folds(configs, jobs, record, store)
    folds = tmp_path / layout.FOLDS
    assert (folds / "fold_1/best.pt").read_text() == "3d best.pt"
    assert (folds / "2d/fold_1/best.pt").read_text() == "2d best.pt"
    assert json.loads((folds / "run.json").read_text())["configuration_runs"] == {"2d": {"0": "c", "1": "d"}}
    loaded = RunRecord.load(folds / "run.json")
    assert loaded == record and loaded.all_fold_runs() == ["a", "b", "c", "d"]
    single = RunRecord("u", "e", "p", {0: "a"})
    single.save(tmp_path / "one.json")
    assert "configuration_runs" not in json.loads((tmp_path / "one.json").read_text())  # as before


def test_a_superseded_trainings_second_configuration_runs_end_killed(tmp_path: Path) -> None:
    tracker = Tracker("fold-jobs-test", uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    old = ResumeStore.open(tmp_path / "resume", "old")
    parent = tracker.start_run("pipeline-old")
    second_fold = tracker.start_run("2d fold-0", parent_id=parent)
    old.update_runs(parent=parent)
    ResumeStore.open(old.root, "2d").update_runs(fold=(0, second_fold))
    _drop_stale(tracker, ResumeStore.open(tmp_path / "resume", "new"))
    assert tracker.run_status(second_fold) == tracker.run_status(parent) == "KILLED"
    assert not old.root.exists()
