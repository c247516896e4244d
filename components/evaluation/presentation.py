"""Headline metrics (a report's summary.json) as MLflow metric names and as a Markdown table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from components.metrics.reductions import fold_class_means


def headline_mlflow_metrics(headline: dict[str, Any], prefix: str) -> dict[str, float]:
    """``{"<prefix>_<metric>_<class>": mean}`` for every class and metric with a value."""
    out = {}
    for cls, metrics in _classes(headline):
        for m, v in metrics.items():
            if v.get("mean") is not None:
                out[f"{prefix}_{m}_{cls}"] = float(v["mean"])
    for cls, values in (headline.get(PROTOCOL_KEY) or {}).items():  # pooled_dice, dice_thrmean, ...
        out.update({f"{prefix}_{m}_{cls}": float(v) for m, v in values.items() if v is not None})
    if headline.get("mean_foreground_dice") is not None:
        out[f"{prefix}_dice_mean_fg"] = float(headline["mean_foreground_dice"])
    return out


PROTOCOL_KEY = "protocol"  # summary.json: the protocol metrics, per class


def _classes(headline: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The per-class entries of a headline (not the mean Dice or the protocol section)."""
    return [(k, v) for k, v in headline.items() if isinstance(v, dict) and k != PROTOCOL_KEY]


# the protocol table: the pooled rates at the threshold beside the threshold-free numbers
PROTOCOL_COLUMNS = (
    "pooled_dice",
    "pooled_sensitivity",
    "pooled_specificity",
    "pooled_accuracy",
    "dice_thrmean",
    "dice_thrmean_label",
    "pixel_roc_auc",
)
PROTOCOL_THRESHOLD = (
    "Protocol metrics over all pixels of the set: `pooled_*` at the threshold of the predicted "
    "labels (each pixel's most probable class, i.e. class probability >= 0.5 with one foreground "
    "class; after the postprocessing, if any); `dice_thrmean` is Dice averaged over 256 thresholds "
    "0..1 of the class probability (per case, then the mean); `dice_thrmean_label` the same over "
    "the predicted label mask, scored as Inf-Net's multi-class evaluation does (min-max, Dice 0 "
    "where nothing overlaps); `pixel_roc_auc` needs no threshold."
)


def fold_mlflow_metrics(
    per_case: pd.DataFrame, metrics: tuple[str, ...] = ("dice", "iou", "hd95", "assd")
) -> dict[int, dict[str, float]]:
    """Per fold: ``{"cv_<metric>_<class>": mean over that fold's cases}`` (for the fold's MLflow run)."""
    out: dict[int, dict[str, float]] = {}
    for key, row in fold_class_means(per_case, metrics).iterrows():
        assert isinstance(key, tuple)  # (fold, class): a MultiIndex label
        fold, cls = key
        out.setdefault(int(fold), {}).update({f"cv_{m}_{cls}": float(row[m]) for m in metrics})
    return out


def headline_markdown(headline: dict[str, Any], title: str) -> str:
    """A Markdown table: one row per class, Dice / IoU / HD95 / ASSD as mean ± sd; then, when the
    headline has protocol metrics, the protocol table (:data:`PROTOCOL_COLUMNS`) under a line that
    says at which threshold its pooled rates are counted (:data:`PROTOCOL_THRESHOLD`)."""
    cols = ("dice", "iou", "hd95", "assd")
    lines = [f"### {title}", "", "| class | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for cls, metrics in _classes(headline):
        cells = []
        for m in cols:
            v = metrics.get(m, {})
            mean, sd = v.get("mean"), v.get("sd")
            cells.append("n/a" if mean is None else f"{mean:.3f}" + ("" if sd is None else f" ± {sd:.3f}"))
        lines.append(f"| {cls} | " + " | ".join(cells) + " |")
    protocol = headline.get(PROTOCOL_KEY) or {}
    if protocol:
        lines += ["", PROTOCOL_THRESHOLD, "", "| class | " + " | ".join(PROTOCOL_COLUMNS) + " |"]
        lines.append("|---" * (len(PROTOCOL_COLUMNS) + 1) + "|")
        for cls, values in protocol.items():
            cells = ["n/a" if values.get(m) is None else f"{values[m]:.3f}" for m in PROTOCOL_COLUMNS]
            lines.append(f"| {cls} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def configurations_line(doc: Mapping[str, Any]) -> str:
    """The configurations' comparison (reports/cv/configurations.json) in one line."""
    shown = ", ".join(
        f"{n} {'n/a' if c.get('dice') is None else format(c['dice'], '.4f')}"
        for n, c in doc["candidates"].items()
    )
    return f"Configurations ({doc['metric']}): {shown}; chosen: **{doc['chosen']}**"
