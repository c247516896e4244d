"""The configuration chosen on cross-validation: the best single configuration or their ensemble by
out-of-fold case-mean foreground Dice, ties to the simpler; the ensemble's probabilities are the
mean of the configurations' recorded ones, case by case."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.evaluation.configurations import (
    ProbabilityTape,
    TapeMean,
    choose,
    comparison,
    comparison_metrics,
)
from components.evaluation.presentation import configurations_line
from components.evaluation.roc import StreamingROC
from components.evaluation.scoring import ScoredCases

ORDER = ["3d", "2d", "3d+2d"]


def test_the_highest_out_of_fold_dice_is_chosen() -> None:
    assert choose({"3d": 0.80, "2d": 0.82, "3d+2d": 0.81}, ORDER)[0] == "2d"
    chosen, reason = choose({"3d": 0.80, "2d": 0.78, "3d+2d": 0.83}, ORDER)
    assert chosen == "3d+2d" and "3d 0.8000, 2d 0.7800, 3d+2d 0.8300" in reason


def test_ties_go_to_the_simpler_configuration() -> None:
    assert choose({"3d": 0.8, "2d": 0.8, "3d+2d": 0.8}, ORDER)[0] == "3d"  # a single before the ensemble
    assert choose({"3d": 0.8, "2d": 0.8 + 5e-7, "3d+2d": 0.8}, ORDER)[0] == "3d"  # within the tie margin
    assert choose({"3d": 0.79, "2d": 0.8, "3d+2d": 0.8}, ORDER)[0] == "2d"
    assert choose({"3d": None, "2d": 0.1, "3d+2d": None}, ORDER)[0] == "2d"  # no Dice is never chosen
    assert "only configuration" in choose({"3d": 0.7}, ["3d"])[1]


def _scored(dice_per_case: list[tuple[str, str, float]]) -> ScoredCases:
    rows = pd.DataFrame(dice_per_case, columns=["case_id", "class_name", "dice"])
    return ScoredCases(rows.assign(fold=0), StreamingROC(3))


def test_the_comparison_names_the_members_scores_and_metrics() -> None:
    a = [("a", "tube", 0.9), ("a", "blob", 0.5), ("b", "tube", 0.7), ("b", "blob", 0.7)]  # 0.7
    b = [("a", "tube", 0.6), ("a", "blob", 0.6), ("b", "tube", 0.6), ("b", "blob", 0.6)]  # 0.6
    ens = [("a", "tube", 0.9), ("a", "blob", 0.8), ("b", "tube", 0.7), ("b", "blob", 0.8)]  # 0.8
    doc = comparison({"3d": _scored(a), "2d": _scored(b), "3d+2d": _scored(ens)}, ["3d", "2d"])
    assert (doc["chosen"], doc["members"]) == ("3d+2d", ["3d", "2d"])
    assert doc["candidates"]["3d"]["dice"] == pytest.approx(0.7)
    assert doc["candidates"]["3d"]["per_class"] == pytest.approx({"blob": 0.6, "tube": 0.8})
    assert doc["candidates"]["2d"]["n_cases"] == 2
    assert comparison_metrics(doc) == pytest.approx(
        {"cv_config_dice_3d": 0.7, "cv_config_dice_2d": 0.6, "cv_config_dice_ensemble": 0.8}
    )
    assert "chosen: **3d+2d**" in configurations_line(doc)
    single = comparison({"3d": _scored(a)}, ["3d"])
    assert (single["chosen"], single["members"]) == ("3d", ["3d"])


class _Fixed:
    """A predictor returning given probabilities in turn."""

    def __init__(self, outputs: list[np.ndarray]) -> None:
        self.outputs = list(outputs)

    def predict_proba(self, image: np.ndarray, spacing: object = None) -> np.ndarray:
        return self.outputs.pop(0)


def test_the_ensemble_is_the_mean_of_the_recorded_probabilities_case_by_case(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a = [rng.dirichlet([1, 1, 1], size=(4, 5)).transpose(2, 0, 1).astype(np.float32) for _ in range(3)]
    b = [rng.dirichlet([1, 1, 1], size=(4, 5)).transpose(2, 0, 1).astype(np.float32) for _ in range(3)]
    tapes = [ProbabilityTape(tmp_path / "3d"), ProbabilityTape(tmp_path / "2d")]
    for tape, outputs in zip(tapes, (a, b), strict=True):
        recording = tape.recording(_Fixed(outputs))
        seen = [recording.predict_proba(np.zeros((4, 5))) for _ in range(3)]
        np.testing.assert_array_equal(seen[1], outputs[1])  # passed through unchanged
    mean = TapeMean(tapes)
    for i in range(3):
        np.testing.assert_allclose(mean.predict_proba(np.zeros((4, 5))), (a[i] + b[i]) / 2, rtol=1e-6)
    with pytest.raises(IndexError, match="3 case"):
        mean.predict_proba(np.zeros((4, 5)))
    tapes[0].clear()
    assert not (tmp_path / "3d").exists()
