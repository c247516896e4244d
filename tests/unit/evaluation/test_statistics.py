"""Statistics against scipy / numpy on known inputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from components.evaluation.roc import StreamingROC
from components.evaluation.statistics import (
    area_agreement,
    compare_paired,
    describe,
    metric_statistics,
    regional_breakdown,
)


def test_describe_matches_scipy_and_drops_nan() -> None:
    x = np.array([0.91, 0.85, 0.78, 0.95, 0.88, 0.60, 0.83, 0.90, 0.87, 0.93])
    d = describe([*x.tolist(), math.nan, math.nan])
    ref = stats.describe(x)
    assert d["n"] == 10 and d["n_nan"] == 2
    assert d["mean"] == pytest.approx(ref.mean)
    assert d["sd"] == pytest.approx(math.sqrt(ref.variance))
    assert d["median"] == pytest.approx(np.median(x))
    assert d["iqr"] == pytest.approx(stats.iqr(x))
    assert d["q1"] == pytest.approx(np.percentile(x, 25)) and d["q3"] == pytest.approx(np.percentile(x, 75))
    assert d["ci_low"] < d["mean"] < d["ci_high"]
    assert describe(x, seed=1) == describe(x, seed=1)


def test_bootstrap_ci_close_to_t_interval_for_normal_data() -> None:
    x = np.random.default_rng(0).normal(10.0, 2.0, size=400)
    d = describe(x, n_boot=4000)
    low, high = stats.t.interval(0.95, df=x.size - 1, loc=x.mean(), scale=stats.sem(x))
    assert d["ci_low"] == pytest.approx(low, abs=0.05) and d["ci_high"] == pytest.approx(high, abs=0.05)


def test_describe_degenerate() -> None:
    assert describe([math.nan])["n"] == 0 and math.isnan(describe([])["mean"])
    one = describe([0.5])
    assert one["mean"] == 0.5 and math.isnan(one["sd"]) and one["ci_low"] == one["ci_high"] == 0.5


def _table() -> pd.DataFrame:
    rows = []
    for fold in range(3):
        for case in range(4):
            for cls, name in ((1, "ggo"), (2, "cons")):
                dice = 0.5 + 0.1 * fold + 0.01 * case + 0.2 * (cls == 1)
                hd95 = math.nan if (fold, case, cls) == (0, 0, 2) else 2.0 + fold + case
                rows.append({"case_id": f"f{fold}c{case}", "class": cls, "class_name": name, "fold": fold,
                             "dice": dice, "hd95": hd95})  # fmt: skip
    return pd.DataFrame(rows)


def test_metric_statistics_structure_and_values() -> None:
    df = _table()
    s = metric_statistics(df, ["dice", "hd95"])
    json.dumps(s, allow_nan=False)  # JSON-serializable, NaN -> None
    assert set(s["per_class"]) == {"ggo", "cons"}
    assert s["per_class"]["cons"]["hd95"]["n"] == 11 and s["per_class"]["cons"]["hd95"]["n_nan"] == 1
    ggo = df[df.class_name == "ggo"]
    assert s["per_class"]["ggo"]["dice"]["mean"] == pytest.approx(ggo.dice.mean())
    fold_means = ggo.groupby("fold").dice.mean()
    assert s["per_fold"][1]["ggo"]["dice"] == pytest.approx(fold_means[1])
    assert s["fold_mean_sd"]["ggo"]["dice"]["mean"] == pytest.approx(fold_means.mean())
    assert s["fold_mean_sd"]["ggo"]["dice"]["sd"] == pytest.approx(fold_means.std(ddof=1))
    assert metric_statistics(df.drop(columns="fold"), ["dice"])["per_fold"] == {}
    with pytest.raises(KeyError, match="no column"):
        metric_statistics(df, ["asd"])


def test_compare_paired_matches_scipy() -> None:
    a = _table()
    b = a.copy()
    b["dice"] = a["dice"] + np.linspace(-0.01, 0.05, len(a))
    b = b.sample(frac=1.0, random_state=0)  # order must not matter: matched on case_id + class
    r = compare_paired(a, b, metrics=("dice", "hd95"))
    json.dumps(r, allow_nan=False)
    diff = np.linspace(-0.01, 0.05, len(a))
    assert r["n_matched"] == len(a)
    assert r["all"]["dice"]["mean_diff"] == pytest.approx(diff.mean())
    assert r["all"]["dice"]["wilcoxon_p"] == pytest.approx(stats.wilcoxon(a.dice, a.dice + diff).pvalue)
    assert r["all"]["dice"]["ttest_p"] == pytest.approx(stats.ttest_rel(a.dice + diff, a.dice).pvalue)
    assert r["all"]["dice"]["ci_low"] < diff.mean() < r["all"]["dice"]["ci_high"]
    assert r["all"]["hd95"]["n"] == len(a) - 1  # the NaN pair is dropped
    assert r["all"]["hd95"]["wilcoxon_p"] is None  # identical values: no test
    assert set(r["per_class"]) == {"ggo", "cons"}


def test_area_agreement_matches_scipy() -> None:
    ref = np.array([10.0, 20.0, 30.0, 42.0, 55.0, 61.0])
    pred = np.array([11.0, 19.5, 33.0, 40.0, 58.0, 60.0])
    r = area_agreement(pred, ref)
    d = pred - ref
    assert r["pearson_r"] == pytest.approx(stats.pearsonr(pred, ref).statistic)
    assert r["ttest_p"] == pytest.approx(stats.ttest_rel(pred, ref).pvalue)
    assert r["bias"] == pytest.approx(d.mean())
    assert r["loa_high"] - r["loa_low"] == pytest.approx(2 * 1.96 * d.std(ddof=1))
    assert area_agreement([1.0, math.nan], [1.0, 2.0])["n"] == 1


def test_streaming_roc_auc_equals_mann_whitney() -> None:
    rng = np.random.default_rng(0)
    bins = 50
    labels = rng.integers(0, 3, size=(2, 16, 16))
    logits = rng.normal(size=(2, 3, 16, 16)) + 1.5 * np.eye(3)[labels].transpose(0, 3, 1, 2)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    probs = (np.floor(probs * bins) + 0.5) / bins  # quantised to bin centres: histogram ROC is exact
    roc = StreamingROC(3, bins=bins)
    roc.update(probs[0], labels[0])  # (C, H, W) form
    roc.update(probs[1:], labels[1:])  # (N, C, H, W) form
    aucs = roc.auc()
    for c in range(3):
        score = probs[:, c].ravel()
        pos = labels.ravel() == c
        u = stats.mannwhitneyu(score[pos], score[~pos]).statistic
        assert aucs[c] == pytest.approx(u / (pos.sum() * (~pos).sum()))
        fpr, tpr = roc.curves()[c]
        assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
        assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)


def test_streaming_roc_ignores_labels_and_checks_shapes() -> None:
    roc = StreamingROC(2, bins=10)
    roc.update(np.full((2, 2, 2), 0.5), np.array([[0, 1], [255, 1]]))
    assert roc.pos.sum() + roc.neg.sum() == 2 * 3
    with pytest.raises(ValueError, match="does not match"):
        roc.update(np.zeros((3, 2, 2)), np.zeros((2, 2), int))


def test_regional_breakdown_thirds() -> None:
    ref = np.zeros((9, 6, 6), np.uint8)
    ref[0:9, 1:4, 1:4] = 1
    pred = ref.copy()
    pred[6:9] = 0  # apex missed entirely
    pred[3:6, 1:4, 4] = 1  # middle over-segmented
    rows = regional_breakdown(pred, ref, classes=[1, 2], spacing=(2.0, 1.0, 1.0))
    assert [(r["region"], r["slice_start"], r["slice_stop"]) for r in rows] == [
        ("base", 0, 3), ("middle", 3, 6), ("apex", 6, 9)
    ]  # fmt: skip
    base, middle, apex = rows
    assert base["dice"] == 1.0 and apex["dice"] == 0.0 and apex["empty"] == "pred"
    assert middle["dice"] == pytest.approx(2 * 27 / (27 + 36))
    with pytest.raises(ValueError, match="3D"):
        regional_breakdown(ref[0], ref[0], [1])
