"""Evaluation plots as PNG files: per-fold box plots, ROC curves, Bland–Altman, worst-case gallery.

Figures are drawn on matplotlib's Agg canvas created inside each function (no pyplot, no global
backend switch at import), and written to a temporary file that is renamed into place.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.metrics import METRIC_INFO
from components.viz.overlay import PALETTE, class_color, overlay, to_gray_unit

# Colour-blind-safe palette (Okabe–Ito) for classes 1, 2, ...


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, out_png: str | Path) -> Path:
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}.png")
    fig.savefig(tmp, format="png")
    os.replace(tmp, out)
    return out


def _metric_label(metric: str, unit: str = "mm") -> str:
    info = METRIC_INFO.get(metric)
    if info is None:
        return metric
    suffix = {"length": f" [{unit}]", "volume": f" [{unit}³]"}.get(info.unit, "")
    arrow = "higher is better" if info.higher_is_better else "lower is better"
    return f"{metric}{suffix} ({arrow})"


def boxplot_by_fold(per_case_df: pd.DataFrame, metric: str, out_png: str | Path, unit: str = "mm") -> Path:
    """Box plot of one metric per fold (x) and class (colour), with every case as a dot.

    Args:
        per_case_df: Per-case table with ``class`` or ``class_name``, optional ``fold``, and ``metric``.
        metric: Column to plot; NaN values are dropped and counted in the legend.
        out_png: Output path.
        unit: Physical unit of distances (axis label).
    """
    if metric not in per_case_df:
        raise KeyError(f"per-case table has no column {metric!r}; columns: {list(per_case_df.columns)}")
    df = per_case_df.copy()
    df["_name"] = df["class_name"].astype(str) if "class_name" in df else "class " + df["class"].astype(str)
    df["_fold"] = df["fold"].map(lambda f: f"fold {f}") if "fold" in df else "all cases"
    folds = list(dict.fromkeys(sorted(df["_fold"].unique())))
    names = list(dict.fromkeys(df["_name"]))
    fig = _figure(max(5.0, 1.3 * len(folds) * max(1, len(names)) + 2.0), 4.2)
    ax = fig.add_subplot()
    width = 0.8 / len(names)
    rng = np.random.default_rng(0)
    for k, name in enumerate(names):
        sub = df[df["_name"] == name]
        data, pos = [], []
        n_nan = 0
        for i, fold in enumerate(folds):
            v = pd.to_numeric(sub.loc[sub["_fold"] == fold, metric], errors="coerce")
            n_nan += int(v.isna().sum())
            data.append(v.dropna().to_numpy())
            pos.append(i - 0.4 + width * (k + 0.5))
        color = PALETTE[k % len(PALETTE)]
        ax.boxplot(
            [d if d.size else np.array([np.nan]) for d in data], positions=pos, widths=width * 0.8,
            patch_artist=True, showfliers=False, medianprops={"color": "black"},
            boxprops={"facecolor": color, "alpha": 0.55},
        )  # fmt: skip
        for p, d in zip(pos, data, strict=True):
            ax.scatter(p + rng.uniform(-width * 0.25, width * 0.25, d.size), d, s=9, color=color,
                       edgecolor="black", linewidth=0.3, zorder=3)  # fmt: skip
        label = f"{name} (n={sum(d.size for d in data)}" + (f", {n_nan} NaN)" if n_nan else ")")
        ax.plot([], [], "s", color=color, alpha=0.7, label=label)
    ax.set_xticks(range(len(folds)), folds)
    ax.set_xlim(-0.6, len(folds) - 0.4)
    ax.set_xlabel("cross-validation fold")
    ax.set_ylabel(_metric_label(metric, unit))
    ax.set_title(f"{METRIC_INFO[metric].description if metric in METRIC_INFO else metric} per case, by fold")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(title="class", loc="best", fontsize=8)
    return _save(fig, out_png)


def roc_plot(
    curves: Mapping[int, tuple[np.ndarray, np.ndarray]],
    aucs: Mapping[int, float],
    class_names: Sequence[str] | Mapping[int, str],
    out_png: str | Path,
) -> Path:
    """Pixel-level one-vs-rest ROC curves, one per class, AUC in the legend.

    Args:
        curves: ``{class: (fpr, tpr)}`` as from ``StreamingROC.curves()``.
        aucs: ``{class: auc}``.
        class_names: Names indexed by class.
        out_png: Output path.
    """
    fig = _figure(5.2, 5.0)
    ax = fig.add_subplot()
    for k, (c, (fpr, tpr)) in enumerate(sorted(curves.items())):
        if not np.all(np.isfinite(fpr)) or not np.all(np.isfinite(tpr)):
            continue  # class absent (no positives or no negatives): no curve
        ax.plot(
            fpr, tpr, color=PALETTE[k % len(PALETTE)], lw=2, label=f"{class_names[c]} (AUC = {aucs[c]:.3f})"
        )
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance (AUC = 0.5)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("false positive rate (1 - specificity)")
    ax.set_ylabel("true positive rate (sensitivity)")
    ax.set_title("Pixel-level ROC per class (one vs rest)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, out_png)


def bland_altman_plot(
    pred_vol: Sequence[float] | np.ndarray | pd.Series,
    ref_vol: Sequence[float] | np.ndarray | pd.Series,
    out_png: str | Path,
    unit: str = "mm³",
    label: str = "",
) -> Path:
    """Bland–Altman plot of predicted vs reference volumes (or areas): bias and 95% limits.

    Args:
        pred_vol: Predicted volume per case.
        ref_vol: Reference volume per case.
        out_png: Output path.
        unit: Unit of the volumes for the axis labels (e.g. ``"mm³"``, ``"px²"``); a squared unit
            is labelled "area", a cubed one "volume".
        label: What is measured (e.g. the class name), shown in the title.
    """
    from components.evaluation.statistics import area_agreement

    kind = "area" if unit.endswith("²") else "volume"

    p, r = np.asarray(pred_vol, float), np.asarray(ref_vol, float)
    ok = ~(np.isnan(p) | np.isnan(r))
    p, r = p[ok], r[ok]
    agg = area_agreement(p, r)
    fig = _figure(6.2, 4.4)
    ax = fig.add_subplot()
    ax.scatter((p + r) / 2, p - r, s=16, color=PALETTE[4], edgecolor="black", linewidth=0.3, label="case")
    for key, style, text in (
        ("bias", "-", "bias"),
        ("loa_low", "--", "-1.96 SD"),
        ("loa_high", "--", "+1.96 SD"),
    ):
        if agg[key] is not None:
            ax.axhline(agg[key], ls=style, color="black" if key == "bias" else PALETTE[5], lw=1.2)
            ax.annotate(f"{text}: {agg[key]:.3g}", xy=(1.0, agg[key]), xycoords=("axes fraction", "data"),
                        xytext=(-4, 3), textcoords="offset points", ha="right", fontsize=8)  # fmt: skip
    ax.axhline(0, color="grey", lw=0.8, alpha=0.6)
    ax.set_xlabel(f"mean of predicted and reference {kind} [{unit}]")
    ax.set_ylabel(f"predicted - reference {kind} [{unit}]")
    r_txt = f", Pearson r = {agg['pearson_r']:.3f}" if agg["pearson_r"] is not None else ""
    what = f"{label} {kind}" if label else kind
    ax.set_title(f"Bland–Altman: {what} agreement (n = {agg['n']}{r_txt})")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, out_png)


def _to_2d(item: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    image, ref, pred = (np.asarray(item[k]) for k in ("image", "ref", "pred"))
    if ref.ndim == 3:  # volume: show the slice with the most reference (else predicted) foreground
        weight = (ref > 0).sum(axis=(1, 2)) if (ref > 0).any() else (pred > 0).sum(axis=(1, 2))
        z = int(np.argmax(weight))
        image, ref, pred = image[z], ref[z], pred[z]
    return image, ref, pred


def worst_cases_gallery(
    items: Sequence[Mapping[str, Any]], class_names: Sequence[str], out_png: str | Path
) -> Path:
    """One row per case: image, reference overlay, prediction overlay (3D: the largest ref slice).

    Args:
        items: Dicts with ``image`` (H, W[, 3]) or (D, H, W), ``ref`` and ``pred`` label maps of the
            same spatial shape, and ``title`` (e.g. ``"case_12  Dice 0.41"``).
        class_names: Names indexed by class (index 0 = background, not drawn).
        out_png: Output path.
    """
    from matplotlib.artist import Artist
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    if not items:
        raise ValueError("worst_cases_gallery needs at least one item")
    fig = _figure(9.0, 3.0 * len(items) + 0.6)
    axes = fig.subplots(len(items), 3, squeeze=False)
    for row, item in zip(axes, items, strict=True):
        image, ref, pred = _to_2d(item)
        gray = to_gray_unit(image)
        panels = (gray, overlay(gray, ref, 0.55, stretch=False), overlay(gray, pred, 0.55, stretch=False))
        for ax, panel, name in zip(row, panels, ("image", "reference", "prediction"), strict=True):
            ax.imshow(
                panel, cmap="gray" if panel.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest"
            )
            ax.set_title(f"{item.get('title', '')}\n{name}" if name == "image" else name, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        if (ref > 0).any():  # reference outline on the prediction: where they disagree at a glance
            row[2].contour(ref > 0, levels=[0.5], colors="white", linewidths=0.9)
    handles: list[Artist] = [Patch(color=class_color(c), label=n) for c, n in enumerate(class_names) if c > 0]
    handles.append(Line2D([], [], color="white", lw=1.5, label="reference outline (on prediction)"))
    legend = fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), title="class overlay")
    legend.get_frame().set_facecolor("#bbbbbb")
    fig.suptitle("Worst cases: image, reference and prediction", fontsize=11)
    return _save(fig, out_png)
