"""train_fold on a tiny generated phantom set: history, best/last checkpoints, early stopping."""

from __future__ import annotations

import copy
import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from components.data.discovery import discover
from components.data.splits import Splits
from components.data.synthetic import generate_phantoms
from components.params.config import Params, parse_params
from components.preprocessing.pipeline import spec_from_params
from components.preprocessing.prepare import prepare_dataset
from components.training.checkpoint import load_checkpoint, model_spec_from_params
from components.training.fold_setup import setup_fold
from components.training.loop import train_fold, validate
from components.validation import build_metadata
from tests.data import HANDSET_PARAMS

REPO = Path(__file__).resolve().parents[3]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_params(**train: Any) -> Params:
    """The repo's params.yaml, shrunk: 32 px, 2 folds, a tiny U-Net on the CPU."""
    raw = yaml.safe_load(HANDSET_PARAMS.read_text())
    raw["preprocess"]["image_size"] = [32, 32]
    raw["preprocess"]["splits"]["n_folds"] = 2
    raw["train"].update(
        epochs=2,
        device="cpu",
        model={"name": "unet", "kwargs": {"base_channels": 8, "depth": 2}},
    )
    for key, value in train.items():
        raw["train"][key] = copy.deepcopy(value)
    return parse_params(raw)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Splits]:
    root = tmp_path_factory.mktemp("loop")
    data = generate_phantoms(root / "raw", n_cases=12, size=48)
    meta = build_metadata(discover(data), [0, 1, 2, 3], root=data)
    params = make_params()
    splits = prepare_dataset(meta, data, params, spec_from_params(params), root / "prepared")
    return root / "prepared", splits


def read_history(path: Path) -> list[dict[str, float]]:
    with path.open() as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def rescore(checkpoint: Path, prepared_dir: Path, splits: Splits, params: Params) -> dict[str, float]:
    """Fold 0 validation scores of a loaded checkpoint, through the loop's own setup (same loss,
    whose CE weights come from the training split's class frequencies) and validation code."""
    model, _, _ = load_checkpoint(checkpoint)
    setup = setup_fold(params, 0, splits, prepared_dir)
    setup.model.load_state_dict(model.state_dict())
    return validate(setup)


def test_train_fold_history_and_checkpoints(tmp_path: Path, prepared: tuple[Path, Splits]) -> None:
    prepared_dir, splits = prepared
    params = make_params()
    logged: list[tuple[int, dict[str, float]]] = []

    def log(metrics: Mapping[str, float], epoch: int) -> None:
        logged.append((epoch, dict(metrics)))

    result = train_fold(params, 0, splits, prepared_dir, tmp_path / "fold_0", log_metrics=log)

    assert result.fold == 0 and result.epochs_run == 2
    assert result.train_images_per_s > 0
    history = read_history(result.history)
    assert len(history) == params.train.epochs
    assert [r["epoch"] for r in history] == [0.0, 1.0]
    fg = params.data.class_names[1:]
    expected_cols = {"epoch", "train_loss", "lr", "val_loss", "val_dice", *(f"val_dice_{c}" for c in fg)}
    assert set(history[0]) == expected_cols
    for row in history:
        assert np.isfinite(row["train_loss"]) and np.isfinite(row["val_loss"])
        assert 0.0 <= row["val_dice"] <= 1.0
    # Every epoch went to the metric logger, without the epoch column.
    assert [e for e, _ in logged] == [0, 1]
    assert set(logged[0][1]) == expected_cols - {"epoch"}
    assert logged[1][1]["val_dice"] == pytest.approx(history[1]["val_dice"])

    # best = the first epoch with the highest val_dice.
    dices = [r["val_dice"] for r in history]
    assert result.best_epoch == int(np.argmax(dices))
    assert result.best_val_dice == pytest.approx(max(dices))
    best = torch.load(result.best_checkpoint, weights_only=False)
    last = torch.load(result.last_checkpoint, weights_only=False)
    assert best["extra"]["epoch"] == result.best_epoch and best["extra"]["fold"] == 0
    assert best["extra"]["val_dice"] == pytest.approx(result.best_val_dice)
    assert last["extra"]["epoch"] == 1

    # The checkpoints rebuild the very networks that produced the recorded validation scores: the
    # (continuous) validation loss differs between the epochs and is reproduced by each checkpoint.
    _, mspec, pspec = load_checkpoint(result.best_checkpoint)
    assert mspec == model_spec_from_params(params) and pspec == spec_from_params(params)
    assert history[0]["val_loss"] != history[1]["val_loss"]
    for path, row in (
        (result.best_checkpoint, history[result.best_epoch]),
        (result.last_checkpoint, history[-1]),
    ):
        scores = rescore(path, prepared_dir, splits, params)
        for key in ("val_loss", "val_dice", *(f"val_dice_{c}" for c in fg)):
            assert scores[key] == pytest.approx(row[key], rel=1e-5, nan_ok=True), key


def test_early_stopping_stops_when_the_monitor_cannot_improve(
    tmp_path: Path, prepared: tuple[Path, Splits]
) -> None:
    # Dice lies in [0, 1], so an improvement by more than min_delta=1 is impossible, whatever the
    # network does; lr 0 keeps the weights fixed as well.
    params = make_params(
        epochs=5,
        optimizer={"name": "adamw", "kwargs": {"lr": 0.0}},
        scheduler={"name": "none"},
        early_stopping={"monitor": "val_dice", "mode": "max", "patience": 1, "min_delta": 1.0},
        class_aware_sampling=True,
    )
    prepared_dir, splits = prepared
    result = train_fold(params, 1, splits, prepared_dir, tmp_path / "fold_1")
    assert result.epochs_run == 2  # epoch 0 sets the best, epoch 1 is the one bad epoch allowed
    assert len(read_history(result.history)) == 2
    assert result.best_epoch == 0
    assert torch.load(result.last_checkpoint, weights_only=False)["extra"]["epoch"] == 1
    assert {r["lr"] for r in read_history(result.history)} == {0.0}
