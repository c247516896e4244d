"""What the near-duplicate search found, where a user looks: ``reports/validation/near_duplicates.json``
and the validate stage's output.

The report lists each group of copies with its members (and their declared patients), every pair
in it with the transform, the image similarity and the masks' agreement; the look-alike pairs kept
apart because their masks disagree; and the copies whose masks disagree (a labelling warning). A
group is suspect when it is larger than copies of one case usually are, or when its members belong
to different declared patients (``cases.csv``); the stage prints a warning naming them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from components.validation.near_duplicates import DEFAULT_THRESHOLD, EXACT_SIMILARITY, MASK_AGREEMENT

LARGE_GROUP_FRACTION = 0.1  # a group holding more than this share of the cases is suspect
SHOWN = 12  # members and pairs printed per group


def _pairs(meta: pd.DataFrame) -> list[dict[str, Any]]:
    """Every pair once, from the ``dup_pairs`` column."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for cell in meta["dup_pairs"].dropna() if "dup_pairs" in meta.columns else []:
        for record in json.loads(cell):
            seen[(record["a"], record["b"])] = record
    return [seen[k] for k in sorted(seen)]


def _suspect(members: list[str], patients: dict[str, str], n_cases: int) -> list[str]:
    reasons = []
    if len(members) > max(4, LARGE_GROUP_FRACTION * n_cases):
        reasons.append(f"holds {len(members)} of {n_cases} cases: more than copies of one case usually are")
    declared = {patients[m] for m in members if m in patients and patients[m] != m}
    if declared and len({patients.get(m, m) for m in members}) > 1:
        who = ", ".join(f"{m} ({patients.get(m, m)})" for m in members[:SHOWN])
        reasons.append(f"its members belong to different declared patients: {who}")
    return reasons


def near_duplicate_report(meta: pd.DataFrame, threshold: float = DEFAULT_THRESHOLD) -> dict[str, Any]:
    """The near-duplicate report of a metadata table (``duplicate_groups`` columns).

    Args:
        meta: The metadata table, with ``case_id``, ``patient_id`` and the near-duplicate columns.
        threshold: The image similarity the search used (``validate.near_duplicate_threshold``).
    """
    n_cases = int(meta["has_image"].sum()) if "has_image" in meta.columns else len(meta)
    patients = (
        dict(zip(meta["case_id"].astype(str), meta["patient_id"].astype(str), strict=True))
        if "patient_id" in meta.columns
        else {}
    )
    group_of = (
        {str(c): str(g) for c, g in zip(meta["case_id"], meta["dup_group"], strict=True) if pd.notna(g)}
        if "dup_group" in meta.columns
        else {}
    )
    pairs = _pairs(meta)
    groups = []
    for gid in sorted(set(group_of.values())):
        members = sorted(c for c, g in group_of.items() if g == gid)
        groups.append(
            {
                "group": gid,
                "members": members,
                "patients": {m: patients.get(m, m) for m in members},
                "pairs": [p for p in pairs if p["copy"] and group_of.get(p["a"]) == gid],
                "suspect": _suspect(members, patients, n_cases),
            }
        )
    return {
        "threshold": threshold,
        "mask_agreement": MASK_AGREEMENT,
        "exact_similarity": EXACT_SIMILARITY,
        "cases": n_cases,
        "groups": groups,
        "lookalikes_kept_apart": [
            p
            for p in pairs
            if not p["copy"]
            and (group_of.get(p["a"]) is None or group_of.get(p["a"]) != group_of.get(p["b"]))
        ],
        "labelling_conflicts": [p for p in pairs if p["copy"] and p["masks_disagree"]],
    }


def _pair_line(p: dict[str, Any]) -> str:
    frame = " of the whole frame" if p["view"] == "frame" else ""
    masks = "no mask" if p["mask_agreement"] is None else f"mask agreement {p['mask_agreement']:.2f}"
    return f"{p['a']} ~ {p['b']}: {p['transform']}{frame}, image r={p['image_similarity']:.3f}, {masks}"


def report_lines(report: dict[str, Any]) -> list[str]:
    """The report as the validate stage prints it: groups and their pairs, warnings, look-alikes."""
    lines = []
    for g in report["groups"]:
        names = g["members"]
        shown = ", ".join(names[:SHOWN]) + (f" ... ({len(names)} cases)" if len(names) > SHOWN else "")
        lines.append(f"near-duplicate group {g['group']}: {shown}")
        lines += [f"  {_pair_line(p)}" for p in g["pairs"][:SHOWN]]
        for reason in g["suspect"]:
            lines.append(
                f"warning: near-duplicate group {g['group']} {reason}; look at a few of them, and if "
                "they are distinct cases raise validate.near_duplicate_threshold (or set "
                "validate.near_duplicates: ignore)"
            )
    for p in report["labelling_conflicts"]:
        lines.append(
            f"warning: {p['a']} and {p['b']} are one image (r={p['image_similarity']:.3f}) whose masks "
            f"disagree (mask agreement {p['mask_agreement']:.2f} < {report['mask_agreement']}): one of "
            "them is labelled differently; check both masks"
        )
    for p in report["lookalikes_kept_apart"]:
        lines.append(
            f"look-alike, kept apart: {p['a']} and {p['b']} (image r={p['image_similarity']:.3f} under "
            f"{p['transform']}, but mask agreement {p['mask_agreement']:.2f} < "
            f"{report['mask_agreement']}: "
            "not one case)"
        )
    return lines


def duplicate_summary(meta: pd.DataFrame, threshold: float = DEFAULT_THRESHOLD) -> list[str]:
    """:func:`report_lines` of the metadata table's :func:`near_duplicate_report`."""
    return report_lines(near_duplicate_report(meta, threshold))


def write_near_duplicate_report(report: dict[str, Any], path: Path) -> Path:
    """Write the report as JSON (a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    os.replace(tmp, path)
    return path
