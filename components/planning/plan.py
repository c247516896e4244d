"""The plan: every planned value with its reason, the user's values beside them, what was measured
and the expected time; written as ``plans/plan.json``, ``plans/plan.md`` and the resolved params
(``plans/params.yaml``) that the stages after the plan read.

The JSON is deterministic: keys sorted, floats rounded, nothing that differs between two plans of the
same data, params, budget and device (a measurement's cache hit is not recorded).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from components.planning.budget import format_duration

NOT_SET = None  # ``yours`` of a key the user left ``auto``
STAGE_ORDER = ("validate", "plan", "preprocess", "train", "evaluate", "ensemble")


def in_stage_order(stages: Mapping[str, float]) -> list[tuple[str, float]]:
    """Per-stage seconds in the pipeline's order (plan.json keeps keys sorted)."""
    return sorted(stages.items(), key=lambda kv: STAGE_ORDER.index(kv[0]) if kv[0] in STAGE_ORDER else 99)


PLAN_VERSION = 1


@dataclass(frozen=True)
class PlannedValue:
    """One plannable key: what the plan chose, what the user set (or None) and why."""

    planned: Any
    reason: str
    yours: Any = NOT_SET
    user_set: bool = False

    @property
    def used(self) -> Any:
        """The user's value where set, else the planned one."""
        return self.yours if self.user_set else self.planned


def _rounded(value: Any) -> Any:
    """Floats to 6 significant digits at any depth (measurements vary in their last bits)."""
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, Mapping):
        return {str(k): _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value


def _values_json(values: Mapping[str, PlannedValue]) -> dict[str, Any]:
    return {
        k: {"planned": v.planned, "yours": v.yours, "used": v.used, "reason": v.reason}
        for k, v in sorted(values.items())
    }


@dataclass
class Configured:
    """A second configuration trained beside the first (components/planning/configurations.py):
    its own values (written as its own resolved params), network and estimate."""

    name: str
    values: dict[str, PlannedValue]
    network: dict[str, Any]
    estimate: dict[str, Any]


@dataclass
class Plan:
    """Everything the plan stage decided (see the module docstring)."""

    values: dict[str, PlannedValue]
    budget: dict[str, Any]
    dataset: dict[str, Any]
    configuration: str
    configurations: list[dict[str, Any]]
    network: dict[str, Any]
    estimate: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    second: Configured | None = None  # a 2d configuration trained beside the 3d one

    @property
    def trained(self) -> list[str]:
        """The configurations this run trains, the first being plans/params.yaml's."""
        return [self.configuration] + ([self.second.name] if self.second else [])

    def used(self, key: str) -> Any:
        """The value the run uses for ``key``."""
        return self.values[key].used

    def to_json(self) -> dict[str, Any]:
        """JSON-ready, deterministic form (plan.json)."""
        return _rounded(
            {
                "version": PLAN_VERSION,
                "configuration": self.configuration,
                "values": _values_json(self.values),
                "budget": self.budget,
                "dataset": self.dataset,
                "configurations": [self._entry(c) for c in self.configurations],
                "network": self.network,
                "estimate": self.estimate,
                "notes": list(self.notes),
            }
        )

    def _entry(self, entry: dict[str, Any]) -> dict[str, Any]:
        """A ``configurations`` entry, the second configuration's with its values and estimate."""
        if self.second is None or entry["name"] != self.second.name:
            return entry
        s = self.second
        return {**entry, "values": _values_json(s.values), "network": s.network, "estimate": s.estimate}

    def dumps(self) -> str:
        """plan.json's text."""
        return json.dumps(self.to_json(), indent=1, sort_keys=True) + "\n"

    def resolved(self, user_raw: Mapping[str, Any], second: bool = False) -> dict[str, Any]:
        """params.yaml as written with every ``auto`` replaced by its planned value (``second``:
        the second configuration's values; it must exist)."""
        if second and self.second is None:
            raise ValueError("this plan trains one configuration")
        values = self.second.values if second and self.second is not None else self.values
        out = copy.deepcopy(dict(user_raw))
        for key, value in values.items():
            node = out
            *parents, last = key.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = copy.deepcopy(value.used)
        return out

    def markdown(self) -> str:
        """plan.md: the plan as a person reads it."""
        b, d, e = self.budget, self.dataset, self.estimate
        title = " and ".join(self.trained) + (" configurations" if self.second else " configuration")
        lines = [
            f"# Plan: {title}",
            "",
            f"- Dataset: {d['summary']}",
            f"- Device: {b['device_name']} ({b['device']}), memory budget {b['memory_gb']:g} GB "
            f"({b['memory_source']})",
            f"- Time budget: {b['time_budget']} ({b['time_source']}); expected run "
            f"{format_duration(e['total_s'])}, {format_duration(e['fold_s'])} per fold",
            "",
            "| key | planned | yours | why |",
            "|---|---|---|---|",
        ]
        for key, v in sorted(self.values.items()):
            yours = _cell(v.yours) if v.user_set else ""
            lines.append(f"| `{key}` | {_cell(v.planned)} | {yours} | {v.reason} |")
        lines += ["", "## Expected time per stage", "", "| stage | expected |", "|---|---|"]
        lines += [f"| {s} | {format_duration(t)} |" for s, t in in_stage_order(e["stages_s"])]
        if self.network.get("candidates"):
            lines += [
                "",
                "## Networks measured on this device",
                "",
                "Steps per fold as the candidates were compared, with every fold of the split trained; "
                "`train.folds` and `train.epochs` above say what the run trains.",
                "",
                "| network | patch | batch | s/step | steps per fold |",
                "|---|---|---|---|---|",
            ]
            lines += [
                f"| {c['network']} | {c['patch']} | {c['batch']} | {c['step_s']:.3f} "
                f"| {c['steps_per_fold']} |"
                for c in self.network["candidates"]
            ]
        if self.configurations:
            lines += ["", "## Configurations", ""]
            lines += [
                f"- **{c['name']}**: {c['status']}" + (f" ({c['reason']})" if c.get("reason") else "")
                for c in self.configurations
            ]
        if self.second is not None:
            lines += self._second_markdown()
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def _second_markdown(self) -> list[str]:
        """The second configuration's values where they differ from the first's, and its time."""
        s = self.second
        assert s is not None
        lines = [
            "",
            f"## The {s.name} configuration (its own resolved params)",
            "",
            f"Expected {format_duration(s.estimate['fold_s'])} per fold, {s.estimate['steps_per_fold']} "
            f"steps; every key not listed is as in the {self.configuration} configuration.",
            "",
            "| key | planned | yours | why |",
            "|---|---|---|---|",
        ]
        for key, v in sorted(s.values.items()):
            first = self.values.get(key)
            if first is None or first.used != v.used or first.reason != v.reason:
                yours = _cell(v.yours) if v.user_set else ""
                lines.append(f"| `{key}` | {_cell(v.planned)} | {yours} | {v.reason} |")
        return lines


def _cell(value: Any) -> str:
    """A value for a markdown table cell (compact JSON, pipes escaped)."""
    text = json.dumps(_rounded(value), separators=(", ", ": "))
    if len(text) > 80:
        text = text[:77] + "..."
    return text.replace("|", "\\|")
