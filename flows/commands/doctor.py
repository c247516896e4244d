"""``segflow doctor``: which backend each part uses and whether it answers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

DOCTOR_HELP = (
    "Which backend MLflow tracking/artifacts, Prefect, the DVC remote and Dask use (from the "
    "environment) and whether each answers; exit 1 when a configured service does not."
)


def doctor_command(
    root: Annotated[Path, typer.Option(help="Project root (its .dvc/config names the DVC remote).")] = Path(),
) -> None:
    """Report each backend and whether it answers (credentials never printed)."""
    from rich.console import Console
    from rich.table import Table

    from components.services.doctor import run_checks

    checks = run_checks(os.environ, root.resolve())
    table = Table(title="segflow doctor")
    for col in ("part", "backend", "status", "detail"):
        table.add_column(col, overflow="fold")
    for c in checks:
        status = "[green]ok[/]" if c.ok else "[red]FAIL[/]" if c.failed else "[dim]embedded[/]"
        table.add_row(c.part, c.backend, status, c.detail)
    Console(width=max(120, Console().width)).print(table)
    failed = [c.part for c in checks if c.failed]
    if failed:
        typer.secho(f"segflow doctor: no answer from {', '.join(failed)}", fg="red", err=True)
        raise typer.Exit(1)
