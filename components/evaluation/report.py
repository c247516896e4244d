"""Write an evaluation report: per-case CSV, compact DVC metrics, full statistics, plots."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.evaluation import plots
from components.evaluation.scoring import ScoredCases
from components.evaluation.statistics import area_agreement, json_safe, summarize

REPORT_METRICS = ("dice", "iou", "sensitivity", "specificity", "precision", "hd95", "assd")
SUMMARY_FILE, STATS_FILE, PER_CASE_FILE, ROC_FILE = (
    "summary.json",
    "statistics.json",
    "per_case.csv",
    "roc.csv",
)


def compact_summary(per_case: pd.DataFrame, class_names: Sequence[str], by_fold: bool) -> dict[str, Any]:
    """Per class: mean and sd of each reported metric (across folds when ``by_fold``, else across cases)."""
    out: dict[str, Any] = {}
    for name in class_names[1:]:
        sub = per_case[per_case["class_name"] == name]
        out[name] = {}
        for m in REPORT_METRICS:
            vals = sub.groupby("fold")[m].mean() if by_fold else sub[m]
            out[name][m] = {
                "mean": float(np.nanmean(vals)) if vals.notna().any() else None,
                "sd": float(np.nanstd(vals, ddof=1)) if vals.notna().sum() > 1 else None,
            }
    fg = per_case.groupby("class_name")["dice"].mean()
    out["mean_foreground_dice"] = float(fg.mean()) if len(fg) else None
    return json_safe(out)


def write_report(
    scored: ScoredCases, out_dir: Path, class_names: Sequence[str], by_fold: bool, unit: str
) -> dict:
    """Write per_case.csv, summary.json (DVC metrics), statistics.json, roc.csv and PNG plots.

    Args:
        scored: Per-case rows, ROC accumulator and worst cases.
        out_dir: ``reports/cv`` or ``reports/test``.
        class_names: Indexed by class value (0 = background).
        by_fold: Rows carry a ``fold`` column; summarise across folds.
        unit: Length unit of the distances ("mm" with a known spacing, else "px").

    Returns:
        The compact summary (what summary.json holds).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    df = scored.per_case
    df.to_csv(out_dir / PER_CASE_FILE, index=False)
    summary = compact_summary(df, class_names, by_fold)
    (out_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
    aucs = {c: a for c, a in scored.roc.auc().items() if c > 0}
    curves = {c: v for c, v in scored.roc.curves().items() if c > 0}
    stats = summarize(df, REPORT_METRICS, by_fold=by_fold)
    stats["roc_auc"] = {class_names[c]: a for c, a in aucs.items()}
    stats["area_agreement"] = {
        name: area_agreement(sub["pred_volume"], sub["ref_volume"])
        for name, sub in df.groupby("class_name")
        if len(sub) > 2
    }
    (out_dir / STATS_FILE).write_text(json.dumps(json_safe(stats), indent=2))
    roc_rows = [
        {"class_name": class_names[c], "fpr": float(f), "tpr": float(t)}
        for c, (fpr, tpr) in curves.items()
        for f, t in list(zip(fpr, tpr, strict=True))[:: max(1, len(fpr) // 200)]
    ]
    pd.DataFrame(roc_rows).to_csv(out_dir / ROC_FILE, index=False)

    pdir = out_dir / "plots"
    pdir.mkdir(exist_ok=True)
    box_df = df if by_fold else df.assign(fold=0)
    plots.boxplot_by_fold(box_df, "dice", pdir / "box_dice.png", unit=unit)
    plots.boxplot_by_fold(box_df, "hd95", pdir / "box_hd95.png", unit=unit)
    plots.roc_plot(curves, aucs, list(class_names), pdir / "roc.png")
    for name, sub in df.groupby("class_name"):
        if len(sub) > 2:
            png = pdir / f"bland_altman_{name}.png"
            plots.bland_altman_plot(sub["pred_volume"], sub["ref_volume"], png, f"{unit}²", label=str(name))
    if scored.worst:
        plots.worst_cases_gallery(scored.worst, list(class_names), pdir / "worst_cases.png")
    return summary
