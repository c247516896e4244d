"""The printed protocol table: sensitivity, specificity and accuracy at the threshold beside pooled
Dice, threshold-averaged Dice and AUC, under a line that says the threshold."""

from __future__ import annotations

from components.evaluation.presentation import PROTOCOL_COLUMNS, PROTOCOL_THRESHOLD, headline_markdown


def test_protocol_table_shows_rates_at_the_threshold_and_says_it() -> None:
    headline = {
        "organ": {"dice": {"mean": 0.8, "sd": 0.1}},
        "mean_foreground_dice": 0.8,
        "protocol": {
            "organ": {
                "pooled_dice": 0.81,
                "pooled_iou": 0.68,
                "pooled_sensitivity": 0.83,
                "pooled_specificity": 0.995,
                "pooled_precision": 0.79,
                "pooled_accuracy": 0.987,
                "dice_thrmean": 0.74,
                "dice_thrmean_label": 0.78,
                "pixel_roc_auc": 0.97,
            }
        },
    }
    lines = headline_markdown(headline, "Test set").splitlines()
    header = (
        "| class | pooled_dice | pooled_sensitivity | pooled_specificity | pooled_accuracy "
        "| dice_thrmean | dice_thrmean_label | pixel_roc_auc |"
    )
    assert header in lines
    assert lines[lines.index(header) - 2] == PROTOCOL_THRESHOLD
    assert "probability >= 0.5" in PROTOCOL_THRESHOLD and "256 thresholds" in PROTOCOL_THRESHOLD
    row = next(line for line in lines[lines.index(header) :] if line.startswith("| organ |"))
    assert row == "| organ | 0.810 | 0.830 | 0.995 | 0.987 | 0.740 | 0.780 | 0.970 |"
    assert len(PROTOCOL_COLUMNS) == 7
    missing = headline_markdown({**headline, "protocol": {"organ": {"pooled_dice": 0.5}}}, "t")
    assert "| organ | 0.500 | n/a | n/a | n/a | n/a | n/a | n/a |" in missing.splitlines()
    assert PROTOCOL_THRESHOLD not in headline_markdown({"organ": headline["organ"]}, "t")
