"""The one implementation of each reduction, against direct numpy/pandas computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.metrics.per_case import per_case_rows
from components.metrics.reductions import (
    class_means,
    fold_class_means,
    mean_foreground_dice,
    mean_sd,
    mean_sd_by_class,
)


def table() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    rows = []
    for fold in range(3):
        for case in range(4):
            for name in ("organ", "lesion"):
                rows.append(
                    {
                        "case_id": f"f{fold}c{case}",
                        "fold": fold,
                        "class_name": name,
                        "dice": float(rng.random()),
                        "hd95": np.nan if name == "lesion" and case == 0 else float(rng.random() * 10),
                    }
                )
    return pd.DataFrame(rows)


def test_mean_sd_ignores_nan_and_says_none_when_undefined() -> None:
    assert mean_sd([1.0, 2.0, np.nan, 4.0]) == {
        "mean": pytest.approx(7 / 3),
        "sd": pytest.approx(np.std([1, 2, 4], ddof=1)),
    }
    assert mean_sd([5.0]) == {"mean": 5.0, "sd": None}
    assert mean_sd([np.nan, np.nan]) == {"mean": None, "sd": None}
    assert mean_sd([]) == {"mean": None, "sd": None}


def test_mean_foreground_dice_is_the_mean_of_class_means() -> None:
    df = table()
    direct = np.mean([df[df.class_name == n].dice.mean() for n in ("organ", "lesion")])
    assert mean_foreground_dice(df) == pytest.approx(direct)
    assert class_means(df, "dice")["organ"] == pytest.approx(df[df.class_name == "organ"].dice.mean())
    assert mean_foreground_dice(df.iloc[:0]) is None


def test_fold_mean_sd_is_over_the_fold_means() -> None:
    df = table()
    by_fold = mean_sd_by_class(df, ["dice", "hd95"], by_fold=True)
    fold_means = [df[(df.fold == f) & (df.class_name == "lesion")].hd95.mean() for f in range(3)]
    assert by_fold["lesion"]["hd95"]["mean"] == pytest.approx(np.mean(fold_means))
    assert by_fold["lesion"]["hd95"]["sd"] == pytest.approx(np.std(fold_means, ddof=1))
    by_case = mean_sd_by_class(df, ["dice"], by_fold=False)
    organ = df[df.class_name == "organ"].dice
    assert by_case["organ"]["dice"] == {"mean": pytest.approx(organ.mean()), "sd": pytest.approx(organ.std())}
    fm = fold_class_means(df, ["dice"])
    assert fm.loc[(1, "organ"), "dice"] == pytest.approx(
        df[(df.fold == 1) & (df.class_name == "organ")].dice.mean()
    )


def test_per_case_rows_columns_and_key_selection() -> None:
    metric_rows = [{"class": 1, "dice": 0.5, "hd95": 2.0, "empty": "none", "slice_start": 3}]
    names = ["background", "organ"]
    assert per_case_rows("c1", metric_rows, lambda c: names[c]) == [
        {
            "case_id": "c1",
            "class_name": "organ",
            "class": 1,
            "dice": 0.5,
            "hd95": 2.0,
            "empty": "none",
            "slice_start": 3,
        }
    ]
    kept = per_case_rows("c1", metric_rows, str, keys=("class", "dice"), extra={"spacing": "1x1"})
    assert kept == [{"case_id": "c1", "class_name": "1", "class": 1, "dice": 0.5, "spacing": "1x1"}]
