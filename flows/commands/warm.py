"""``segflow warm``: the resident warm stage servers a plain ``dvc repro`` leaves running."""

from __future__ import annotations

from typing import Annotated

import typer

WARM_HELP = (
    "List (status) or stop the resident warm stage servers that plain `dvc repro` runs start "
    "(each ends by itself after SEGFLOW_WARM_IDLE_S seconds without a stage; 0 turns them off)."
)


def warm_command(
    action: Annotated[str, typer.Argument(help="status or stop")] = "status",
) -> None:
    from flows.runtime.warm_resident import main

    if action not in ("status", "stop"):
        typer.secho(f"segflow warm: unknown action {action!r}; expected status or stop", fg="red", err=True)
        raise typer.Exit(2)
    main([action])
