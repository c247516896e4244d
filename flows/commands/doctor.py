"""``segflow doctor``: which backend each part uses and whether it answers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

DOCTOR_HELP = (
    "Which backend MLflow tracking/artifacts, Prefect, the DVC remote and Dask use (from the "
    "environment) and whether each answers, and how many CPU threads torch uses here and why; "
    "exit 1 when a configured service does not answer or a thread setting is unusable."
)


def doctor_command(
    root: Annotated[Path, typer.Option(help="Project root (its .dvc/config names the DVC remote).")] = Path(),
) -> None:
    """Report each backend and whether it answers (credentials never printed)."""
    from rich.console import Console
    from rich.table import Table

    from components.services.doctor import run_checks, thread_report

    checks = run_checks(os.environ, root.resolve())
    table = Table(title="segflow doctor")
    for col in ("part", "backend", "status", "detail"):
        table.add_column(col, overflow="fold")
    for c in checks:
        status = "[green]ok[/]" if c.ok else "[red]FAIL[/]" if c.failed else "[dim]embedded[/]"
        table.add_row(c.part, c.backend, status, c.detail)
    console = Console(width=max(120, Console().width))
    console.print(table)
    rows, thread_error = thread_report(os.environ)
    threads = Table(title="CPU threads (torch, OpenMP, BLAS): SEGFLOW_THREADS = a count, auto or off")
    for col in ("input", "value"):
        threads.add_column(col, overflow="fold")
    for name, value in rows:
        threads.add_row(name, value)
    if thread_error:
        threads.add_row("[red]FAIL[/]", thread_error)
    console.print(threads)
    failed = [c.part for c in checks if c.failed]
    if failed:
        typer.secho(f"segflow doctor: no answer from {', '.join(failed)}", fg="red", err=True)
    if thread_error:
        typer.secho(f"segflow doctor: {thread_error}", fg="red", err=True)
    if failed or thread_error:
        raise typer.Exit(1)
