"""The postprocessing decision of cross-validation: chosen from the out-of-fold predictions,
written by the evaluate stage, applied by the ensemble's test report and packaged with the model."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from components.postprocessing import Postprocessing
from components.postprocessing.selection import choose_postprocessing


def decide(
    candidates: pd.DataFrame | None, class_names: Sequence[str], connectivity: int
) -> tuple[Postprocessing, list[dict[str, Any]]]:
    """The rules that lower no class's out-of-fold Dice (nor that of its cases holding the class),
    and the table behind the choice
    (``evaluate.postprocess: none`` or no candidates: no rule)."""
    if candidates is None or candidates.empty:
        return Postprocessing(connectivity=connectivity), []
    decision, summary = choose_postprocessing(candidates, connectivity)
    summary = summary.assign(class_name=[class_names[int(c)] for c in summary["class"]])
    return decision, json.loads(summary.to_json(orient="records"))


def write_postprocessing(
    path: Path, decision: Postprocessing, summary: list[dict[str, Any]], n_cases: int
) -> None:
    """``reports/cv/postprocessing.json``: the decision and the per-rule CV Dice."""
    doc = {
        "decision": decision.to_json(),
        "chosen_on": f"{n_cases} out-of-fold case(s): a rule is kept for a class only if its mean Dice "
        "is higher than without it and it does not lower the mean Dice of the cases holding the class",
        "candidates": summary,
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(doc, indent=2))


def read_postprocessing(path: Path) -> Postprocessing:
    """The decision written by :func:`write_postprocessing`.

    Raises:
        FileNotFoundError: The evaluate stage has not run.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; run the evaluate stage first (dvc repro evaluate)")
    return Postprocessing.from_json(json.loads(path.read_text())["decision"])


def describe(decision: Postprocessing, class_names: Sequence[str]) -> str:
    """One line: the rule of each class with one (``"none"`` when no class has one)."""
    kept = [f"{class_names[c]}: {r.name}" for c, r in sorted(decision.rules.items()) if r.kind != "none"]
    return ", ".join(kept) if kept else "none"
