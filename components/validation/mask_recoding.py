"""The metadata table of binary ``0 / v`` masks, as if their files held class indices ``0 / 1``.

Validate tabulates every mask as stored; when the classes resolve to a binary mask written as
``0 / v`` (:func:`components.io.case_masks.binary_foreground`), the table the
later stages read (the manifest) says what those stages will see: ``frac_1`` instead of
``frac_<v>``, ``1`` instead of ``v`` in ``labels_present``, and ``v`` in
:data:`components.io.case_masks.FOREGROUND_COLUMN` of every row with a mask, which tells each
reader of the mask (:func:`components.io.case_masks.read_case_mask`) what to map.
"""

from __future__ import annotations

import pandas as pd

from components.io.case_masks import FOREGROUND_COLUMN
from components.validation.metadata import frac_column


def _labels_read_as_one(labels: object, foreground: int) -> object:
    """``labels_present`` (``"0,255"``) with ``foreground`` written as 1; other cells unchanged."""
    if not isinstance(labels, str):
        return labels
    return ",".join("1" if value == str(foreground) else value for value in labels.split(","))


def read_foreground_as_one(meta: pd.DataFrame, foreground: int) -> pd.DataFrame:
    """A copy of ``meta`` whose mask columns read the stored ``foreground`` value as class 1.

    Raises:
        ValueError: ``foreground`` is not above 1, or ``meta`` has no ``frac_<foreground>`` column
            (the masks do not hold it).
    """
    if foreground <= 1:
        raise ValueError(
            f"a binary mask's foreground value must be above 1 to be read as 1, got {foreground}"
        )
    if frac_column(foreground) not in meta.columns or frac_column(1) in meta.columns:
        raise ValueError(f"the masks do not hold exactly 0 / {foreground} (columns: {list(meta.columns)})")
    out = meta.rename(columns={frac_column(foreground): frac_column(1)})
    out["labels_present"] = pd.Series(
        [_labels_read_as_one(v, foreground) for v in out["labels_present"]], index=out.index, dtype=object
    )
    out[FOREGROUND_COLUMN] = pd.array([foreground if m else pd.NA for m in out["has_mask"]], dtype="Int64")
    return out
