"""What the plan stage does, in plain Python: read params.yaml as written, the fingerprint and the
manifest; plan; check the resolved params (every name built, every value valid); write the plan.

Nothing is written until the resolved params pass every check: a plan that contradicts the
user's values stops here, naming both.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from components.core.layout import PLAN_JSON, PLAN_MD, RESOLVED_PARAMS, RESOLVED_PARAMS_2D
from components.data.dataset_json import read_dataset_json
from components.params.config import ConfigError, Params, load_yaml, parse_params
from components.params.user import parse_user_params, user_values
from components.planning.budget import resolve_budget
from components.planning.decision import PlanError
from components.planning.facts import dataset_facts
from components.planning.measure import MeasurementCache
from components.planning.plan import Plan
from components.planning.planner import make_plan

RESOLVED_HEADER = (
    "# The params every stage after `plan` reads: params.yaml with each `auto` replaced by its planned\n"
    "# value (plans/plan.md says why). Written by the plan stage; edit params.yaml, not this file.\n"
)
SECOND_HEADER = (
    "# The 2D configuration's params, trained beside the 3D one of plans/params.yaml (plans/plan.md\n"
    "# says why): params.yaml with each `auto` replaced by its planned value. Written by the plan\n"
    "# stage; edit params.yaml, not this file.\n"
)
NO_SECOND_HEADER = (
    "# This run trains one configuration (plans/params.yaml): this file repeats it, so that dvc.yaml\n"
    "# can list a second configuration's keys in every run. Written by the plan stage.\n"
)


def _classes(user: Params, fingerprint: Mapping[str, Any]) -> dict[str, int]:
    given = user.data.classes
    if isinstance(given, dict):
        return dict(given)
    found = fingerprint.get("classes")
    if not found:
        raise PlanError(
            "data.classes is auto but reports/validation/fingerprint.json names no classes; run validate"
        )
    return {str(k): int(v) for k, v in found.items()}


def _dump(header: str, resolved_raw: Mapping[str, Any]) -> str:
    return header + yaml.safe_dump(dict(resolved_raw), sort_keys=False, default_flow_style=None, width=100)


def _checked(resolved_raw: dict[str, Any], user: Params, root: Path, source: str) -> Params:
    """The resolved params, parsed and preflighted (every name built, every value valid)."""
    from components.training.preflight import preflight

    try:
        resolved = parse_params(resolved_raw, source)
        preflight(resolved, root=root)
    except ConfigError as err:
        yours = ", ".join(f"{k}={v}" for k, v in sorted(user_values(user).items())) or "none"
        raise PlanError(
            f"{err}\nyour values (params.yaml): {yours}; plans/plan.md shows the planned ones"
        ) from None
    return resolved


def plan_dataset(
    params_path: Path,
    fingerprint: Mapping[str, Any],
    manifest: pd.DataFrame,
    cache_dir: Path | None,
    root: Path,
) -> tuple[Plan, Params, dict[Path, str]]:
    """Plan for the dataset; returns the plan, the resolved params (the first configuration's) and
    the text of each resolved params file (plans/params.yaml, plans/params-2d.yaml).

    Raises:
        ConfigError: params.yaml is invalid.
        PlanError: The plan cannot be made, or it and the user's values do not fit together.
    """
    import torch

    raw = load_yaml(Path(params_path).read_text()) or {}
    user = parse_user_params(raw, str(params_path))
    facts = dataset_facts(
        fingerprint, manifest, _classes(user, fingerprint), user.preprocess.splits.test_fraction
    )
    data_dir = (Path(root) / user.data.dir).resolve()
    described = read_dataset_json(data_dir) if data_dir.is_dir() else None
    facts = replace(facts, name=described.name if described else None, folder=data_dir.name)
    from components.core.threads import apply_threads

    apply_threads()  # the threads training will use: the measurements are of those
    budget = resolve_budget(user.plan, torch.get_num_threads())
    plan = make_plan(user, facts, budget, MeasurementCache(cache_dir) if cache_dir is not None else None)
    resolved_plan = {
        "device": budget.device,
        "memory_gb": round(budget.memory_gb, 2),
        "time_budget": budget.time_text,
        "configurations": plan.trained,  # what train, evaluate and ensemble read
    }
    resolved_raw = plan.resolved(raw)
    resolved_raw.setdefault("plan", {}).update(resolved_plan)
    resolved = _checked(resolved_raw, user, root, "the planned params")
    texts = {RESOLVED_PARAMS: _dump(RESOLVED_HEADER, resolved_raw)}
    texts[RESOLVED_PARAMS_2D] = _dump(NO_SECOND_HEADER + RESOLVED_HEADER, resolved_raw)
    if plan.second is not None:
        second_raw = plan.resolved(raw, second=True)
        second_raw.setdefault("plan", {}).update(resolved_plan)
        second = _checked(
            second_raw, user, root, f"the planned params of the {plan.second.name} configuration"
        )
        if second.preprocess != resolved.preprocess:  # one prepared dataset serves both
            raise PlanError(
                "the plan's 3d and 2d configurations disagree on preprocess (a planner defect): "
                f"{resolved.preprocess} vs {second.preprocess}"
            )
        texts[RESOLVED_PARAMS_2D] = _dump(SECOND_HEADER, second_raw)
    return plan, resolved, texts


def _replace(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_plan(plan: Plan, resolved_texts: Mapping[Path, str], root: Path = Path()) -> None:
    """Write plan.json, plan.md and the resolved params files under ``root`` (each atomically)."""
    _replace(root / PLAN_JSON, plan.dumps())
    _replace(root / PLAN_MD, plan.markdown())
    for path, text in resolved_texts.items():
        _replace(root / path, text)
