"""What the rules read about a dataset: the fingerprint plus per-case facts from the manifest."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from components.planning.decision import PlanError


@dataclass(frozen=True)
class DatasetFacts:
    """The dataset as the planner sees it.

    Attributes:
        ndim: Spatial axes (2 images, 3 volumes).
        channels: Image channels (modalities; 3 for RGB).
        channel_names: From ``dataset.json`` where it names them, else empty strings.
        classes: Class name -> mask value (``data.classes`` or what validate resolved).
        shapes: Spatial shape per usable case, ``(n, ndim)``.
        spacings: Spacing per usable case, ``(n, ndim)`` (1.0 for 2D files).
        dtypes: Image dtype per case.
        intensity_min: Lowest voxel per case (all channels).
        intensity_max: Highest voxel per case.
        n_test: Cases held out for the test set (the official split's, else the planned fraction).
        fingerprint: The fingerprint as validate wrote it.
        name: The dataset's name in its ``dataset.json``, or None.
        folder: The data folder's name, or None.
    """

    ndim: int
    channels: int
    channel_names: tuple[str, ...]
    classes: dict[str, int]
    shapes: np.ndarray
    spacings: np.ndarray
    dtypes: tuple[str, ...]
    intensity_min: np.ndarray
    intensity_max: np.ndarray
    n_test: int
    fingerprint: Mapping[str, Any]
    name: str | None = None
    folder: str | None = None

    @property
    def n_cases(self) -> int:
        """Cases with an image and a mask."""
        return int(self.shapes.shape[0])

    @property
    def n_train(self) -> int:
        """Cases the folds are made of (all but the test set)."""
        return self.n_cases - self.n_test

    @property
    def median_shape(self) -> tuple[float, ...]:
        """Median spatial shape as read (before resampling)."""
        return tuple(float(v) for v in np.median(self.shapes, axis=0))


def _ints(text: Any) -> list[int]:
    return [int(float(v)) for v in str(text).split(",")]


def _floats(text: Any) -> list[float]:
    return [float(v) for v in str(text).split(",")]


def dataset_facts(
    fingerprint: Mapping[str, Any],
    manifest: pd.DataFrame,
    classes: Mapping[str, int],
    test_fraction: float,
) -> DatasetFacts:
    """Collect the facts the rules need.

    Args:
        fingerprint: ``reports/validation/fingerprint.json``.
        manifest: ``data/manifest.parquet`` (one row per case; usable rows have image and mask).
        classes: The class names and mask values the run uses.
        test_fraction: ``preprocess.splits.test_fraction`` (used when no official split is given).

    Raises:
        PlanError: No usable case.
    """
    rows = manifest[manifest["has_image"].astype(bool) & manifest["has_mask"].astype(bool)]
    if rows.empty:
        raise PlanError("data/manifest.parquet has no case with both an image and a mask; run validate first")
    ndim = int(fingerprint["ndim"])
    shapes = np.array([_ints(s)[-ndim:] for s in rows["shape"]], dtype=np.int64)
    spacings = np.array([_floats(s)[-ndim:] for s in rows["spacing"]], dtype=np.float64)
    official = rows["split"].dropna() if "split" in rows else pd.Series([], dtype=object)
    n_test = int((official == "test").sum()) if len(official) else round(test_fraction * len(rows))
    names = fingerprint.get("channel_names") or [""] * int(fingerprint["channels"])
    return DatasetFacts(
        ndim=ndim,
        channels=int(fingerprint["channels"]),
        channel_names=tuple(str(n) for n in names),
        classes=dict(classes),
        shapes=shapes,
        spacings=spacings,
        dtypes=tuple(str(d) for d in rows["dtype"]),
        intensity_min=rows["intensity_min"].to_numpy(dtype=np.float64),
        intensity_max=rows["intensity_max"].to_numpy(dtype=np.float64),
        n_test=n_test,
        fingerprint=fingerprint,
    )


def resampled_shapes(facts: DatasetFacts, target: tuple[float, ...] | None) -> np.ndarray:
    """Every case's shape after resampling to ``target`` (as read when None). Shape: ``(n, ndim)``."""
    if target is None:
        return facts.shapes.astype(np.float64)
    return facts.shapes * facts.spacings / np.asarray(target, dtype=np.float64)
