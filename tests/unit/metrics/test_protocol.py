"""Published-protocol metrics (components/metrics/protocol.py) against direct numpy computations."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from components.metrics.panel import binary_metrics
from components.metrics.protocol import (
    POOLED_METRIC_NAMES,
    PROTOCOL_METRIC_INFO,
    PROTOCOL_METRIC_NAMES,
    THRESHOLDS,
    PooledCounts,
    dice_from_counts,
    label_mask_threshold_dice,
    mean_dice_over_thresholds,
    threshold_dice_curve,
)

K = 4  # classes 0..3


def _brute_curve(prob: np.ndarray, ref: np.ndarray, valid: np.ndarray | None, thresholds: np.ndarray):
    v = np.ones(prob.shape, bool) if valid is None else valid
    out = []
    for t in thresholds:
        p, r = (prob >= t) & v, ref.astype(bool) & v
        den = p.sum() + r.sum()
        out.append(1.0 if den == 0 else 2.0 * (p & r).sum() / den)
    return np.array(out)


def _brute_pooled(preds, refs, valids) -> dict[int, dict[str, float]]:
    p = np.concatenate([x[v].ravel() for x, v in zip(preds, valids, strict=True)])
    r = np.concatenate([x[v].ravel() for x, v in zip(refs, valids, strict=True)])
    out = {}
    for c in range(1, K):
        tp = np.sum((p == c) & (r == c))
        fp = np.sum((p == c) & (r != c))
        fn = np.sum((p != c) & (r == c))
        tn = np.sum((p != c) & (r != c))

        def ratio(a, b):
            return a / b if b else math.nan

        out[c] = {
            "pooled_dice": ratio(2 * tp, 2 * tp + fp + fn),
            "pooled_iou": ratio(tp, tp + fp + fn),
            "pooled_sensitivity": ratio(tp, tp + fn),
            "pooled_specificity": ratio(tn, tn + fp),
            "pooled_precision": ratio(tp, tp + fp),
            "pooled_accuracy": ratio(tp + tn, p.size),
        }
    return out


def _assert_metrics_equal(got, want) -> None:
    assert set(got) == set(want)
    for c in want:
        assert list(got[c]) == list(POOLED_METRIC_NAMES)
        for m, w in want[c].items():
            assert got[c][m] == pytest.approx(w, rel=1e-12, abs=0.0, nan_ok=True), (c, m)


def _random_cases(rng: np.random.Generator, n: int = 5):
    shapes = [(17, 23), (9, 31), (5, 8, 11), (30, 30), (4, 6, 7)][:n]
    preds = [rng.integers(0, K, s) for s in shapes]
    refs = [rng.integers(0, K, s) for s in shapes]
    valids = [rng.random(s) < 0.7 for s in shapes]
    return preds, refs, valids


def test_names() -> None:
    assert PROTOCOL_METRIC_NAMES[:2] == ("dice_thrmean", "dice_thrmean_label")
    assert PROTOCOL_METRIC_NAMES[2:] == POOLED_METRIC_NAMES
    assert all(n.startswith("pooled_") for n in POOLED_METRIC_NAMES)
    assert set(PROTOCOL_METRIC_INFO) == set(PROTOCOL_METRIC_NAMES)
    assert THRESHOLDS.shape == (256,) and THRESHOLDS[0] == 0.0 and THRESHOLDS[-1] == 1.0


@pytest.mark.parametrize("use_valid", [False, True])
def test_pooled_equals_concatenated_pixels(use_valid: bool) -> None:
    preds, refs, valids = _random_cases(np.random.default_rng(0))
    if not use_valid:
        valids = [np.ones(v.shape, bool) for v in valids]
    acc = PooledCounts(K)
    for p, r, v in zip(preds, refs, valids, strict=True):
        acc.update(p, r, v if use_valid else None)
    _assert_metrics_equal(acc.metrics(), _brute_pooled(preds, refs, valids))
    assert acc.tp.dtype == np.int64 and acc.n == sum(int(v.sum()) for v in valids)


def test_pooled_ignores_garbage_at_invalid_pixels() -> None:
    rng = np.random.default_rng(1)
    preds, refs, valids = _random_cases(rng)
    clean, dirty = PooledCounts(K), PooledCounts(K)
    for p, r, v in zip(preds, refs, valids, strict=True):
        clean.update(p, r, v)
        p2, r2 = p.copy(), r.copy()
        p2[~v] = rng.integers(-5, 300, int((~v).sum()))  # out-of-range labels too
        r2[~v] = 255  # an ignore label
        dirty.update(p2, r2, v)
    assert dirty.to_json() == clean.to_json()


def test_pooled_merge_and_json_round_trip() -> None:
    preds, refs, valids = _random_cases(np.random.default_rng(2))
    whole, fold_a, fold_b = PooledCounts(K), PooledCounts(K), PooledCounts(K)
    for i, (p, r, v) in enumerate(zip(preds, refs, valids, strict=True)):
        whole.update(p, r, v)
        (fold_a if i < 2 else fold_b).update(p, r, v)
    restored = PooledCounts.from_json(json.loads(json.dumps(fold_a.to_json())))
    restored.merge(fold_b)
    assert restored.to_json() == whole.to_json()
    _assert_metrics_equal(restored.metrics(), whole.metrics())


def test_pooled_nan_where_denominator_zero() -> None:
    acc = PooledCounts(3)
    ref = np.zeros((4, 4), int)
    acc.update(ref.copy(), ref)  # class 1 and 2 absent everywhere
    m = acc.metrics()[1]
    for name in ("pooled_dice", "pooled_iou", "pooled_sensitivity", "pooled_precision"):
        assert math.isnan(m[name])
    assert m["pooled_specificity"] == 1.0 and m["pooled_accuracy"] == 1.0
    empty = PooledCounts(2)
    assert all(math.isnan(v) for v in empty.metrics()[1].values())  # no pixel at all


@pytest.mark.parametrize(
    "bad",
    [
        {"num_classes": 3},
        {"num_classes": 3, "n": 4, "tp": [0, 0], "fp": [0, 0, 0], "fn": [0, 0, 0]},
        {"num_classes": 3, "n": 4, "tp": [0, 5, 0], "fp": [0, 0, 0], "fn": [0, 0, 0]},
        {"num_classes": 3, "n": -1, "tp": [0, 0, 0], "fp": [0, 0, 0], "fn": [0, 0, 0]},
        {"num_classes": 1, "n": 0, "tp": [0], "fp": [0], "fn": [0]},
    ],
)
def test_pooled_from_json_rejects_bad_content(bad: dict) -> None:
    with pytest.raises(ValueError):
        PooledCounts.from_json(bad)


def test_pooled_rejects_bad_input() -> None:
    acc = PooledCounts(3)
    with pytest.raises(ValueError, match=r"0\.\.2"):
        acc.update(np.array([0, 3]), np.array([0, 1]))
    with pytest.raises(ValueError, match="shape"):
        acc.update(np.zeros(3, int), np.zeros(4, int))
    with pytest.raises(ValueError, match="integer"):
        acc.update(np.zeros(3), np.zeros(3, int))
    with pytest.raises(ValueError, match="boolean"):
        acc.update(np.zeros(3, int), np.zeros(3, int), np.ones(3, int))
    with pytest.raises(ValueError, match="merge"):
        acc.merge(PooledCounts(4))


def _prob_on_thresholds(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Probabilities half drawn at random, half exactly equal to a threshold (incl. 0 and 1)."""
    prob = rng.random(shape)
    on = rng.random(shape) < 0.5
    prob[on] = THRESHOLDS[rng.integers(0, THRESHOLDS.size, int(on.sum()))]
    return prob


