"""Scoring with regions of interest, the ignore label, protocol metrics and CV-chosen postprocessing."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.evaluation.postprocess_report import decide
from components.evaluation.report import protocol_metrics
from components.evaluation.scoring import ScoringOptions, score_cases
from components.io import write_mask
from components.postprocessing import Postprocessing, Rule

NAMES = ["background", "lesion", "organ"]
RNG = np.random.default_rng(7)


class TablePredictor:
    """Returns fixed probabilities per image (keyed by the image's first pixel value)."""

    def __init__(self, probs: dict[int, np.ndarray]) -> None:
        self.probs = probs

    def predict_proba(self, image: np.ndarray, spacing: Sequence[float] | None = None) -> np.ndarray:
        del spacing
        return self.probs[int(image[0, 0])]


def _probs_from_labels(labels: np.ndarray, noise: np.ndarray) -> np.ndarray:
    logits = np.stack([(labels == k).astype(np.float32) * 3 for k in range(len(NAMES))]) + noise
    e = np.exp(logits - logits.max(0))
    return (e / e.sum(0)).astype(np.float32)


def _dataset(
    root: Path, n: int, roi: bool, ignore_label: int | None
) -> tuple[pd.DataFrame, list[np.ndarray]]:
    rows, refs = [], []
    for i in range(n):
        ref = np.zeros((24, 20), np.uint8)
        ref[3 + i : 10 + i, 4:12] = 1
        ref[14:20, 8 + i % 3 : 16] = 2
        image = (RNG.random((24, 20)) * 200).astype(np.uint8)
        image[0, 0] = i  # the predictor's key
        if ignore_label is not None:
            ref[:, :3] = ignore_label
        write_mask(root / "images" / f"c{i}.png", image)
        write_mask(root / "masks" / f"c{i}.png", ref)
        row = {"case_id": f"c{i}", "image_path": f"images/c{i}.png", "mask_path": f"masks/c{i}.png"}
        if roi:
            inside = np.ones_like(ref)
            inside[20:, :] = 0
            write_mask(root / "rois" / f"c{i}.png", inside)
            row["roi_path"] = f"rois/c{i}.png"
        rows.append(row)
        refs.append(ref)
    return pd.DataFrame(rows), refs


@pytest.mark.parametrize(("roi", "ignore"), [(True, None), (False, 250), (True, 250)])
def test_garbage_outside_the_roi_and_on_the_ignore_label_changes_no_number(
    tmp_path: Path, roi: bool, ignore: int | None
) -> None:
    cases, refs = _dataset(tmp_path, 4, roi, ignore)
    opts = ScoringOptions(NAMES, worst_cases=0, ignore_label=ignore)
    outcomes = []
    for seed in (0, 1):
        rng = np.random.default_rng(seed)
        probs = {}
        for i, ref in enumerate(refs):
            clean = np.where(ref == (ignore if ignore is not None else -1), 0, ref)
            p = _probs_from_labels(clean, 0.3 * np.random.default_rng(i).standard_normal((3, 24, 20)))
            garbage = rng.dirichlet(np.ones(3), size=ref.shape).transpose(2, 0, 1).astype(np.float32)
            outside = np.zeros(ref.shape, bool)
            if roi:
                outside[20:, :] = True
            if ignore is not None:
                outside |= ref == ignore
            p[:, outside] = garbage[:, outside]
            probs[i] = p
        scored = score_cases(TablePredictor(probs), cases, tmp_path, opts)
        outcomes.append((scored.per_case, protocol_metrics(scored, NAMES)))
    pd.testing.assert_frame_equal(outcomes[0][0], outcomes[1][0])
    assert outcomes[0][1] == outcomes[1][1]


def test_pooled_and_threshold_metrics_equal_a_direct_numpy_computation(tmp_path: Path) -> None:
    cases, refs = _dataset(tmp_path, 3, roi=True, ignore_label=None)
    probs = {i: _probs_from_labels(r, 1.5 * RNG.standard_normal((3, 24, 20))) for i, r in enumerate(refs)}
    scored = score_cases(TablePredictor(probs), cases, tmp_path, ScoringOptions(NAMES, worst_cases=0))
    protocol = protocol_metrics(scored, NAMES)
    inside = np.ones((24, 20), bool)
    inside[20:, :] = False
    for c, name in ((1, "lesion"), (2, "organ")):
        pred = np.concatenate([probs[i].argmax(0)[inside] for i in range(3)]) == c
        ref = np.concatenate([r[inside] for r in refs]) == c
        tp, fp, fn = (pred & ref).sum(), (pred & ~ref).sum(), (~pred & ref).sum()
        tn = pred.size - tp - fp - fn
        assert protocol[name]["pooled_dice"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
        assert protocol[name]["pooled_sensitivity"] == pytest.approx(tp / (tp + fn))
        assert protocol[name]["pooled_specificity"] == pytest.approx(tn / (tn + fp))
        assert protocol[name]["pooled_accuracy"] == pytest.approx((tp + tn) / pred.size)
        per_case = []
        for i, r in enumerate(refs):
            p, g = probs[i][c][inside], r[inside] == c
            curve = [2 * ((p >= t) & g).sum() / ((p >= t).sum() + g.sum()) for t in np.linspace(0, 1, 256)]
            per_case.append(np.mean(curve))
        assert protocol[name]["dice_thrmean"] == pytest.approx(np.mean(per_case))
        # Inf-Net's multi-class tool on the label mask: min-max, `map >= t` from 1 down to 0, Dice 0
        # where nothing overlaps
        label_case = []
        for i, r in enumerate(refs):
            m, g = (probs[i].argmax(0)[inside] == c).astype(float), r[inside] == c
            m = (m - m.min()) / (m.max() - m.min()) if m.max() > m.min() else np.zeros_like(m)
            curve = []
            for t in np.arange(255, -1, -1) / 255:
                b = m >= t
                tp = (b & g).sum()
                curve.append(0.0 if tp == 0 else 2 * tp / (b.sum() + g.sum()))
            label_case.append(np.mean(curve))
        assert protocol[name]["dice_thrmean_label"] == pytest.approx(np.mean(label_case))


def _blobs(root: Path, spurious: bool) -> tuple[pd.DataFrame, TablePredictor]:
    """Lesion class: one true object per case; the prediction adds a far spurious blob
    (``spurious``: largest-component helps) or the reference has a second small true object that
    the prediction finds too (largest-component would delete it: it hurts)."""
    rows, probs = [], {}
    for i in range(4):
        ref = np.zeros((30, 30), np.uint8)
        ref[5:15, 5:15] = 1
        pred = ref.copy()
        if spurious:
            pred[24:27, 24:27] = 1
        else:
            ref[22:26, 22:26] = 1
            pred[22:26, 22:26] = 1
        image = np.full((30, 30), i, np.uint8)
        write_mask(root / "images" / f"b{i}.png", image)
        write_mask(root / "masks" / f"b{i}.png", ref)
        rows.append({"case_id": f"b{i}", "image_path": f"images/b{i}.png", "mask_path": f"masks/b{i}.png"})
        probs[i] = _probs_from_labels(pred, np.zeros((3, 30, 30)))
    return pd.DataFrame(rows), TablePredictor(probs)


@pytest.mark.parametrize("spurious", [True, False])
def test_postprocessing_is_kept_only_where_cv_says_it_helps(tmp_path: Path, spurious: bool) -> None:
    cases, model = _blobs(tmp_path, spurious)
    opts = ScoringOptions(NAMES, worst_cases=0, postprocess_candidates=True)
    scored = score_cases(model, cases, tmp_path, opts)
    decision, summary = decide(scored.candidates, NAMES, connectivity=1)
    lesion_rows = {row["rule"]: row for row in summary if row["class"] == 1}
    rule = decision.rules.get(1, Rule("none"))
    if spurious:  # removing the 9-pixel blob helps: the simplest rule that does it is kept
        assert rule.kind != "none" and lesion_rows[rule.name]["delta_vs_none"] > 0
    else:  # the small true object would be lost: largest-component lowers the Dice, not kept
        assert rule.kind == "none" and lesion_rows["largest_component"]["delta_vs_none"] < 0
    # applied at test time, the chosen rule gives the CV-measured Dice (1.0 in both sets)
    test = score_cases(model, cases, tmp_path, ScoringOptions(NAMES, worst_cases=0, postprocessing=decision))
    assert (test.per_case[test.per_case["class_name"] == "lesion"]["dice"] == 1.0).all()
    without = score_cases(model, cases, tmp_path, ScoringOptions(NAMES, worst_cases=0))
    lesion = without.per_case[without.per_case["class_name"] == "lesion"]["dice"]
    assert (lesion < 1.0).all() if spurious else (lesion == 1.0).all()


def test_no_postprocessing_when_evaluate_says_none() -> None:
    decision, summary = decide(None, NAMES, connectivity=1)
    assert decision == Postprocessing(connectivity=1) and summary == []
