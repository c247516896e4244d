"""Small cases computed by hand, argument checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from components.metrics import binary_metrics, case_metrics, surface_distances


def _rect_pair() -> tuple[np.ndarray, np.ndarray]:
    ref = np.zeros((7, 7), bool)
    ref[1:4, 1:4] = True  # 3x3, border = 8 voxels (centre is interior)
    pred = np.zeros((7, 7), bool)
    pred[1:5, 1:4] = True  # 4x3, border = 10 voxels
    return pred, ref


def test_rectangles_isotropic() -> None:
    pred, ref = _rect_pair()
    m = binary_metrics(pred, ref, surface_tolerance=0.5)
    assert m["dice"] == pytest.approx(18 / 21)
    assert m["iou"] == pytest.approx(9 / 12)
    assert m["voe"] == pytest.approx(3 / 12)
    assert m["sensitivity"] == 1.0
    assert m["precision"] == pytest.approx(9 / 12)
    assert m["specificity"] == pytest.approx(37 / 40)
    assert m["rvd"] == pytest.approx(3 / 9) and m["ravd"] == pytest.approx(3 / 9)
    # pred border -> ref: 7 zeros + bottom row 3 x 1; ref border -> pred: 7 zeros + (3, 2) at 1
    assert m["hd"] == 1.0
    assert m["asd"] == pytest.approx(3 / 10)
    assert m["assd"] == pytest.approx(4 / 18)
    assert m["hd95"] == 1.0  # 95th percentile of 14 zeros and 4 ones
    assert m["surface_dice"] == pytest.approx(14 / 18)
    assert binary_metrics(pred, ref, surface_tolerance=1.0)["surface_dice"] == 1.0
    assert m["pred_volume"] == 12 and m["ref_volume"] == 9


def test_rectangles_anisotropic() -> None:
    pred, ref = _rect_pair()
    m = binary_metrics(pred, ref, spacing=(2.0, 1.0))
    # the extra row is 2 away; ref (3, 2) is closest to pred (3, 1)/(3, 3) at 1 (not (4, 2) at 2)
    assert m["hd"] == 2.0
    assert m["asd"] == pytest.approx(6 / 10)
    assert m["assd"] == pytest.approx(7 / 18)
    assert m["pred_volume"] == 24 and m["ref_volume"] == 18
    sd = surface_distances(pred, ref, spacing=(2.0, 1.0))
    assert sorted(sd.pred_to_ref.tolist()) == [0.0] * 7 + [2.0] * 3
    assert sorted(sd.ref_to_pred.tolist()) == [0.0] * 7 + [1.0]


def test_single_voxels_3d() -> None:
    pred = np.zeros((4, 5, 6), bool)
    ref = np.zeros((4, 5, 6), bool)
    ref[0, 0, 0] = True
    pred[2, 3, 4] = True
    m = binary_metrics(pred, ref, spacing=(2.0, 1.0, 0.5), surface_tolerance=5.0)
    d = math.sqrt(4**2 + 3**2 + 2**2)
    for name in ("hd", "hd95", "asd", "assd"):
        assert m[name] == pytest.approx(d)
    assert m["surface_dice"] == 0.0
    assert binary_metrics(pred, ref, spacing=(2.0, 1.0, 0.5), surface_tolerance=5.4)["surface_dice"] == 1.0
    assert m["pred_volume"] == 1.0 and m["dice"] == 0.0


def test_connectivity_changes_border() -> None:
    plus = np.zeros((5, 5), bool)
    plus[2, 1:4] = plus[1:4, 2] = True  # centre has 4 face neighbours but not 8
    ref = np.zeros((5, 5), bool)
    ref[2, 2] = True
    assert binary_metrics(plus, ref, connectivity=1)["asd"] == pytest.approx(1.0)  # 4 arm tips
    assert binary_metrics(plus, ref, connectivity=2)["asd"] == pytest.approx(4 / 5)  # + the centre


def test_label_maps_per_class() -> None:
    pred = np.array([[0, 1, 1, 2], [0, 1, 2, 2]])
    ref = np.array([[0, 1, 1, 1], [0, 1, 2, 2]])
    rows = case_metrics(pred, ref, classes=[1, 2], surface=False)
    assert rows[0]["dice"] == pytest.approx(2 * 3 / (3 + 4))
    assert rows[1]["dice"] == pytest.approx(2 * 2 / (3 + 2))
    assert math.isnan(rows[0]["hd"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"spacing": (1.0,)}, "expected 2"),
        ({"spacing": (1.0, -1.0)}, "positive"),
        ({"connectivity": 3}, "1..2"),
        ({"surface_tolerance": -1.0}, ">= 0"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    pred, ref = _rect_pair()
    with pytest.raises(ValueError, match=match):
        binary_metrics(pred, ref, **kwargs)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="shape"):
        case_metrics(np.zeros((3, 3), int), np.zeros((3, 4), int), [1])
    with pytest.raises(ValueError, match="integer label map"):
        case_metrics(np.zeros((3, 3), float), np.zeros((3, 3), int), [1])
    with pytest.raises(ValueError, match="2D or 3D"):
        binary_metrics(np.zeros(5, bool), np.zeros(5, bool))
    with pytest.raises(ValueError, match="non-empty"):
        surface_distances(np.zeros((3, 3), bool), np.ones((3, 3), bool))


def test_ignored_reference_pixels_count_in_no_metric() -> None:
    """Garbage predictions at ignored pixels change nothing; TN are counted over valid pixels."""
    from components.data.regions import IGNORE_INDEX

    rng = np.random.default_rng(0)
    ref = np.zeros((12, 12), dtype=np.int64)
    ref[2:6, 2:6] = 1
    ref[7:10, 6:11] = 2
    ref[:, 10:] = IGNORE_INDEX  # unannotated band
    pred = ref.copy()
    pred[pred == IGNORE_INDEX] = 0
    pred[3, 3] = 0
    rows = []
    for _ in range(3):
        garbage = pred.copy()
        band = ref == IGNORE_INDEX
        garbage[band] = rng.integers(0, 3, int(band.sum()))
        rows.append(case_metrics(garbage, ref, [1, 2], surface=True))
    assert rows[0] == rows[1] == rows[2]
    # the same numbers as scoring only the annotated 12x10 part
    assert case_metrics(pred[:, :10], ref[:, :10], [1, 2]) == rows[0]
