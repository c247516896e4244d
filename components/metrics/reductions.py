"""Reductions of per-case metric tables: each computed here once, for training, reports and the gate.

A per-case table has one row per case and foreground class (``class_name``, metric columns and,
for cross-validation, ``fold``). NaN values (a metric undefined for that case) are left out of
every mean; a reduction with no value left is ``None``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd


def mean_sd(values: Sequence[float] | pd.Series) -> dict[str, float | None]:
    """Mean and sample standard deviation (ddof = 1) of the non-NaN values.

    Returns:
        ``{"mean": ..., "sd": ...}``; ``mean`` is None without values, ``sd`` without two.
    """
    s = pd.Series(values, dtype=float)
    return {
        "mean": float(np.nanmean(s)) if s.notna().any() else None,
        "sd": float(np.nanstd(s, ddof=1)) if s.notna().sum() > 1 else None,
    }


def class_means(per_case: pd.DataFrame, metric: str, by: str = "class_name") -> pd.Series:
    """Mean of ``metric`` over the cases of each class."""
    return per_case.groupby(by)[metric].mean()


def mean_foreground_dice(per_case: pd.DataFrame) -> float | None:
    """Mean over foreground classes of each class's mean Dice: the headline and promotion-gate score."""
    means = class_means(per_case, "dice").dropna()
    return float(means.mean()) if len(means) else None


def fold_class_means(per_case: pd.DataFrame, metrics: Sequence[str], by: str = "class_name") -> pd.DataFrame:
    """Mean of each metric over each fold's cases, indexed by ``(fold, class)``."""
    return per_case.groupby(["fold", by], sort=True)[list(metrics)].mean()


def mean_sd_by_class(
    per_case: pd.DataFrame, metrics: Sequence[str], by_fold: bool, by: str = "class_name"
) -> dict[str, dict[str, Any]]:
    """Per class and metric: mean ± sd across the fold means (``by_fold``) or across cases.

    Returns:
        ``{class: {metric: {"mean", "sd"}}}`` for every class present in ``per_case``.
    """
    groups = (
        fold_class_means(per_case, metrics, by).groupby(level=by, sort=False)
        if by_fold
        else per_case.groupby(by, sort=False)
    )
    return {str(name): {m: mean_sd(g[m]) for m in metrics} for name, g in groups}
