"""Values set for one dataset do not silently follow the user to the next.

``segflow run --set key=value`` writes the value into params.yaml (DVC runs what the file says), so
without care a ``--set train.folds=[0]`` made for one dataset would quietly apply to the next. Each
run records what its ``--set`` wrote, for which dataset, and what the key held before
(:data:`RECORD`, outside every DVC output). When a later run names another dataset (``--data``):

- a key an earlier ``--set`` wrote, not given again and still holding that value, goes back to what
  it held before (usually ``auto``: the plan chooses it for the new data), and is listed as dropped;
- every other value params.yaml sets away from segflow's default is the user's own edit: it is kept,
  and listed as carried over, so it is never a surprise.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from components.params.user import PLANNABLE, UserParams

RECORD = Path(".segflow") / "run_overrides.json"
# keys that name the data or the machine's budget, not a choice for one dataset: never listed
# (ensemble.registered_model and tracking.experiment are the dataset's own: a --set name is
# dropped with the rest, a name written into params.yaml is listed as carried over)
NOT_DATASET_SPECIFIC = ("data.dir", "data.synthetic.", "plan.")


@dataclass(frozen=True)
class OverrideRecord:
    """What the last run's ``--set`` wrote into params.yaml, and for which dataset."""

    data_dir: str
    values: dict[str, Any] = field(default_factory=dict)  # key -> the value --set wrote
    before: dict[str, Any] = field(default_factory=dict)  # key -> what params.yaml held before


def _lookup(tree: Mapping[str, Any], dotted: str) -> tuple[bool, Any]:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def read_record(root: Path) -> OverrideRecord | None:
    """The workspace's record, or None (none yet, or unreadable: then nothing is dropped)."""
    path = Path(root) / RECORD
    try:
        return OverrideRecord(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def write_record(
    root: Path, data_dir: str, overrides: Mapping[str, Any], raw_before: Mapping[str, Any]
) -> None:
    """Record this run's ``--set`` values and what params.yaml (``raw_before``) held before them."""
    path = Path(root) / RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    before = {k: _lookup(raw_before, k) for k in overrides if k != "data.dir"}
    record = OverrideRecord(
        data_dir=data_dir,
        values={k: v for k, v in overrides.items() if k != "data.dir"},
        before={k: value for k, (present, value) in before.items() if present},
    )
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(record), indent=1, sort_keys=True))
    os.replace(tmp, path)


def _same_dataset(a: str, b: str, root: Path) -> bool:
    def norm(p: str) -> str:
        path = Path(p)
        return str((path if path.is_absolute() else Path(root) / path).resolve())

    return norm(a) == norm(b)


def _leaves(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if (
            isinstance(value, Mapping)
            and value
            and not dotted.endswith(".kwargs")
            and dotted not in PLANNABLE
        ):
            out |= _leaves(value, dotted + ".")
        else:
            out[dotted] = value
    return out


def user_choices(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Every key params.yaml sets to something other than segflow's default (``auto`` where the plan
    chooses), at its deepest level (a plannable key whole)."""
    defaults = _leaves(UserParams.model_validate({}).model_dump(mode="json", by_alias=True))
    return {k: v for k, v in _leaves(raw).items() if k in defaults and defaults[k] != v}


def reconcile(
    raw: Mapping[str, Any], root: Path, data_dir: str | None, overrides: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """The overrides a run applies, with the earlier ``--set`` values dropped when it names another
    dataset (see the module docstring), and the lines saying what was dropped or carried over.

    Args:
        raw: params.yaml as it is now.
        root: The workspace (where the record lives).
        data_dir: The run's ``--data`` (None: params.yaml's ``data.dir``, the same dataset).
        overrides: The run's own ``--set`` values.
    """
    changes = dict(overrides)
    record = read_record(root)
    _, current_dir = _lookup(raw, "data.dir")
    if data_dir is None or _same_dataset(data_dir, str(current_dir), root):
        return changes, []
    lines: list[str] = []
    dropped: list[str] = []
    if record is not None:
        for key, value in sorted(record.values.items()):
            present, now = _lookup(raw, key)
            if key in overrides or not present or now != value or key not in record.before:
                continue
            changes[key] = record.before[key]
            dropped.append(f"{key}={json.dumps(value)} (back to {json.dumps(record.before[key])})")
    if dropped:
        lines.append(f"another dataset: dropped what --set gave the last one: {', '.join(dropped)}")
    carried = [
        f"{key}={json.dumps(value)}"
        for key, value in sorted(user_choices(raw).items())
        if key not in changes and not key.startswith(NOT_DATASET_SPECIFIC)
    ]
    if carried:
        lines.append(
            "another dataset: your values in params.yaml carried over (set them to auto to let the plan "
            f"choose): {', '.join(carried)}"
        )
    return changes, lines
