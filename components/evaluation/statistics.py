"""Statistics over per-case metric tables: summaries with CIs, paired model comparison, volume
agreement (Bland–Altman) and regional (base/middle/apex) breakdown. Pixel-level ROC: roc.py.

Every function is NaN-aware: NaN values (see the empty-mask policy in components.metrics) are
counted and dropped, never silently averaged. Dict outputs are JSON-serializable (NaN -> None).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
from scipy import stats

from components.metrics import case_metrics
from components.metrics.reductions import fold_class_means, mean_sd_by_class

Values: TypeAlias = Sequence[float] | np.ndarray | pd.Series
"""Metric values per case: a list, an array or a per-case table's column (NaN allowed)."""


def json_safe(x: Any) -> Any:
    """Python scalars for strict JSON; NaN/inf -> None; keys as strings (recursively)."""
    if isinstance(x, dict):
        return {str(k) if not isinstance(k, int) else k: json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [json_safe(v) for v in x]
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, float | np.floating):
        return float(x) if math.isfinite(float(x)) else None
    return x


def _finite(values: Values) -> tuple[np.ndarray, int]:
    arr = np.asarray(pd.to_numeric(pd.Series(values, dtype=object), errors="coerce"), dtype=np.float64)
    keep = ~np.isnan(arr)
    return arr[keep], int((~keep).sum())


