"""A case's reference mask as class indices: the file a manifest row names, its stored values mapped.

Masks hold class indices (``0..K-1``). One exception is read rather than refused: a binary mask
written as ``0 / v`` with ``v > 1`` (``0 / 255`` is how most photograph datasets ship binary masks).
Validate decides it once for the whole dataset, from the values every mask holds, and records ``v``
in the manifest's :data:`FOREGROUND_COLUMN`; every reader of a reference mask goes through
:func:`read_case_mask`, so the training data, the fingerprint and the scores all see class 1 where
the file holds ``v``. The files are never rewritten.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from components.io.images import read_mask

FOREGROUND_COLUMN = "mask_foreground"  # manifest column: the stored value read as class 1, or null


def read_label_file(path: str | Path) -> np.ndarray:
    """Label map ``(*S)`` of a 2D file or a volume, as integers (validate has checked that float
    label files hold whole numbers).

    Shape:
        -> (H, W) or (Z, Y, X) integer.
    """
    mask = read_mask(path)  # a single channel axis (a 4D file's) dropped
    return mask if np.issubdtype(mask.dtype, np.integer) else np.rint(mask).astype(np.int64)


def binary_foreground(values: Sequence[int]) -> int | None:
    """``v`` when ``values`` (the mask values found, sorted) are exactly ``0 / v`` with ``v > 1``: a
    binary mask written as photograph datasets write it (``0 / 255`` most often); else None."""
    return int(values[1]) if len(values) == 2 and values[0] == 0 and values[1] > 1 else None


def mask_foreground(row: Any) -> int | None:
    """The stored value a manifest row's mask writes class 1 as (:data:`FOREGROUND_COLUMN`), or None
    when its values are the class indices themselves (no column, null or NaN)."""
    value = getattr(row, FOREGROUND_COLUMN, None)
    return None if value is None or pd.isna(value) else int(cast(int, value))


def class_indices(mask: np.ndarray, foreground: int | None) -> np.ndarray:
    """``mask`` with the stored ``foreground`` value read as class 1 (None: unchanged).

    Shape:
        (*S) -> (*S), same dtype (at least uint8).
    """
    if foreground is None:
        return mask
    out = mask.astype(np.promote_types(mask.dtype, np.uint8), copy=True)
    out[mask == foreground] = 1
    return out


def read_case_mask(data_dir: str | Path, row: Any) -> np.ndarray:
    """The class-index mask of a manifest row (``mask_path`` relative to ``data_dir``).

    Shape:
        -> (H, W) or (Z, Y, X) integer.
    """
    path = Path(data_dir) / cast(str, row.mask_path)
    return class_indices(read_label_file(path), mask_foreground(row))
