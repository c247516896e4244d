"""Dice for monitoring a fold during training: counted on the device, no per-case CPU panel.

Per case and class, true positives and the two mask sizes are counted over the pixels the
reference scores (``IGNORE_INDEX`` pixels count nowhere) and turned into Dice with the panel's
empty-mask policy (both masks empty: 1; exactly one empty: 0), so the values equal
``components.metrics.case_metrics``' Dice; the full panel runs at the end, in the evaluate stage.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from components.data.regions import IGNORE_INDEX


def dice_counts(pred: torch.Tensor, ref: torch.Tensor, classes: Sequence[int]) -> torch.Tensor:
    """Per case and class: (true positives, predicted size, reference size), as int64 counts.

    Args:
        pred: Predicted label maps. Shape: (N, *spatial), integer.
        ref: Reference label maps, same shape; ``IGNORE_INDEX`` marks unscored pixels.
        classes: Class values to count.

    Returns:
        Shape (N, len(classes), 3), on the inputs' device.
    """
    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} != reference shape {tuple(ref.shape)}")
    valid = (ref != IGNORE_INDEX).flatten(1)
    p, r = pred.flatten(1), ref.flatten(1)
    out = []
    for c in classes:
        pc, rc = (p == c) & valid, r == c  # ref == c is never an ignored pixel
        out.append(torch.stack([(pc & rc).sum(1), pc.sum(1), rc.sum(1)], dim=1))
    return torch.stack(out, dim=1)


def dice_rows(counts: np.ndarray, classes: Sequence[int], names: Sequence[str]) -> pd.DataFrame:
    """One row per case and class (``class_name``, ``dice``) from :func:`dice_counts` (stacked)."""
    tp, n_pred, n_ref = (counts[..., k].astype(np.float64) for k in range(3))
    total = n_pred + n_ref
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = np.where(total > 0, 2 * tp / np.where(total > 0, total, 1), 1.0)
    class_names = np.array([names[c] for c in classes], dtype=object)
    return pd.DataFrame(
        {"class_name": np.tile(class_names, len(dice)), "dice": dice.reshape(-1)},
        columns=["class_name", "dice"],
    )
