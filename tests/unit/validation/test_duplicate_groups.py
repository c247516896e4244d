"""Near-duplicates in the manifest and the validation report: groups with members, transform and
agreement; look-alikes kept apart; suspect groups named; and the split error they explain."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from components.params.config import parse_params
from components.preprocessing.prepare import _split
from components.validation.content import image_thumbnail, mask_thumbnails
from components.validation.duplicate_groups import (
    DUPLICATE_COLUMNS,
    NearDuplicateOptions,
    add_duplicate_columns,
    pair_record,
)
from components.validation.duplicate_report import (
    duplicate_summary,
    near_duplicate_report,
    report_lines,
    write_near_duplicate_report,
)
from components.validation.near_duplicates import NearDuplicatePair
from tests.data import HANDSET_PARAMS
from tests.data.near_duplicate_sets import brain

REPO = Path(__file__).resolve().parents[3]


def _meta(pairs: list[NearDuplicatePair], n: int, patients: dict[str, str] | None = None) -> pd.DataFrame:
    """A metadata table with the near-duplicate columns of ``pairs`` (groups: connected copies)."""
    ids = [f"c{i:02d}" for i in range(n)]
    parent = {c: c for c in ids}
    for p in pairs:
        if p.copy:
            parent[max(parent[p.a], parent[p.b])] = min(parent[p.a], parent[p.b])
    records: dict[str, list[dict]] = {}
    for p in pairs:
        for c in (p.a, p.b):
            records.setdefault(c, []).append(pair_record(p))
    grouped = {c for p in pairs if p.copy for c in (p.a, p.b)}
    return pd.DataFrame(
        {
            "case_id": ids,
            "patient_id": [(patients or {}).get(c, c) for c in ids],
            "has_image": True,
            "labels_present": "0,1",
            "dup_group": [parent[c] if c in grouped else None for c in ids],
            "dup_pairs": [json.dumps(records[c]) if c in records else None for c in ids],
        }
    )


def pair(
    a: str, b: str, r: float = 0.99, agreement: float | None = 0.95, copy: bool = True
) -> NearDuplicatePair:
    return NearDuplicatePair(a, b, r, "flip_h", agreement, copy)


def test_the_report_lists_groups_pairs_lookalikes_and_labelling_conflicts() -> None:
    pairs = [
        pair("c00", "c01"),
        pair("c01", "c02", r=0.985, agreement=0.4),  # one image labelled twice
        pair("c03", "c04", r=0.87, agreement=0.1, copy=False),  # look-alikes kept apart
        NearDuplicatePair("c05", "c06", 0.9, "rot90", None, True, "frame"),
    ]
    report = near_duplicate_report(_meta(pairs, 40), threshold=0.8)
    assert report["threshold"] == 0.8 and report["cases"] == 40
    assert [g["members"] for g in report["groups"]] == [["c00", "c01", "c02"], ["c05", "c06"]]
    first = report["groups"][0]
    assert [(p["a"], p["b"], p["transform"], p["mask_agreement"]) for p in first["pairs"]] == [
        ("c00", "c01", "flip_h", 0.95),
        ("c01", "c02", "flip_h", 0.4),
    ]
    assert first["suspect"] == [] and first["patients"] == {"c00": "c00", "c01": "c01", "c02": "c02"}
    assert [(p["a"], p["b"]) for p in report["lookalikes_kept_apart"]] == [("c03", "c04")]
    assert [(p["a"], p["b"]) for p in report["labelling_conflicts"]] == [("c01", "c02")]
    lines = report_lines(report)
    assert lines[0] == "near-duplicate group c00: c00, c01, c02"
    assert "  c00 ~ c01: flip_h, image r=0.990, mask agreement 0.95" in lines
    assert "  c05 ~ c06: rot90 of the whole frame, image r=0.900, no mask" in lines
    assert any(line.startswith("warning: c01 and c02 are one image") for line in lines)
    assert any(line.startswith("look-alike, kept apart: c03 and c04 (image r=0.870") for line in lines)
    assert duplicate_summary(_meta(pairs, 40), threshold=0.8) == lines


def test_a_suspect_group_is_a_warning_naming_its_members() -> None:
    large = [pair(f"c{i:02d}", f"c{i + 1:02d}") for i in range(11)]  # 12 of 40 cases
    lines = duplicate_summary(_meta(large, 40))
    assert any("warning: near-duplicate group c00 holds 12 of 40 cases" in line for line in lines)
    patients = {"c00": "anna", "c01": "anna", "c02": "ben"}
    report = near_duplicate_report(_meta([pair("c00", "c01"), pair("c01", "c02")], 40, patients))
    (group,) = report["groups"]
    assert group["patients"] == patients
    assert group["suspect"] == [
        "its members belong to different declared patients: c00 (anna), c01 (anna), c02 (ben)"
    ]
    assert any("c02 (ben)" in line and line.startswith("warning:") for line in report_lines(report))
    same = near_duplicate_report(_meta([pair("c00", "c01")], 40, {"c00": "anna", "c01": "anna"}))
    assert same["groups"][0]["suspect"] == []


def test_manifest_columns_from_thumbnails(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    cases = {f"c{k}": brain(rng, (96, 112)) for k in range(4)}
    image, mask = cases["c0"]
    cases["c4"] = (image[:, ::-1].copy(), mask[:, ::-1].copy())  # a copy of c0
    thumbs, masks = {}, {}
    for cid, (im, m) in cases.items():
        thumbs[cid] = image_thumbnail(im[None])
        masks[cid] = mask_thumbnails(m, thumbs[cid])
    meta = pd.DataFrame({"case_id": sorted(cases), "patient_id": sorted(cases), "has_image": True})
    out = add_duplicate_columns(meta, thumbs, masks, NearDuplicateOptions()).set_index("case_id")
    assert set(DUPLICATE_COLUMNS) <= set(out.columns)
    assert out["dup_group"].dropna().to_dict() == {"c0": "c0", "c4": "c0"}
    assert out.loc["c0", "dup_partners"].startswith("c4 (flip_h, r=1.000, masks 1.00)")
    assert out.loc["c0", "dup_mask_agreement"] == pytest.approx(1.0)
    (record,) = json.loads(out.loc["c4", "dup_pairs"])
    assert record["a"] == "c0" and record["copy"] and record["view"] == "content"
    ignored = add_duplicate_columns(meta, thumbs, masks, NearDuplicateOptions(mode="ignore"))
    assert ignored["dup_group"].isna().all()
    path = write_near_duplicate_report(near_duplicate_report(out.reset_index()), tmp_path / "r" / "nd.json")
    assert json.loads(path.read_text())["groups"][0]["members"] == ["c0", "c4"]


def test_a_split_made_impossible_by_the_groups_names_the_params_to_change() -> None:
    raw = yaml.safe_load(HANDSET_PARAMS.read_text())
    params = parse_params(raw)
    ids = [f"c{i:02d}" for i in range(10)]
    meta = pd.DataFrame(
        {
            "case_id": ids,
            "patient_id": ids,
            "has_image": True,
            "labels_present": "0,1",
            "dup_group": ["c00" if i < 8 else None for i in range(10)],  # 3 groups left for 5 folds + test
        }
    )
    with pytest.raises(ValueError, match=r"near-duplicate group\(s\).*validate\.near_duplicate_threshold"):
        _split(meta, meta["case_id"].tolist(), params)
