"""The last pipeline run's results in a project: CV and test headline metrics and the registration."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from components.core import layout
from components.core.stage_times import read_stage_times
from components.evaluation.presentation import configurations_line, headline_markdown
from components.planning.budget import format_duration
from components.planning.plan import STAGE_ORDER


def last_run_results(root: Path) -> dict[str, Any]:
    """CV summary, test summary and registration of the last pipeline run in ``root``."""

    def load(rel: Path) -> Any:
        p = root / rel
        return json.loads(p.read_text()) if p.is_file() else None

    plan = load(layout.PLAN_JSON)
    return {
        "cv": load(layout.CV_REPORTS / layout.HEADLINE_FILE),
        "configurations": load(layout.CONFIGURATIONS),
        "test": load(layout.TEST_REPORTS / layout.HEADLINE_FILE),
        "registration": load(layout.REGISTRATION),
        "time": time_report(plan, read_stage_times(root)) if plan else None,
    }


def time_report(plan: dict[str, Any], actual: dict[str, dict[str, float]]) -> dict[str, Any]:
    """The plan's expected seconds per stage beside what each stage took when it last ran."""
    planned = plan.get("estimate", {}).get("stages_s", {})
    stages = [s for s in STAGE_ORDER if s in planned or s in actual]
    return {
        "budget": plan.get("budget", {}).get("time_budget"),
        "budget_s": plan.get("budget", {}).get("time_budget_s"),
        "stages": {
            s: {"planned_s": planned.get(s), "actual_s": actual.get(s, {}).get("seconds")} for s in stages
        },
    }


def time_markdown(report: dict[str, Any]) -> str:
    """Planned vs actual time per stage, and in all, against the budget."""
    rows = ["| stage | planned | took |", "|---|---|---|"]
    planned_total = actual_total = 0.0
    for stage, t in report["stages"].items():
        p, a = t.get("planned_s"), t.get("actual_s")
        planned_total += p or 0.0
        actual_total += a or 0.0
        shown = [format_duration(v) if v is not None else "-" for v in (p, a)]
        rows.append(f"| {stage} | {shown[0]} | {shown[1]} |")
    rows.append(f"| **all** | {format_duration(planned_total)} | {format_duration(actual_total)} |")
    head = f"Time: budget {report.get('budget')}, planned vs taken (each stage's last run)"
    return head + "\n\n" + "\n".join(rows)


def links_markdown(links: dict[str, str]) -> str:
    """A bullet list of labelled links (label -> URL), for Prefect artifacts and reports."""
    return "\n".join(f"- {label}: [{url}]({url})" for label, url in links.items())


def last_run_markdown(results: dict[str, Any]) -> str:
    """The end-of-run summary: CV and test tables and the registered version and alias."""
    parts = []
    if results.get("cv"):
        parts.append(headline_markdown(results["cv"], "Cross-validation: per class, mean ± sd across folds"))
    if len((results.get("configurations") or {}).get("candidates", {})) > 1:
        parts.append(configurations_line(results["configurations"]))
    if results.get("test"):
        parts.append(headline_markdown(results["test"], "Test set, fold ensemble: mean ± sd across cases"))
    reg = results.get("registration")
    if reg:
        parts.append(
            f"Registered model **{reg['registered_model']}** version {reg['version']} "
            f"with alias `{reg['alias']}` (test mean foreground Dice {reg['test_dice']:.4f}; "
            f"{reg['reason']})."
        )
        if reg.get("links"):
            parts.append(links_markdown(reg["links"]))
    if results.get("time"):
        parts.append(time_markdown(results["time"]))
    return "\n\n".join(parts) if parts else "No results yet: run `segflow run` or `dvc repro`."
