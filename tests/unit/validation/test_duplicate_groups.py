"""Near-duplicate summary lines and the split error they explain."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from components.params.config import parse_params
from components.preprocessing.prepare import _split
from components.validation.duplicate_groups import duplicate_summary
from tests.data import HANDSET_PARAMS

REPO = Path(__file__).resolve().parents[3]


def _meta(n: int, grouped: int) -> pd.DataFrame:
    ids = [f"c{i:02d}" for i in range(n)]
    return pd.DataFrame(
        {
            "case_id": ids,
            "patient_id": ids,
            "has_image": True,
            "labels_present": "0,1",
            "dup_group": ["c00" if i < grouped else None for i in range(n)],
            "dup_partners": ["c01 (identity, r=0.990)" if i < grouped else None for i in range(n)],
            "dup_mask_dice": [0.5 if i == 0 else (0.95 if i < grouped else None) for i in range(n)],
        }
    )


def test_summary_names_groups_warns_on_disagreeing_masks_and_on_a_suspiciously_large_group() -> None:
    small = duplicate_summary(_meta(40, 2))
    assert small[0] == "near-duplicate group c00: c00, c01"
    assert any("c00: its near-duplicate's mask disagrees (mask Dice 0.50" in line for line in small)
    assert not any("holds" in line for line in small)
    large = duplicate_summary(_meta(40, 12))
    assert any("group c00 holds 12 of 40 cases" in line for line in large)


def test_a_split_made_impossible_by_the_groups_names_the_params_to_change() -> None:
    raw = yaml.safe_load(HANDSET_PARAMS.read_text())
    params = parse_params(raw)
    meta = _meta(10, 8)  # 3 groups left for 5 folds + a test set
    with pytest.raises(ValueError, match=r"near-duplicate group\(s\).*validate\.near_duplicate_threshold"):
        _split(meta, meta["case_id"].tolist(), params)
