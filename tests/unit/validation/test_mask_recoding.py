"""The metadata table of binary 0 / v masks says what the later stages will read: class 1."""

from __future__ import annotations

import pandas as pd
import pytest

from components.io.case_masks import FOREGROUND_COLUMN
from components.validation.mask_recoding import read_foreground_as_one


def _meta() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "case_id": ["a", "b", "orphan"],
            "has_mask": [True, True, False],
            "labels_present": pd.Series(["0,255", "0", None], dtype=object),  # as build_metadata types it
            "frac_0": [0.75, 1.0, None],
            "frac_255": [0.25, 0.0, None],
        }
    )


def test_the_foreground_column_frac_and_labels_present_read_v_as_1() -> None:
    out = read_foreground_as_one(_meta(), 255)
    assert list(out.columns) == [
        "case_id",
        "has_mask",
        "labels_present",
        "frac_0",
        "frac_1",
        FOREGROUND_COLUMN,
    ]
    assert out["frac_1"].tolist()[:2] == [0.25, 0.0]
    assert out["labels_present"].tolist() == ["0,1", "0", None]
    assert out[FOREGROUND_COLUMN].tolist()[:2] == [255, 255] and out[FOREGROUND_COLUMN].isna().tolist()[2]


@pytest.mark.parametrize("foreground", [1, 0, 128])
def test_a_value_the_masks_do_not_hold_or_that_needs_no_reading_is_refused(foreground: int) -> None:
    with pytest.raises(ValueError, match=str(foreground)):
        read_foreground_as_one(_meta(), foreground)
