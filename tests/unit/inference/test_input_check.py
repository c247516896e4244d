"""Inputs far outside the training data are named; --strict refuses them."""

from __future__ import annotations

import numpy as np
import pytest

from components.inference.input_check import (
    InputOutsideTrainingError,
    check_inputs,
    input_warnings,
    training_ranges,
)

FP = {
    "ndim": 3,
    "channels": 1,
    "spacing": {"min": [0.8, 0.7, 0.7], "max": [1.5, 0.9, 0.9]},
    "shape": {"min": [30, 100, 100], "max": [60, 200, 200]},
    "intensity": [{"p0_5": -100.0, "p99_5": 300.0}],
}
RANGES = training_ranges(FP, [-1024.0, -1000.0, -1024.0], [2000.0, 3000.0, 2500.0])


def volume(lo: float, hi: float, shape: tuple[int, ...] = (40, 150, 150)) -> np.ndarray:
    return np.linspace(lo, hi, int(np.prod(shape)), dtype=np.float32).reshape(1, *shape)


def test_an_input_like_the_training_data_has_no_warning() -> None:
    assert input_warnings("a", RANGES, (40, 150, 150), (1.0, 0.8, 0.8), 1, volume(-1024, 2500)) == []


def test_spacing_size_channels_and_intensity_far_outside_are_named() -> None:
    w = input_warnings("b", RANGES, (40, 150, 150), (5.0, 0.8, 0.8), 1, volume(-1024, 2500))
    assert w == ["b: spacing 5 mm on axis 0, the training data had 0.8-1.5 mm"]
    w = input_warnings("c", RANGES, (40, 900, 150), (1.0, 0.8, 0.8), 1, volume(-1024, 2500))
    assert w == ["c: size 900 voxels on axis 1, the training data had 100-200 voxels"]
    assert input_warnings("d", RANGES, (40, 150, 150), (1.0, 0.8, 0.8), 2, volume(-1024, 2500))[0] == (
        "d: 2 channel(s), the model was trained on 1"
    )
    w = input_warnings("e", RANGES, (40, 150, 150), (1.0, 0.8, 0.8), 1, volume(0.0, 1.0))
    assert w == ["e: intensities span 0 to 1, the training images -1024 to 2500"]  # normalised, not HU
    w = input_warnings("f", RANGES, (40, 150, 150), (1.0, 0.8, 0.8), 1, volume(5000.0, 9000.0))
    assert w == ["f: intensities 5000 to 9000 miss the training foreground's -100 to 300"]


def test_strict_refuses_and_lists_every_warning() -> None:
    check_inputs(["x: far"], strict=False)
    check_inputs([], strict=True)
    with pytest.raises(InputOutsideTrainingError, match=r"--strict refuses them.*\n  - x: far"):
        check_inputs(["x: far"], strict=True)
