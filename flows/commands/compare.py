"""``segflow compare``: paired statistics of two per-case result tables on the same cases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def compare_command(
    a: Annotated[Path, typer.Option("--a", help="per_case.csv of model A (e.g. the champion).")],
    b: Annotated[Path, typer.Option("--b", help="per_case.csv of model B (e.g. the challenger).")],
    metrics: Annotated[str, typer.Option(help="Comma-separated metric columns.")] = "dice,hd95",
    out: Annotated[Path | None, typer.Option(help="Also write the full result as JSON.")] = None,
) -> None:
    """Wilcoxon signed-rank and paired t-test per class, mean difference B - A with a bootstrap 95% CI."""
    import pandas as pd
    from rich.console import Console
    from rich.table import Table

    from components.evaluation.statistics import compare_paired

    for p in (a, b):
        if not p.is_file():
            raise typer.BadParameter(f"{p}: no such file (a per_case.csv from reports/ or segflow metrics)")
    names = [m.strip() for m in metrics.split(",") if m.strip()]
    result = compare_paired(pd.read_csv(a), pd.read_csv(b), metrics=names)
    if result["n_matched"] == 0:
        typer.secho("no (case_id, class) pairs in common: were both evaluated on the same cases?", fg="red")
        raise typer.Exit(1)
    table = Table(title=f"B - A on {result['n_matched']} matched (case, class) rows")
    for col in ("class", "metric", "n", "mean A", "mean B", "mean diff [95% CI]", "Wilcoxon p", "t-test p"):
        table.add_column(col)

    def fmt(v: object) -> str:
        return "n/a" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)

    rows = [("all", result["all"]), *result["per_class"].items()]
    for cls, per_metric in rows:
        for m, s in per_metric.items():
            ci = f"{fmt(s['mean_diff'])} [{fmt(s['ci_low'])}, {fmt(s['ci_high'])}]"
            table.add_row(
                cls,
                m,
                str(s["n"]),
                fmt(s["mean_a"]),
                fmt(s["mean_b"]),
                ci,
                fmt(s["wilcoxon_p"]),
                fmt(s["ttest_p"]),
            )
    Console().print(table)
    if out is not None:
        out.write_text(json.dumps(result, indent=2))
