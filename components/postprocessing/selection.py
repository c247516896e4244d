"""Choosing the postprocessing on cross-validation (as nnU-Net): score each rule out of fold.

For every out-of-fold case and foreground class, :func:`candidate_dice` scores the prediction
after each candidate rule; :func:`choose_postprocessing` then keeps, per class, the rule whose
mean Dice over all out-of-fold cases is highest, and only when it does not lower that class's
CV Dice compared with no postprocessing, nor the mean Dice of the cases whose reference holds the
class. Dice follows the metric panel's empty-mask policy (both empty = 1, one empty = 0;
:func:`components.metrics.protocol.dice_from_counts`), and that policy is why the second condition
exists: a case with nothing to find scores 1 once its false positives are gone, so deleting every
component under 1,000 pixels won on COVID CT's cross-validation by clearing slices without
consolidation, and on the test set it deleted seven small true consolidations (Inf-Net's protocol,
which gives empty references no credit: 0.285 with it, 0.361 without). A rule may clear empty cases
only where it costs the cases with findings nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from components.metrics.panel import check_label_maps
from components.metrics.protocol import dice_from_counts
from components.postprocessing.rules import (
    Postprocessing,
    Rule,
    kept_components,
    label_components,
    structure,
)

TABLE_COLUMNS: tuple[str, ...] = ("case_id", "class", "rule", "dice")
HOLDS_COLUMN = "holds_class"  # optional: the case's reference holds the class (see choose_postprocessing)
SUMMARY_COLUMNS: tuple[str, ...] = (
    "class",
    "rule",
    "mean_dice",
    "delta_vs_none",
    "delta_with_findings",  # the mean change over the cases holding the class (None: not known)
    "n_cases",
    "chosen",
)
# Mean Dice differences below this are summation noise, i.e. a tie (and ties keep 'none').
TIE_TOLERANCE = 1e-12


def candidate_dice(
    pred: np.ndarray,
    ref: np.ndarray,
    classes: Sequence[int],
    rules: Sequence[Rule],
    connectivity: int = 1,
    valid: np.ndarray | None = None,
) -> dict[tuple[int, str], float]:
    """Dice of each class after applying each rule to ``pred``, for one case.

    The components of ``pred == c`` are labelled once per class; each rule only selects which
    components stay, and its Dice follows from per-component voxel and overlap counts. Component
    sizes count every voxel (as :func:`~components.postprocessing.rules.apply_rule`); Dice counts
    only valid voxels.

    Args:
        pred: Predicted integer label map.
        ref: Reference integer label map.
        classes: Foreground classes to score (each >= 1).
        rules: Rules to score; ``none`` is always included.
        connectivity: Neighbourhood of a component, 1..ndim.
        valid: Voxels that count in the Dice; ``None`` = all.

    Returns:
        ``{(class, rule name): dice}``.

    Raises:
        ValueError: Shape mismatch, non-integer maps, bad classes, valid mask or connectivity.

    Shape: pred, ref (*S) int; valid (*S) bool.
    """
    pred, ref = check_label_maps(pred, ref)
    structure(pred.ndim, connectivity)
    if valid is not None:
        valid = np.asarray(valid)
        if valid.dtype != bool or valid.shape != pred.shape:
            raise ValueError(
                f"valid must be a bool mask of shape {pred.shape}, got {valid.dtype} {valid.shape}"
            )
    wanted = {r.name: r for r in (Rule("none"), *rules)}
    out: dict[tuple[int, str], float] = {}
    for c in classes:
        if isinstance(c, bool) or not isinstance(c, int | np.integer) or c < 1:
            raise ValueError(f"class {c!r} must be a foreground class index >= 1")
        components, sizes = label_components(pred == c, connectivity)
        ref_c = ref == c
        comp = components if valid is None else components[valid]
        ref_v = ref_c if valid is None else ref_c[valid]
        n_bins = sizes.size
        pred_counts = np.bincount(comp.reshape(-1), minlength=n_bins)
        tp_counts = np.bincount(comp[ref_v].reshape(-1), minlength=n_bins)
        n_ref = int(np.count_nonzero(ref_v))
        for name, rule in wanted.items():
            keep = kept_components(sizes, rule)
            tp, n_pred = int(tp_counts[keep].sum()), int(pred_counts[keep].sum())
            out[(int(c), name)] = float(dice_from_counts(tp, n_pred, n_ref))
    return out


def reference_holds(
    ref: np.ndarray, classes: Sequence[int], valid: np.ndarray | None = None
) -> dict[int, bool]:
    """Whether the reference holds each class at a counted voxel (the table's :data:`HOLDS_COLUMN`)."""
    ref = np.asarray(ref)
    counted = ref if valid is None else ref[np.asarray(valid)]
    return {int(c): bool(np.any(counted == c)) for c in classes}


def candidate_rows(
    case_id: str, scores: Mapping[tuple[int, str], float], holds: Mapping[int, bool] | None = None
) -> list[dict[str, object]]:
    """Rows ``(case_id, class, rule, dice[, holds_class])`` of one case's :func:`candidate_dice`."""
    rows: list[dict[str, object]] = [
        {"case_id": case_id, "class": c, "rule": r, "dice": d} for (c, r), d in scores.items()
    ]
    if holds is not None:
        for row in rows:
            row[HOLDS_COLUMN] = bool(holds[int(row["class"])])  # type: ignore[call-overload]
    return rows


def _check_table(table: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in TABLE_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"candidate table lacks columns {missing}; expected {list(TABLE_COLUMNS)}")
    if table.empty:
        raise ValueError("candidate table is empty: no out-of-fold case was scored")
    columns = list(TABLE_COLUMNS) + ([HOLDS_COLUMN] if HOLDS_COLUMN in table.columns else [])
    t = table[columns].copy()
    t["rule"] = [Rule.parse(r).name for r in t["rule"]]
    t["class"] = t["class"].astype(int)
    t["dice"] = t["dice"].astype(float)
    if t["dice"].isna().any():
        raise ValueError("candidate table holds NaN Dice values; Dice is defined for every case")
    dup = t.duplicated(["case_id", "class", "rule"])
    if dup.any():
        first = t[dup].iloc[0]
        raise ValueError(
            f"candidate table has duplicate rows for case {first['case_id']!r}, class {first['class']}, "
            f"rule {first['rule']!r}"
        )
    return t


def choose_postprocessing(table: pd.DataFrame, connectivity: int = 1) -> tuple[Postprocessing, pd.DataFrame]:
    """Per class, the rule with the highest mean out-of-fold Dice if it does not lower that Dice
    nor (where the table has :data:`HOLDS_COLUMN`) the mean Dice of the cases holding the class.

    Ties (within :data:`TIE_TOLERANCE`) prefer ``none``, then the simpler rule (``min_size`` with a
    smaller N, then ``largest_component``): a rule is chosen only when it strictly helps.
    ``delta_vs_none`` is the mean over cases of (Dice with the rule - Dice without).

    Args:
        table: Rows ``(case_id, class, rule, dice)``; every (class, rule) must cover exactly the
            cases of that class's ``none`` rows.
        connectivity: Connectivity the Dice values were computed with (stored in the decision).

    Returns:
        The decision (every class of the table, ``none`` included) and a summary table with
        columns :data:`SUMMARY_COLUMNS`, sorted by class then rule simplicity.

    Raises:
        ValueError: Missing columns, unknown rule names, duplicates, NaN Dice, a class without
            ``none`` rows, or rules scored on different cases.
    """
    t = _check_table(table)
    rules: dict[int, Rule] = {}
    summary: list[dict[str, object]] = []
    for c in sorted(int(x) for x in t["class"].unique()):
        wide = t[t["class"] == c].pivot(index="case_id", columns="rule", values="dice")
        if "none" not in wide.columns:
            raise ValueError(f"class {c}: the candidate table has no 'none' rows to compare against")
        incomplete = [r for r in wide.columns if wide[r].isna().any()]
        if incomplete:
            raise ValueError(
                f"class {c}: rules {incomplete} were not scored on the same cases as the others; "
                "every rule must be scored on every out-of-fold case"
            )
        names = sorted(wide.columns, key=lambda n: Rule.parse(n).rank)
        holding = _holding_cases(t, c, wide.index)
        none = wide["none"].to_numpy(dtype=np.float64)
        stats = []
        for name in names:
            values = wide[name].to_numpy(dtype=np.float64)
            delta = float(np.mean(values - none))
            found = float(np.mean(values[holding] - none[holding])) if holding.any() else None
            stats.append((name, float(np.mean(values)), delta, found))
        best_name, _, best_delta, _ = stats[0]  # 'none' (rank 0), delta 0
        for name, _, delta, found in stats[1:]:  # simplest first: only a strictly larger gain replaces
            costs = found is not None and found < -TIE_TOLERANCE
            if delta > best_delta + TIE_TOLERANCE and not costs:
                best_name, best_delta = name, delta
        rules[c] = Rule.parse(best_name)
        summary += [
            {
                "class": c,
                "rule": name,
                "mean_dice": mean,
                "delta_vs_none": delta,
                "delta_with_findings": found,
                "n_cases": len(wide),
                "chosen": name == best_name,
            }
            for name, mean, delta, found in stats
        ]
    return Postprocessing(rules, connectivity), pd.DataFrame(summary, columns=list(SUMMARY_COLUMNS))


def _holding_cases(t: pd.DataFrame, c: int, cases: pd.Index) -> np.ndarray:
    """Which of ``cases`` (in order) hold class ``c`` in their reference; none where the table does
    not say (the second condition of :func:`choose_postprocessing` then never applies)."""
    if HOLDS_COLUMN not in t.columns:
        return np.zeros(len(cases), dtype=bool)
    rows = t[(t["class"] == c) & (t["rule"] == "none")].set_index("case_id")[HOLDS_COLUMN]
    return rows.reindex(cases).fillna(False).to_numpy(dtype=bool)
