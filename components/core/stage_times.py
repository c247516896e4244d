"""How long each stage took when it last ran, so a run's report can set it beside the plan.

Each stage command appends its wall time to :data:`STAGE_TIMES` (outside every DVC output: DVC
deletes outs before a stage re-runs), keyed by stage; the last run of each stage wins.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

STAGE_TIMES = Path(".segflow") / "stage_times.json"


def read_stage_times(root: Path = Path()) -> dict[str, dict[str, float]]:
    """``{stage: {"start": t, "end": t, "seconds": s}}`` of the stages that ran here (empty if none)."""
    path = Path(root) / STAGE_TIMES
    try:
        data: Any = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def record_stage_time(stage: str, start: float, end: float, root: Path = Path()) -> None:
    """Record that ``stage`` ran from ``start`` to ``end`` (wall-clock seconds); best effort."""
    path = Path(root) / STAGE_TIMES
    times = read_stage_times(root)
    times[stage] = {"start": start, "end": end, "seconds": round(end - start, 2)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(times, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only workspace: the report then has no actual times, nothing else changes
