"""``segflow metrics``: evaluate a folder of predicted masks against reference masks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    import pandas as pd
    from rich.table import Table

    from components.metrics.protocol import PooledCounts

SUMMARY_METRICS = ("dice", "iou", "hd95", "assd", "surface_dice", "ravd")


def _numbers(text: str | None, kind: type, option: str) -> list | None:
    if text is None or not text.strip():
        return None
    try:
        return [kind(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a comma-separated list of {kind.__name__}s, "
            f"e.g. {'1,2' if kind is int else '0.7,0.7'}",
            param_hint=option,
        ) from None


def metrics_command(
    pred: Annotated[
        Path, typer.Option("--pred", help="Folder of predicted class-index masks (PNG, TIFF or NIfTI).")
    ],
    ref: Annotated[
        Path, typer.Option("--ref", help="Folder of reference masks, paired with --pred by file stem.")
    ],
    classes: Annotated[
        str | None,
        typer.Option(
            help="Classes to evaluate, e.g. 1,2 (default: every non-zero label in the references; "
            "references written as 0 / 255 are binary: 255 is read as 1 in both folders)."
        ),
    ] = None,
    spacing: Annotated[
        str | None,
        typer.Option(
            help="Voxel size per array axis, e.g. 0.7,0.7 or 2.5,0.7,0.7 (Z,Y,X); default: NIfTI header or 1."
        ),
    ] = None,
    connectivity: Annotated[
        int,
        typer.Option(help="Border neighbourhood for surface distances: 1 (faces) .. ndim (all neighbours)."),
    ] = 1,
    tolerance: Annotated[float, typer.Option(help="Surface Dice tolerance in physical units (mm).")] = 1.0,
    out: Annotated[Path, typer.Option(help="Per-case CSV to write (one row per case and class).")] = Path(
        "per_case.csv"
    ),
    regions: Annotated[
        bool,
        typer.Option(
            help="3D: also score base / middle / apex thirds of the reference along the slice axis."
        ),
    ] = False,
    roi: Annotated[
        Path | None,
        typer.Option(
            help="Folder of regions of interest (same stems; non-zero = scored): outside counts nowhere."
        ),
    ] = None,
    ignore_label: Annotated[
        int | None,
        typer.Option(help="Reference value of unannotated pixels (counts in no metric), e.g. 255."),
    ] = None,
) -> None:
    """Compute the metric panel for every case and class, write a CSV and print a summary table,
    then the pooled (all pixels of all cases) protocol metrics per class."""
    from rich.console import Console

    from components.data.regions import MAX_CLASSES
    from components.evaluation.mask_folders import FolderEvaluationError, evaluate_folders
    from components.io import ImageReadError
    from components.metrics.protocol import PooledCounts

    class_list = _numbers(classes, int, "--classes")
    spacing_list = _numbers(spacing, float, "--spacing")
    pooled = PooledCounts(MAX_CLASSES)
    try:
        df = evaluate_folders(
            pred,
            ref,
            class_list,
            spacing_list,
            connectivity,
            tolerance,
            regions=regions,
            roi_dir=roi,
            ignore_label=ignore_label,
            pooled=pooled,
        )
    except (FolderEvaluationError, ImageReadError, ValueError) as exc:
        typer.secho(f"segflow metrics: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    df.to_csv(tmp, index=False)
    os.replace(tmp, out)

    whole = df[df["region"] == "all"]
    Console().print(_summary_table(whole, f"{whole['case_id'].nunique()} cases"))
    if regions and (df["region"] != "all").any():
        for region in ("base", "middle", "apex"):
            Console().print(_summary_table(df[df["region"] == region], f"{region} third of each reference"))
    Console().print(_pooled_table(pooled, sorted(int(c) for c in whole["class"].unique())))
    typer.echo(f"wrote {out} ({len(df)} rows); NaN (see the empty-mask policy) is excluded from the summary")


def _pooled_table(pooled: PooledCounts, classes: list[int]) -> Table:
    """Per class, the protocol metrics over all pixels of all cases (``pooled_*``)."""
    from rich.table import Table

    from components.metrics.protocol import POOLED_METRIC_NAMES

    values = pooled.metrics()
    table = Table(
        title="pooled over all pixels of all cases (one confusion matrix per class), at the predicted "
        "masks' labels: the masks are already thresholded, no threshold is applied here"
    )
    table.add_column("class")
    for m in POOLED_METRIC_NAMES:
        table.add_column(m, justify="right")
    for c in classes:
        table.add_row(str(c), *(f"{values[c][m]:.4f}" for m in POOLED_METRIC_NAMES))
    return table


def _summary_table(df: pd.DataFrame, what: str) -> Table:
    """Per class: mean ± sd and the 95% bootstrap CI of each summary metric, and empty-mask counts."""
    from rich.table import Table

    from components.evaluation.statistics import metric_statistics

    summary = metric_statistics(df, SUMMARY_METRICS, by_fold=False)["per_class"]
    table = Table(title=f"{what}: mean ± sd [95% bootstrap CI of the mean]")
    table.add_column("class")
    table.add_column("n", justify="right")
    for m in SUMMARY_METRICS:
        table.add_column(m, justify="right")
    table.add_column("empty (ref/pred/both)", justify="right")
    for name, stats in summary.items():
        sub = df[df["class_name"] == name]
        cells = []
        for m in SUMMARY_METRICS:
            s = stats[m]
            cells.append(
                "—"
                if s["mean"] is None
                else f"{s['mean']:.3f} ± {s['sd'] or 0:.3f}\n[{s['ci_low']:.3f}, {s['ci_high']:.3f}]"
            )
        empty = "/".join(str(int((sub["empty"] == k).sum())) for k in ("ref", "pred", "both"))
        table.add_row(name, str(len(sub)), *cells, empty)
    return table