@pytest.mark.parametrize("shape", [(20, 25), (6, 7, 8)])
@pytest.mark.parametrize("use_valid", [False, True])
def test_threshold_curve_equals_brute_force(shape: tuple[int, ...], use_valid: bool) -> None:
    rng = np.random.default_rng(3)
    prob = _prob_on_thresholds(rng, shape)
    ref = rng.random(shape) < 0.3
    valid = rng.random(shape) < 0.6 if use_valid else None
    curve = threshold_dice_curve(prob, ref, valid)
    assert curve.shape == THRESHOLDS.shape
    np.testing.assert_allclose(curve, _brute_curve(prob, ref, valid, THRESHOLDS), rtol=1e-12, atol=0)
    assert mean_dice_over_thresholds(prob, ref, valid) == pytest.approx(curve.mean(), rel=1e-12)


def test_threshold_curve_float32_and_unsorted_thresholds() -> None:
    rng = np.random.default_rng(4)
    prob = _prob_on_thresholds(rng, (30, 30)).astype(np.float32)
    ref = (rng.random((30, 30)) < 0.4).astype(np.uint8)
    thresholds = rng.permutation(np.concatenate([THRESHOLDS[::7], [0.5, 0.5]]))  # unsorted, repeats
    curve = threshold_dice_curve(prob, ref, thresholds=thresholds)
    np.testing.assert_allclose(curve, _brute_curve(prob, ref, None, thresholds), rtol=1e-12, atol=0)


