"""Write an evaluation report: per-case CSV, headline metrics (DVC metrics), full statistics, plots."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from components.core.layout import HEADLINE_FILE, PER_CASE_FILE, PLOTS_DIR, ROC_FILE, STATISTICS_FILE
from components.evaluation import plots
from components.evaluation.presentation import PROTOCOL_KEY
from components.evaluation.scoring import ScoredCases
from components.evaluation.statistics import area_agreement, json_safe, metric_statistics
from components.metrics.protocol import THRESHOLD_METRIC_NAMES
from components.metrics.reductions import mean_foreground_dice, mean_sd_by_class

REPORT_METRICS = ("dice", "iou", "sensitivity", "specificity", "precision", "hd95", "assd")


def headline_metrics(
    per_case: pd.DataFrame,
    class_names: Sequence[str],
    by_fold: bool,
    protocol: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """What ``summary.json`` (the DVC metrics file) holds: per class, mean and sd of each reported
    metric (across fold means when ``by_fold``, else across cases), the mean foreground Dice and
    the protocol metrics (pooled, pixel AUC, threshold-averaged Dice) under ``protocol``."""
    stats = mean_sd_by_class(per_case, REPORT_METRICS, by_fold)
    undefined = {m: {"mean": None, "sd": None} for m in REPORT_METRICS}
    out: dict[str, Any] = {name: stats.get(name, undefined) for name in class_names[1:]}
    out["mean_foreground_dice"] = mean_foreground_dice(per_case)
    if protocol is not None:
        out[PROTOCOL_KEY] = protocol
    return json_safe(out)


def protocol_metrics(scored: ScoredCases, class_names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per foreground class, the numbers of published protocols beside the per-case panel: pooled
    pixel counts over the whole set (``pooled_*``), the pixel-level ROC AUC (``pixel_roc_auc``) and
    the per-case means of the Dice averaged over binarisation thresholds of the probability
    (``dice_thrmean``) and of the label mask (``dice_thrmean_label``, Inf-Net's multi-class tool).
    Pixels outside the ROI or on the ignore label count in none of them."""
    pooled = scored.pooled.metrics() if scored.pooled is not None else {}
    aucs = scored.roc.auc()
    df = scored.per_case
    out: dict[str, dict[str, Any]] = {}
    for c, name in enumerate(class_names):
        if c == 0:
            continue
        row: dict[str, Any] = dict(pooled.get(c, {}))
        row["pixel_roc_auc"] = aucs.get(c)
        for metric in THRESHOLD_METRIC_NAMES:
            if metric in df.columns and len(df):
                values = df.loc[df["class_name"] == name, metric].dropna()
                row[metric] = float(values.mean()) if len(values) else None
        out[name] = row
    return out


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
        The headline metrics (what summary.json holds).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    df = scored.per_case
    df.to_csv(out_dir / PER_CASE_FILE, index=False)
    protocol = protocol_metrics(scored, class_names)
    headline = headline_metrics(df, class_names, by_fold, protocol)
    (out_dir / HEADLINE_FILE).write_text(json.dumps(headline, indent=2))
    aucs = {c: a for c, a in scored.roc.auc().items() if c > 0}
    curves = {c: v for c, v in scored.roc.curves().items() if c > 0}
    stats = metric_statistics(df, REPORT_METRICS, by_fold=by_fold)
    stats["roc_auc"] = {class_names[c]: a for c, a in aucs.items()}
    stats["protocol"] = protocol
    stats["area_agreement"] = {
        name: area_agreement(sub["pred_volume"], sub["ref_volume"])
        for name, sub in df.groupby("class_name")
        if len(sub) > 2
    }
    (out_dir / STATISTICS_FILE).write_text(json.dumps(json_safe(stats), indent=2))
    roc_rows = [
        {"class_name": class_names[c], "fpr": float(f), "tpr": float(t)}
        for c, (fpr, tpr) in curves.items()
        for f, t in list(zip(fpr, tpr, strict=True))[:: max(1, len(fpr) // 200)]
    ]
    pd.DataFrame(roc_rows).to_csv(out_dir / ROC_FILE, index=False)

    pdir = out_dir / PLOTS_DIR
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
    return headline
