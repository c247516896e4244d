"""The plan in MLflow: ``plan.*`` params and the plan files on the training's parent run, a lineage
tag with the plan's hash, and the lines the registered model's description gives it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from components.tracking.tracker import Tracker

TAG_PLAN = "segflow.plan_sha256"
PARAM_TEXT = 500  # longer values (augmentation lists) are cut; plan.json is logged whole


def read_plan(path: Path) -> dict[str, Any] | None:
    """plans/plan.json, or None where no plan stage ran (a hand-run stage, an older project)."""
    return json.loads(path.read_text()) if Path(path).is_file() else None


def plan_sha(path: Path) -> str:
    """sha256 of plan.json's bytes (the plan is deterministic), or ``none``."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest() if Path(path).is_file() else "none"


def plan_params(plan: Mapping[str, Any]) -> dict[str, str]:
    """``plan.<key>`` -> the value used, and whether it was the user's (``plan.yours``)."""
    out: dict[str, str] = {
        "plan.configuration": str(plan.get("configuration")),
        "plan.configurations": ",".join(c["name"] for c in plan.get("configurations", []) if "params" in c)
        or str(plan.get("configuration")),
        "plan.device": str(plan.get("budget", {}).get("device_name")),
        "plan.time_budget": str(plan.get("budget", {}).get("time_budget")),
        "plan.expected_s": f"{float(plan.get('estimate', {}).get('total_s', 0.0)):.0f}",
    }
    yours = []
    for key, v in plan.get("values", {}).items():
        out[f"plan.{key}"] = json.dumps(v.get("used"), sort_keys=True)[:PARAM_TEXT]
        if v.get("yours") is not None:
            yours.append(key)
    out["plan.yours"] = ",".join(sorted(yours))[:PARAM_TEXT] or "none"
    return out


def log_plan(tracker: Tracker, run_id: str, plans_dir: Path) -> None:
    """Log the plan's params and files (plan.json, plan.md, the resolved params) to ``run_id``."""
    plan = read_plan(Path(plans_dir) / "plan.json")
    if plan is None:
        return
    tracker.log_params(run_id, plan_params(plan))
    tracker.log_artifact(run_id, Path(plans_dir), "plan")


def plan_card_lines(plan: Mapping[str, Any] | None) -> list[str]:
    """What the model's description says of the plan that trained it."""
    if not plan:
        return []
    values = plan.get("values", {})
    model = values.get("train.model", {}).get("used") or {}
    budget = plan.get("budget", {})

    def used(key: str) -> Any:
        return values.get(key, {}).get("used")

    yours = sorted(k for k, v in values.items() if v.get("yours") is not None)
    return [
        f"- plan: {plan.get('configuration')} configuration for {budget.get('device_name')} "
        f"({budget.get('time_budget')}, {budget.get('memory_gb')} GB): {model.get('name')} "
        f"{model.get('kwargs', {})}, patch {used('train.patch_size')}, batch {used('train.batch_size')}, "
        f"{used('train.epochs')} epochs x {used('train.iterations_per_epoch')} steps",
        f"- your values over the plan's: {', '.join(yours) if yours else 'none'}",
    ]
