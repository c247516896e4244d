"""``segflow plan``'s printout: the plan as a table a user checks before any training."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

from components.planning.budget import format_duration
from components.planning.plan import in_stage_order


def _cell(value: Any, width: int = 46) -> str:
    text = json.dumps(value, separators=(", ", ": "))
    return text if len(text) <= width else text[: width - 3] + "..."


def print_plan(plan: Mapping[str, Any], console: Console | None = None) -> None:
    """Print the planned values (yours beside them), the expected time and the notes."""
    out = console or Console()
    b, d, e = plan["budget"], plan["dataset"], plan["estimate"]
    trained = [c["name"] for c in plan.get("configurations", []) if "params" in c] or [plan["configuration"]]
    what = " and ".join(trained) + (" configurations" if len(trained) > 1 else " configuration")
    out.print(f"[bold]Plan: {what}[/bold] — {d['summary']}")
    out.print(
        f"Device {b['device_name']} ({b['device']}), memory {b['memory_gb']:g} GB, time budget "
        f"{b['time_budget']} ({b['time_source']})"
    )
    table = Table(show_lines=False)
    for column in ("key", "planned", "yours", "why"):
        table.add_column(column, overflow="fold")
    for key, v in sorted(plan["values"].items()):
        yours = "" if v.get("yours") is None else _cell(v["yours"], 30)
        table.add_row(key, _cell(v["planned"]), yours, v["reason"])
    out.print(table)
    stages = ", ".join(f"{s} {format_duration(t)}" for s, t in in_stage_order(e["stages_s"]))
    total, fold = format_duration(e["total_s"]), format_duration(e["fold_s"])
    out.print(f"Expected: {total} for the run ({fold} per fold): {stages}")
    for c in plan.get("configurations", []):
        out.print(f"{c['name']}: {c['status']}" + (f" ({c['reason']})" if c.get("reason") else ""))
    for note in plan.get("notes", []):
        out.print(f"note: {note}")
    out.print("plans/plan.md and plans/plan.json hold the plan; `segflow run` trains it.")
