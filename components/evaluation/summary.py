"""Turn a compact report summary into MLflow metric names and a Markdown table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def summary_metrics(summary: dict[str, Any], prefix: str) -> dict[str, float]:
    """``{"<prefix>_<metric>_<class>": mean}`` for every class and metric with a value."""
    out = {}
    for cls, metrics in summary.items():
        if isinstance(metrics, dict):
            for m, v in metrics.items():
                if v.get("mean") is not None:
                    out[f"{prefix}_{m}_{cls}"] = float(v["mean"])
    if summary.get("mean_foreground_dice") is not None:
        out[f"{prefix}_dice_mean_fg"] = float(summary["mean_foreground_dice"])
    return out


def summary_markdown(summary: dict[str, Any], title: str) -> str:
    """A Markdown table: one row per class, Dice / IoU / HD95 / ASSD as mean ± sd."""
    cols = ("dice", "iou", "hd95", "assd")
    lines = [f"### {title}", "", "| class | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for cls, metrics in summary.items():
        if not isinstance(metrics, dict):
            continue
        cells = []
        for m in cols:
            v = metrics.get(m, {})
            mean, sd = v.get("mean"), v.get("sd")
            cells.append("n/a" if mean is None else f"{mean:.3f}" + ("" if sd is None else f" ± {sd:.3f}"))
        lines.append(f"| {cls} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def fold_metric_means(
    per_case: Any, metrics: tuple[str, ...] = ("dice", "iou", "hd95", "assd")
) -> dict[int, dict[str, float]]:
    """Per fold: ``{"cv_<metric>_<class>": mean over that fold's cases}`` (for the fold's MLflow run)."""
    out: dict[int, dict[str, float]] = {}
    for fold, sub in per_case.groupby("fold"):
        means = sub.groupby("class_name")[list(metrics)].mean()
        out[int(fold)] = {f"cv_{m}_{c}": float(means.loc[c, m]) for c in means.index for m in metrics}
    return out


def run_summary(root: Path) -> dict[str, Any]:
    """CV summary, test summary and registration of the last pipeline run in ``root``."""

    def load(rel: str) -> Any:
        p = root / rel
        return json.loads(p.read_text()) if p.is_file() else None

    return {
        "cv": load("reports/cv/summary.json"),
        "test": load("reports/test/summary.json"),
        "registration": load("models/ensemble/registration.json"),
    }


def run_summary_markdown(summary: dict[str, Any]) -> str:
    """The end-of-run summary: CV and test tables and the registered version and alias."""
    parts = []
    if summary.get("cv"):
        parts.append(summary_markdown(summary["cv"], "Cross-validation: per class, mean ± sd across folds"))
    if summary.get("test"):
        parts.append(summary_markdown(summary["test"], "Test set, fold ensemble: mean ± sd across cases"))
    reg = summary.get("registration")
    if reg:
        parts.append(
            f"Registered model **{reg['registered_model']}** version {reg['version']} "
            f"with alias `{reg['alias']}` (test mean foreground Dice {reg['test_dice']:.4f}; "
            f"{reg['reason']})."
        )
    return "\n\n".join(parts) if parts else "No results yet: run `segflow run` or `dvc repro`."