def _bootstrap_ci(x: np.ndarray, n_boot: int, seed: int, ci: float) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean (robust for the small n of folds; BCa is not)."""
    if x.size == 0:
        return math.nan, math.nan
    if x.size == 1 or np.all(x == x[0]):
        return float(x[0]), float(x[0])
    res = stats.bootstrap(
        (x,),
        np.mean,
        n_resamples=n_boot,
        confidence_level=ci,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def describe(values: Values, n_boot: int = 2000, seed: int = 0, ci: float = 0.95) -> dict:
    """Mean, sd, median, quartiles and a bootstrap CI of the mean, dropping NaNs.

    Args:
        values: Metric values (NaN allowed).
        n_boot: Bootstrap resamples for the CI of the mean.
        seed: Seed of the bootstrap resampling (deterministic output).
        ci: Confidence level.

    Returns:
        ``{mean, sd, median, q1, q3, iqr, ci_low, ci_high, n, n_nan}``; sd uses ddof=1 (NaN if n<2).
    """
    x, n_nan = _finite(values)
    if x.size == 0:
        out = dict.fromkeys(("mean", "sd", "median", "q1", "q3", "iqr", "ci_low", "ci_high"), math.nan)
        return {**out, "n": 0, "n_nan": n_nan}
    q1, median, q3 = np.percentile(x, [25, 50, 75])
    low, high = _bootstrap_ci(x, n_boot, seed, ci)
    return {
        "mean": float(x.mean()),
        "sd": float(x.std(ddof=1)) if x.size > 1 else math.nan,
        "median": float(median),
        "q1": float(q1),
        "q3": float(q3),
        "iqr": float(q3 - q1),
        "ci_low": low,
        "ci_high": high,
        "n": int(x.size),
        "n_nan": n_nan,
    }


def _class_names(df: pd.DataFrame) -> pd.Series:
    return df["class_name"].astype(str) if "class_name" in df else df["class"].astype(str)


def metric_statistics(per_case: pd.DataFrame, metrics: Sequence[str], by_fold: bool = True) -> dict:
    """Pooled per-class summaries, per-fold means and the mean ± sd over folds.

    Args:
        per_case: One row per case and class: ``case_id, class, class_name, [fold], <metrics>``.
        metrics: Metric columns to summarise.
        by_fold: Also compute ``per_fold`` and ``fold_mean_sd`` (needs a ``fold`` column).

    Returns:
        ``{"per_class": {name: {metric: describe()}}, "per_fold": {fold: {name: {metric: mean}}},
        "fold_mean_sd": {name: {metric: {"mean", "sd"}}}}``, JSON-serializable (NaN -> None).

    Raises:
        KeyError: A requested metric column is missing.
    """
    missing = [m for m in metrics if m not in per_case.columns]
    if missing:
        raise KeyError(f"per-case table has no column(s) {missing}; columns: {list(per_case.columns)}")
    df = per_case.assign(_name=_class_names(per_case))
    out: dict[str, Any] = {"per_class": {}, "per_fold": {}, "fold_mean_sd": {}}
    for name, group in df.groupby("_name", sort=False):
        out["per_class"][name] = {m: describe(group[m]) for m in metrics}
    if by_fold and "fold" in df:
        fold_means = fold_class_means(df, metrics, by="_name")
        for key, row in fold_means.iterrows():
            assert isinstance(key, tuple)  # (fold, class name): a MultiIndex label
            fold, name = key
            out["per_fold"].setdefault(int(fold), {})[name] = {m: float(row[m]) for m in metrics}
        out["fold_mean_sd"] = mean_sd_by_class(df, metrics, by_fold=True, by="_name")
    return json_safe(out)


def _paired(x: np.ndarray, y: np.ndarray, n_boot: int, seed: int) -> dict:
    diff = y - x
    out: dict[str, Any] = {"n": int(diff.size), "mean_a": math.nan, "mean_b": math.nan, "mean_diff": math.nan}
    out.update(
        dict.fromkeys(("ci_low", "ci_high", "wilcoxon_stat", "wilcoxon_p", "ttest_stat", "ttest_p"), math.nan)
    )
    if diff.size == 0:
        return out
    out.update(mean_a=float(x.mean()), mean_b=float(y.mean()), mean_diff=float(diff.mean()))
    out["ci_low"], out["ci_high"] = _bootstrap_ci(diff, n_boot, seed, 0.95)
    if diff.size >= 2 and np.any(diff != 0):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            w = stats.wilcoxon(x, y)
            t = stats.ttest_rel(y, x)
        out.update(wilcoxon_stat=float(w.statistic), wilcoxon_p=float(w.pvalue))
        out.update(ttest_stat=float(t.statistic), ttest_p=float(t.pvalue))
    return out


def compare_paired(
    a: pd.DataFrame,
    b: pd.DataFrame,
    metrics: Sequence[str] = ("dice", "hd95"),
    n_boot: int = 2000,
    seed: int = 0,
) -> dict:
    """Paired comparison of model B against model A on the same cases and classes.

    Rows are matched on ``case_id`` + ``class``; pairs with NaN on either side are dropped.
    ``mean_diff`` = mean(B - A) with a percentile bootstrap 95% CI; Wilcoxon signed-rank and paired
    t-test p-values (None when there are fewer than 2 pairs or all differences are 0).

    Returns:
        ``{"all": {metric: stats}, "per_class": {class_name: {metric: stats}}}`` (JSON-serializable).
    """
    keys = ["case_id", "class"]
    for label, df in (("a", a), ("b", b)):
        missing = [c for c in (*keys, *metrics) if c not in df.columns]
        if missing:
            raise KeyError(f"table {label} lacks column(s) {missing}")
    merged = a.merge(b, on=keys, suffixes=("_a", "_b"))
    name_col = next((c for c in ("class_name_a", "class_name", "class_name_b") if c in merged), "class")
    names = merged[name_col].astype(str)
    out: dict[str, Any] = {"n_matched": len(merged), "all": {}, "per_class": {}}
    for m in metrics:
        pairs = merged[[f"{m}_a", f"{m}_b"]].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
        ok = ~np.isnan(pairs).any(axis=1)
        out["all"][m] = _paired(pairs[ok, 0], pairs[ok, 1], n_boot, seed)
        for name in names.unique():
            sel = ok & (names == name).to_numpy()
            out["per_class"].setdefault(name, {})[m] = _paired(pairs[sel, 0], pairs[sel, 1], n_boot, seed)
    return json_safe(out)


def area_agreement(pred_volumes: Values, ref_volumes: Values) -> dict:
    """Agreement of predicted and reference volumes (areas): Pearson r, paired t-test, Bland–Altman.

    Bland–Altman: differences pred - ref; ``bias`` = their mean, limits of agreement
    ``bias ± 1.96 sd`` (sd with ddof=1). Pairs with a NaN are dropped.
    """
    p = np.asarray(pred_volumes, dtype=np.float64)
    r = np.asarray(ref_volumes, dtype=np.float64)
    if p.shape != r.shape:
        raise ValueError(f"{p.size} predicted volumes but {r.size} reference volumes; expected pairs")
    ok = ~(np.isnan(p) | np.isnan(r))
    p, r = p[ok], r[ok]
    d = p - r
    out: dict[str, Any] = {"n": int(d.size), "pearson_r": math.nan, "pearson_p": math.nan}
    out.update(
        ttest_stat=math.nan,
        ttest_p=math.nan,
        bias=math.nan,
        sd_diff=math.nan,
        loa_low=math.nan,
        loa_high=math.nan,
    )
    if d.size >= 1:
        out["bias"] = float(d.mean())
    if d.size >= 2:
        sd = float(d.std(ddof=1))
        out.update(sd_diff=sd, loa_low=out["bias"] - 1.96 * sd, loa_high=out["bias"] + 1.96 * sd)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if np.ptp(p) > 0 and np.ptp(r) > 0:
                pr = stats.pearsonr(p, r)
                out.update(pearson_r=float(pr.statistic), pearson_p=float(pr.pvalue))
            if sd > 0:
                t = stats.ttest_rel(p, r)
                out.update(ttest_stat=float(t.statistic), ttest_p=float(t.pvalue))
    return json_safe(out)


REGIONS = ("base", "middle", "apex")


def regional_breakdown(
    pred: np.ndarray,
    ref: np.ndarray,
    classes: Sequence[int],
    spacing: Sequence[float] | None = None,
    axis: int = 0,
) -> list[dict]:
    """Metrics per third of the reference extent along the slice axis (base / middle / apex).

    For each class, the slices between the first and last slice holding reference voxels are
    split into three near-equal slabs (``np.array_split``); "base" is the slab with the lowest
    indices along ``axis``. Prediction outside the reference extent is not part of any region
    (the whole-volume metrics count it). Classes absent from the reference give no rows.

    Args:
        pred: Predicted label map. Shape: (D, H, W).
        ref: Reference label map, same shape.
        classes: Classes to break down.
        spacing: Voxel size per array axis.
        axis: Slice axis.

    Returns:
        Rows ``{"class", "region", "slice_start", "slice_stop", <metrics>, "empty"}``.
    """
    pred, ref = np.asarray(pred), np.asarray(ref)
    if pred.ndim != 3 or pred.shape != ref.shape:
        raise ValueError(
            f"regional breakdown needs two 3D label maps of one shape, got {pred.shape} and {ref.shape}"
        )
    rows: list[dict] = []
    for c in classes:
        present = np.flatnonzero(np.any(ref == c, axis=tuple(a for a in range(3) if a != axis % 3)))
        if present.size == 0:
            continue
        for region, idx in zip(
            REGIONS, np.array_split(np.arange(present[0], present[-1] + 1), 3), strict=True
        ):
            if idx.size == 0:
                continue
            slab = [slice(None)] * 3
            slab[axis] = slice(int(idx[0]), int(idx[-1]) + 1)
            (m,) = case_metrics(pred[tuple(slab)], ref[tuple(slab)], [c], spacing)
            rows.append(
                {
                    "class": int(c),
                    "region": region,
                    "slice_start": int(idx[0]),
                    "slice_stop": int(idx[-1]) + 1,
                    **m,
                }
            )
    return rows
