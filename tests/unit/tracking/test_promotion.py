"""Registering the packaged ensemble and the champion/challenger gate, on a real MLflow SQLite store."""

from __future__ import annotations

import uuid
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.exceptions import MlflowException

from components.ensembling.packaging import log_ensemble_model
from components.preprocessing.pipeline import PreprocessSpec
from components.tracking.promotion import (
    CHALLENGER,
    CHAMPION,
    TAG_SPLIT,
    TAG_TEST_DICE,
    champion_per_case,
    register_and_gate,
)
from components.tracking.tracker import Tracker
from components.training.checkpoint import ModelSpec, save_checkpoint


class ScoreSpy:
    """A plain scoring callback: returns a fixed Dice and remembers the URIs it was asked about."""

    def __init__(self, value: float) -> None:
        self.value, self.calls = value, []

    def __call__(self, uri: str) -> float:
        self.calls.append(uri)
        return self.value


@pytest.fixture(scope="module")
def logged(tracker: Tracker, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(model URI, run id) of a real packaged ensemble of one tiny untrained U-Net."""
    root = tmp_path_factory.mktemp("ckpt")
    mspec = ModelSpec("unet", 1, 3, {"base_channels": 8, "depth": 2})
    torch.manual_seed(0)
    save_checkpoint(
        root / "fold_0.pt", mspec.build(), mspec, PreprocessSpec((32, 32), "resize", "minmax", {}, 1), {}
    )
    run = tracker.start_run("ensemble")
    uri = log_ensemble_model(tracker.uri, run, [root / "fold_0.pt"], False, ["background", "a", "b"], 1)
    return uri, run


@pytest.fixture
def name() -> str:
    return f"seg-{uuid.uuid4().hex[:8]}"


def alias_version(tracker: Tracker, name: str, alias: str) -> str:
    return str(tracker.client.get_model_version_by_alias(name, alias).version)


def test_log_ensemble_model_returns_a_loadable_uri(logged: tuple[str, str]) -> None:
    uri, _ = logged
    assert uri.startswith("models:/")
    model = mlflow.pyfunc.load_model(uri)
    out = np.asarray(model.predict(np.zeros((1, 19, 23, 1), np.float32), params={"output": "probabilities"}))
    assert out.shape == (1, 3, 19, 23)


def test_first_version_becomes_champion(tracker: Tracker, logged: tuple[str, str], name: str) -> None:
    uri, run = logged
    score = ScoreSpy(0.0)
    reg = register_and_gate(tracker, uri, name, 0.7, "split-a", {"mlflow_run_id": run, "k": "v"}, score)
    assert (reg.name, reg.version, reg.alias) == (name, "1", CHAMPION)
    assert reg.champion_dice is None and reg.test_dice == 0.7 and "first version" in reg.reason
    assert alias_version(tracker, name, CHAMPION) == "1"
    tags = tracker.client.get_model_version(name, "1").tags
    assert tags[TAG_TEST_DICE] == "0.700000" and tags[TAG_SPLIT] == "split-a"
    assert tags["k"] == "v" and tags["mlflow_run_id"] == run and tags["segflow.gate"] == reg.reason
    assert score.calls == []
    # The champion alias resolves to a loadable model.
    assert mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}") is not None


def test_gate_on_the_same_split(tracker: Tracker, logged: tuple[str, str], name: str) -> None:
    uri, _ = logged
    score = ScoreSpy(0.0)
    register_and_gate(tracker, uri, name, 0.7, "split-a", {}, score)

    better = register_and_gate(tracker, uri, name, 0.8, "split-a", {}, score)
    assert (better.version, better.alias, better.champion_dice) == ("2", CHAMPION, pytest.approx(0.7))
    assert alias_version(tracker, name, CHAMPION) == "2"

    worse = register_and_gate(tracker, uri, name, 0.6, "split-a", {}, score)
    assert (worse.version, worse.alias, worse.champion_dice) == ("3", CHALLENGER, pytest.approx(0.8))
    assert "0.6000 < champion v2 0.8000" in worse.reason
    assert alias_version(tracker, name, CHAMPION) == "2"  # unchanged
    assert alias_version(tracker, name, CHALLENGER) == "3"

    tie = register_and_gate(tracker, uri, name, 0.8, "split-a", {}, score)
    assert tie.alias == CHAMPION and alias_version(tracker, name, CHAMPION) == "4"  # not worse = promoted
    assert score.calls == []  # the champion's stored test Dice was used every time


@pytest.mark.parametrize(("rescored", "alias"), [(0.5, CHAMPION), (0.65, CHALLENGER)])
def test_champion_tested_on_another_split_is_rescored(
    tracker: Tracker, logged: tuple[str, str], name: str, rescored: float, alias: str
) -> None:
    uri, _ = logged
    register_and_gate(tracker, uri, name, 0.9, "split-a", {}, ScoreSpy(0.0))
    score = ScoreSpy(rescored)
    reg = register_and_gate(tracker, uri, name, 0.6, "split-b", {}, score)
    assert score.calls == [f"models:/{name}@{CHAMPION}"]
    assert reg.champion_dice == pytest.approx(rescored)  # not the 0.9 measured on split-a
    assert reg.alias == alias
    assert alias_version(tracker, name, CHAMPION) == ("2" if alias == CHAMPION else "1")


def test_champion_per_case_only_for_the_same_split(
    tracker: Tracker, logged: tuple[str, str], name: str, tmp_path: Path
) -> None:
    uri, _ = logged
    assert champion_per_case(tracker, name, "split-a") is None  # no champion yet
    run = tracker.start_run("ensemble-with-report")
    table = pd.DataFrame({"case_id": ["c1", "c2"], "class": [1, 1], "dice": [0.5, 0.75]})
    (tmp_path / "per_case.csv").write_text(table.to_csv(index=False))
    tracker.log_artifact(run, tmp_path / "per_case.csv", "reports/test")
    register_and_gate(tracker, uri, name, 0.7, "split-a", {"mlflow_run_id": run}, ScoreSpy(0.0))
    got = champion_per_case(tracker, name, "split-a")
    assert got is not None
    pd.testing.assert_frame_equal(got, table)
    assert champion_per_case(tracker, name, "split-b") is None


def test_unknown_model_has_no_champion(tracker: Tracker, name: str) -> None:
    with pytest.raises(MlflowException):
        tracker.client.get_model_version_by_alias(name, CHAMPION)
    assert champion_per_case(tracker, name, "any") is None
