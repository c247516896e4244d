"""The MLflow tracker against a real SQLite store: runs by id, parent/child, params, metrics, artifacts."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

from components.tracking.tracker import (
    DEFAULT_TRACKING_URI,
    EXPERIMENT_KIND_TAG,
    MODEL_TRAINING_KIND,
    Tracker,
    flatten,
    tracking_uri,
)


def test_tracking_uri_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////somewhere/else.db")
    assert tracking_uri() == "sqlite:////somewhere/else.db"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert tracking_uri() == DEFAULT_TRACKING_URI == "sqlite:///mlflow.db"


def test_flatten() -> None:
    nested = {"train": {"lr": 0.1, "opt": {"name": "adamw"}, "sizes": [1, 2]}, "none": None, "pair": (3, 4)}
    assert flatten(nested) == {
        "train.lr": "0.1",
        "train.opt.name": "adamw",
        "train.sizes": "[1, 2]",
        "none": "None",
        "pair": "[3, 4]",
    }


def test_experiment_is_created_once(store: str, tracker: Tracker) -> None:
    again = Tracker("segflow-unit", uri=store)
    assert again.experiment_id == tracker.experiment_id
    other = Tracker("segflow-unit-other", uri=store)
    assert other.experiment_id != tracker.experiment_id
    assert tracker.client.get_experiment(tracker.experiment_id).name == "segflow-unit"


def test_parent_and_child_runs(tracker: Tracker) -> None:
    parent = tracker.start_run("pipeline", tags={"segflow.stage": "train"})
    children = [tracker.start_run(f"fold-{k}", parent_id=parent) for k in range(2)]
    run = tracker.client.get_run(children[1])
    assert run.info.run_name == "fold-1"
    assert run.data.tags["mlflow.parentRunId"] == parent
    assert "mlflow.parentRunId" not in tracker.client.get_run(parent).data.tags
    assert tracker.client.get_run(parent).data.tags["segflow.stage"] == "train"
    found = tracker.client.search_runs(
        [tracker.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent}'"
    )
    assert sorted(r.info.run_id for r in found) == sorted(children)

    tracker.end_run(children[0])
    tracker.end_run(children[1], ok=False)
    assert tracker.client.get_run(children[0]).info.status == "FINISHED"
    assert tracker.client.get_run(children[1]).info.status == "FAILED"
    assert tracker.client.get_run(parent).info.status == "RUNNING"


def test_log_params_flattens_and_batches(tracker: Tracker) -> None:
    run = tracker.start_run("params")
    many = {f"k{i:03d}": i for i in range(230)}  # more than one batch of 100
    tracker.log_params(
        run, {"train": {"lr": 0.003, "loss": [{"name": "dice"}]}, "long": "x" * 7000, "many": many}
    )
    params = tracker.client.get_run(run).data.params
    assert params["train.lr"] == "0.003"
    assert json.loads(params["train.loss"]) == [{"name": "dice"}]
    assert params["long"] == "x" * 6000  # MLflow's limit for a param value
    assert params["many.k000"] == "0" and params["many.k229"] == "229"
    assert len(params) == 3 + 230


def test_log_metrics_skips_non_finite_values(tracker: Tracker) -> None:
    run = tracker.start_run("metrics")
    tracker.log_metrics(
        run,
        {"val_dice": 0.5, "nan": float("nan"), "inf": float("inf"), "none": None, "dice±sd": 0.1},  # type: ignore[dict-item]
        step=3,
    )
    tracker.log_metrics(run, {"val_dice": 0.7}, step=4)
    tracker.log_metrics(run, {"final": 1.0})
    metrics = tracker.client.get_run(run).data.metrics
    assert set(metrics) == {"val_dice", "dice_pm_sd", "final"}
    history = tracker.client.get_metric_history(run, "val_dice")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [(3, 0.5), (4, 0.7)]
    assert [m.step for m in tracker.client.get_metric_history(run, "final")] == [0]


def test_tags_dicts_and_artifacts(tracker: Tracker, tmp_path: Path) -> None:
    run = tracker.start_run("artifacts")
    tracker.set_tags(run, {"segflow.params_sha256": "abc", "number": 3})  # type: ignore[dict-item]
    tags = tracker.client.get_run(run).data.tags
    assert tags["segflow.params_sha256"] == "abc" and tags["number"] == "3"

    tracker.log_dict(run, {"a": 1, "b": [1, 2]}, "reports/cfg.json")
    (tmp_path / "one.txt").write_text("1")
    folder = tmp_path / "plots"
    folder.mkdir()
    (folder / "x.png").write_bytes(b"png")
    (folder / "y.png").write_bytes(b"png")
    tracker.log_artifact(run, tmp_path / "one.txt")
    tracker.log_artifact(run, folder, "reports/plots")
    client = tracker.client
    assert {a.path for a in client.list_artifacts(run)} == {"one.txt", "reports"}
    assert {a.path for a in client.list_artifacts(run, "reports/plots")} == {
        "reports/plots/x.png",
        "reports/plots/y.png",
    }
    cfg = client.download_artifacts(run, "reports/cfg.json", str(tmp_path))
    assert json.loads(Path(cfg).read_text()) == {"a": 1, "b": [1, 2]}


def test_experiments_are_marked_for_model_training(store: str, tracker: Tracker) -> None:
    """So that MLflow 3's UI opens them on the training runs, not the GenAI traces view."""
    exp = tracker.client.get_experiment(tracker.experiment_id)
    assert exp.tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING_KIND
    legacy = tracker.client.create_experiment("made-without-the-tag")
    Tracker("made-without-the-tag", uri=store)
    assert tracker.client.get_experiment(legacy).tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING_KIND


@pytest.mark.parametrize(
    ("error", "last_stage", "status"),
    [
        (None, False, "RUNNING"),
        (None, True, "FINISHED"),
        (RuntimeError("x"), False, "FAILED"),
        (KeyboardInterrupt(), True, "KILLED"),
    ],
)
def test_the_parent_run_spans_the_stages_and_records_how_they_ended(
    store: str, tracker: Tracker, error: BaseException | None, last_stage: bool, status: str
) -> None:
    from components.tracking.run_record import RunRecord, parent_run_outcome

    parent = tracker.start_run("pipeline-outcome")
    record = RunRecord(store, "segflow-unit", parent, {})
    expected = pytest.raises(type(error)) if error is not None else contextlib.nullcontext()
    with expected, parent_run_outcome(record, last_stage=last_stage):
        if error is not None:
            raise error
    assert tracker.client.get_run(parent).info.status == status