def test_threshold_curve_matches_panel_dice() -> None:
    rng = np.random.default_rng(5)
    prob, ref = rng.random((16, 16)), rng.random((16, 16)) < 0.5
    curve = threshold_dice_curve(prob, ref)
    for i in (0, 64, 128, 200, 255):
        assert curve[i] == pytest.approx(binary_metrics(prob >= THRESHOLDS[i], ref, surface=False)["dice"])


def test_threshold_curve_empty_ref_and_all_invalid() -> None:
    prob = np.array([[0.0, 0.2], [0.6, 1.0]])
    empty = np.zeros((2, 2), bool)
    curve = threshold_dice_curve(prob, empty)
    # prob >= t holds for some pixel whenever t <= 1.0 (every threshold): one mask empty -> 0.
    assert np.all(curve == 0.0)
    zero = np.zeros((2, 2))
    # both empty only at t > max(prob); with prob 0 everywhere, every t > 0 gives both empty -> 1.
    np.testing.assert_array_equal(threshold_dice_curve(zero, empty), np.r_[0.0, np.ones(255)])
    none_valid = np.zeros((2, 2), bool)
    assert np.all(threshold_dice_curve(prob, ~empty, none_valid) == 1.0)
    assert mean_dice_over_thresholds(prob, ~empty, none_valid) == 1.0


def test_threshold_curve_ignores_garbage_at_invalid_pixels() -> None:
    rng = np.random.default_rng(6)
    prob, ref = rng.random((12, 14)), rng.random((12, 14)) < 0.5
    valid = rng.random((12, 14)) < 0.5
    dirty_prob, dirty_ref = prob.copy(), ref.astype(np.int64)
    dirty_prob[~valid] = np.where(rng.random(int((~valid).sum())) < 0.5, np.nan, 7.5)
    dirty_ref[~valid] = 255
    np.testing.assert_array_equal(
        threshold_dice_curve(dirty_prob, dirty_ref, valid), threshold_dice_curve(prob, ref, valid)
    )


def test_threshold_curve_rejects_bad_input() -> None:
    ref = np.zeros((2, 2), bool)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        threshold_dice_curve(np.full((2, 2), 2.0), ref)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        threshold_dice_curve(np.full((2, 2), np.nan), ref)
    with pytest.raises(ValueError, match="binary"):
        threshold_dice_curve(np.zeros((2, 2)), np.full((2, 2), 255))
    with pytest.raises(ValueError, match="shape"):
        threshold_dice_curve(np.zeros((2, 3)), ref)
    with pytest.raises(ValueError, match="thresholds"):
        threshold_dice_curve(np.zeros((2, 2)), ref, thresholds=np.array([]))


def test_dice_from_counts_policy() -> None:
    np.testing.assert_array_equal(dice_from_counts([0, 0, 2], [0, 3, 2], [0, 0, 2]), [1.0, 0.0, 1.0])


def test_label_mask_threshold_dice_follows_the_infnet_tool() -> None:
    """Inf-Net's multi-class protocol: the class's label mask min-max stretched, thresholds from 1
    down to 0 (`map >= t`), Dice 0 where nothing overlaps (both empty too), the mean over 256."""
    ref = np.zeros((10, 10), bool)
    ref[:4, :5] = True  # 20 pixels
    pred = np.zeros((10, 10), bool)
    pred[:4, :3] = True  # 12 overlap, no false positives
    dice_mask = 2 * 12 / (12 + 20)
    dice_all = 2 * 20 / (100 + 20)  # t = 0: every pixel is foreground
    assert label_mask_threshold_dice(pred, ref) == pytest.approx((255 * dice_mask + dice_all) / 256)
    empty = np.zeros_like(ref)
    # nothing predicted: a constant map, empty above 0; only t = 0 scores
    assert label_mask_threshold_dice(empty, ref) == pytest.approx(dice_all / 256)
    # nothing to find: 0 at every threshold (the panel's Dice would give 1)
    assert label_mask_threshold_dice(empty, empty) == 0.0
    assert label_mask_threshold_dice(pred, empty) == 0.0
    # pixels outside `valid` count nowhere
    valid = np.ones_like(ref)
    valid[:, 3:] = False
    inside = 2 * 12 / (12 + 12)
    at_zero = 2 * 12 / (30 + 12)
    assert label_mask_threshold_dice(pred, ref, valid) == pytest.approx((255 * inside + at_zero) / 256)
    with pytest.raises(ValueError, match="same size"):
        label_mask_threshold_dice(pred[:5], ref)
