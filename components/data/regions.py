"""Regions of interest and the ignore label: pixels that count in no loss and no metric.

A dataset may mark pixels as not scored in two ways, alone or together:

- a ``rois/`` folder beside ``images/`` and ``masks/`` (same file stems): non-zero = inside the
  region of interest (a field-of-view mask, the lungs, ...); pixels outside it are not scored;
- ``data.ignore_label``: a mask value meaning "not annotated" (e.g. 255).

Both are turned into one reference label map in which every such pixel holds ``IGNORE_INDEX``;
the losses (``components.losses.base``), the metric panel, the pooled/threshold metrics and the ROC
skip those pixels, and predictions there are set to background. ``IGNORE_INDEX`` is 255, so a
dataset may declare at most 255 classes.
"""

from __future__ import annotations

import numpy as np

IGNORE_INDEX = 255
ROIS_DIR = "rois"
MAX_CLASSES = IGNORE_INDEX  # class values 0..254


def reference_labels(
    mask: np.ndarray, roi: np.ndarray | None = None, ignore_label: int | None = None
) -> np.ndarray:
    """The reference label map with ``IGNORE_INDEX`` outside the ROI and on the ignore label.

    Args:
        mask: Class-index label map.
        roi: Region of interest of the same shape (non-zero = inside), or None (all inside).
        ignore_label: The dataset's "not annotated" mask value, or None.

    Shape:
        mask (*S), roi (*S) -> (*S) int64.

    Raises:
        ValueError: The ROI's shape differs from the mask's.
    """
    out = np.asarray(mask).astype(np.int64, copy=True)
    if ignore_label is not None:
        out[out == int(ignore_label)] = IGNORE_INDEX
    if roi is not None:
        roi = np.asarray(roi)
        if roi.shape != out.shape:
            raise ValueError(f"ROI shape {roi.shape} differs from the mask's {out.shape}")
        out[roi == 0] = IGNORE_INDEX
    return out


def valid_pixels(ref: np.ndarray) -> np.ndarray | None:
    """Boolean map of the scored pixels of a reference map, or None when every pixel is scored.

    Shape:
        (*S) -> (*S) bool or None.
    """
    ignored = np.asarray(ref) == IGNORE_INDEX
    return None if not ignored.any() else ~ignored


def clear_outside(labels: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Predicted labels with every ignored pixel of ``ref`` set to background 0 (a new array).

    Shape:
        labels (*S), ref (*S) -> (*S).
    """
    out = np.array(labels, copy=True)
    out[np.asarray(ref) == IGNORE_INDEX] = 0
    return out
