"""Regions of interest for ``segflow predict --rois``: predictions outside them are background
(as the test report scores them; see ``components.data.regions``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from components.io import file_stem, read_roi

ROIS_KEY = "regions_of_interest"  # the packaged model's ensemble.json: trained and tested inside ROIs
OUTSIDE_ROI_WARNING = (
    "this model was trained and tested inside regions of interest (the dataset's rois/ folder): "
    "without --rois every pixel is labelled, outside the regions too, where it never learned or was "
    "scored. Pass --rois <folder> (same stems, non-zero = inside) to label the outside background as "
    "the test report did, or --no-rois to label every pixel on purpose."
)


def warn_without_rois(model: Any, rois_dir: Path | None, no_rois: bool, warn: Callable[[str], None]) -> None:
    """Call ``warn`` when a model trained inside regions of interest is asked to segment without
    ``--rois`` and without ``--no-rois`` (a loaded pyfunc, or the packaged model itself)."""
    if rois_dir is not None or no_rois:
        return
    inner = model.unwrap_python_model() if hasattr(model, "unwrap_python_model") else model
    if getattr(inner, "trained_with_rois", False):
        warn(OUTSIDE_ROI_WARNING)


def roi_files(rois_dir: Path | None, stems: list[str]) -> dict[str, Path]:
    """Stem -> region-of-interest file for every input (``{}`` without a folder).

    Raises:
        FileNotFoundError: The folder is missing or lacks a file for some input.
    """
    if rois_dir is None:
        return {}
    if not rois_dir.is_dir():
        raise FileNotFoundError(f"--rois {rois_dir}: not a folder")
    found = {
        file_stem(p): p for p in sorted(rois_dir.iterdir()) if p.is_file() and not p.name.startswith(".")
    }
    absent = [s for s in stems if s not in found]
    if absent:
        raise FileNotFoundError(
            f"--rois {rois_dir}: no region-of-interest file for {', '.join(absent[:10])}"
            + (" ..." if len(absent) > 10 else "")
            + " (same file stem as the image, non-zero = inside)"
        )
    return {s: found[s] for s in stems}


def outside_cleared(labels: np.ndarray, roi_path: Path | None) -> np.ndarray:
    """Labels with every pixel outside the ROI set to background (unchanged without one)."""
    if roi_path is None:
        return labels
    roi = read_roi(roi_path)
    if roi.shape != labels.shape:
        raise ValueError(f"{roi_path}: ROI shape {roi.shape} != prediction shape {labels.shape}")
    return np.where(roi, labels, 0).astype(labels.dtype)
