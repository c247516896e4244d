"""Every cell of the empty-mask policy table (components/metrics/panel.py docstring)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from components.metrics import EMPTY_POLICY, METRIC_NAMES, binary_metrics, case_metrics

NAN = math.nan
SPACING = (0.5, 0.5)  # voxel area 0.25
# 10x10 image; the non-empty mask is a 2x2 square (4 voxels, area 1.0).
# Expected values written out by hand (not read from EMPTY_POLICY).
EXPECTED = {
    "ref": {
        "dice": 0.0, "iou": 0.0, "voe": 1.0, "sensitivity": NAN, "specificity": 96 / 100,
        "precision": 0.0, "rvd": NAN, "ravd": NAN, "hd": NAN, "hd95": NAN, "asd": NAN, "assd": NAN,
        "surface_dice": 0.0, "pred_volume": 1.0, "ref_volume": 0.0,
    },
    "pred": {
        "dice": 0.0, "iou": 0.0, "voe": 1.0, "sensitivity": 0.0, "specificity": 1.0,
        "precision": NAN, "rvd": -1.0, "ravd": 1.0, "hd": NAN, "hd95": NAN, "asd": NAN, "assd": NAN,
        "surface_dice": 0.0, "pred_volume": 0.0, "ref_volume": 1.0,
    },
    "both": {
        "dice": 1.0, "iou": 1.0, "voe": 0.0, "sensitivity": NAN, "specificity": 1.0,
        "precision": NAN, "rvd": 0.0, "ravd": 0.0, "hd": 0.0, "hd95": 0.0, "asd": 0.0, "assd": 0.0,
        "surface_dice": 1.0, "pred_volume": 0.0, "ref_volume": 0.0,
    },
}  # fmt: skip


def _pair(state: str, ndim: int = 2) -> tuple[np.ndarray, np.ndarray]:
    obj = np.zeros((10,) * ndim, bool)
    obj[(slice(3, 5),) * ndim] = True
    empty = np.zeros_like(obj)
    return {"ref": (obj, empty), "pred": (empty, obj), "both": (empty, empty)}[state]


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-12)


@pytest.mark.parametrize("state", ["ref", "pred", "both"])
@pytest.mark.parametrize("metric", METRIC_NAMES)
def test_policy_cell(state: str, metric: str) -> None:
    pred, ref = _pair(state)
    got = binary_metrics(pred, ref, spacing=SPACING)
    assert got["empty"] == state
    assert _same(got[metric], EXPECTED[state][metric]), (state, metric, got[metric])


def test_policy_table_covers_every_metric() -> None:
    assert set(EMPTY_POLICY) == set(METRIC_NAMES)
    assert all(set(EXPECTED[s]) == set(METRIC_NAMES) for s in EXPECTED)


@pytest.mark.parametrize("state", ["ref", "pred", "both"])
def test_policy_in_3d_and_without_surface(state: str) -> None:
    pred, ref = _pair(state, ndim=3)
    got = binary_metrics(pred, ref)
    for metric in ("dice", "iou", "hd", "hd95", "asd", "assd", "surface_dice", "sensitivity", "precision"):
        assert _same(got[metric], EXPECTED[state][metric]), (state, metric)
    cheap = binary_metrics(pred, ref, surface=False)
    for metric in ("hd", "hd95", "asd", "assd", "surface_dice"):
        assert math.isnan(cheap[metric])
    assert cheap["dice"] == got["dice"]


def test_case_metrics_flags_each_class() -> None:
    pred = np.zeros((8, 8), np.uint8)
    ref = np.zeros((8, 8), np.uint8)
    pred[1:3, 1:3] = 1  # class 1: ref empty
    ref[5:7, 5:7] = 2  # class 2: pred empty
    pred[4:6, 1:3] = ref[4:6, 1:3] = 3  # class 3: perfect
    rows = case_metrics(pred, ref, classes=[1, 2, 3, 4])
    assert [r["class"] for r in rows] == [1, 2, 3, 4]
    assert [r["empty"] for r in rows] == ["ref", "pred", "none", "both"]
    assert rows[2]["dice"] == 1.0 and rows[2]["hd"] == 0.0
    assert list(rows[0])[1:-1] == list(METRIC_NAMES)
