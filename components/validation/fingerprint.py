"""The dataset fingerprint: spacing, shape, intensity and class statistics of a validated dataset.

What nnU-Net calls the dataset fingerprint, and what later stages plan from (target spacing,
patch size, intensity normalisation, loss weighting). Written as ``reports/validation/
fingerprint.json`` with exactly these keys::

    {"ndim": 3, "n_cases": N, "channels": C,
     "spacing": {"median": [...], "min": [...], "max": [...], "p10": [...], "p90": [...]},
     "shape": {"median": [...], "min": [...], "max": [...]},
     "anisotropy": float, "coarsest_axis": int,
     "intensity": [{"channel": 0, "p0_5": .., "p50": .., "p99_5": .., "mean": .., "sd": ..}],
     "class_fractions": {"background": f, "<class>": f, ...},
     "nonzero_fraction": {"median": f, "min": f},
     "classes": {"background": 0, "<class>": 1, ...}, "class_source": "dataset.json labels",
     "channel_names": ["CT"], "class_layout": {...}}

``classes`` are the run's classes (name -> mask value) and ``class_source`` says where they came
from (``data.classes`` in params.yaml, ``dataset.json``'s labels, or the mask values found);
``channel_names`` come from ``dataset.json`` (empty strings where nothing names a channel).
:mod:`components.validation.dataset_description` resolves all three.

``nonzero_fraction`` is the share of a case's voxels inside the bounding box of its non-zero voxels
(any channel): the plan crops to that box when it keeps less than 3/4 of a median case (skull-stripped
MRI, say), as nnU-Net does. ``class_layout`` counts, per pair of foreground classes and per axis, the
cases in which one class's centre lies before the other's (:mod:`components.validation.class_layout`;
the plan mirrors no axis along which the classes keep one order).

Spacing and shape are per array axis (``(Z, Y, X)``; 2D images ``(H, W)`` with spacing 1.0).
Intensities are those of foreground voxels (mask > 0), at most ``max_voxels_per_case`` drawn per
case without replacement from a generator seeded by ``(seed, case index)``, so the numbers do
not depend on the machine or on how many cases came before. A channel without any foreground
voxel in the dataset has null statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from components.data.regions import IGNORE_INDEX, reference_labels
from components.io import read_case_channels, read_case_roi, split_image_paths
from components.io.case_masks import read_case_mask
from components.validation.class_layout import ClassLayout
from components.validation.manifest import write_json_atomic

INTENSITY_PERCENTILES: dict[str, float] = {"p0_5": 0.5, "p50": 50.0, "p99_5": 99.5}


def _floats(values: np.ndarray) -> list[float]:
    return [float(v) for v in values]


def _sample_foreground(
    image: np.ndarray, mask: np.ndarray, n_max: int, rng: np.random.Generator
) -> np.ndarray:
    """Foreground voxels of every channel, at most ``n_max`` of them.

    Shape: image ``(C, *S)``, mask ``S`` -> ``(C, n)``.
    """
    index = np.flatnonzero(mask.ravel() > 0)
    if index.size > n_max:
        index = np.sort(rng.choice(index, size=n_max, replace=False))
    return image.reshape(image.shape[0], -1)[:, index]


def _nonzero_box_fraction(image: np.ndarray) -> float:
    """Share of the voxels inside the bounding box of the non-zero voxels (of any channel).

    Shape: image ``(C, *S)``.
    """
    inside = np.any(image != 0, axis=0)
    if not inside.any():
        return 1.0  # nothing to crop to: the whole case stays
    box = 1
    for axis in range(inside.ndim):
        hits = np.flatnonzero(np.any(inside, axis=tuple(a for a in range(inside.ndim) if a != axis)))
        box *= int(hits[-1] - hits[0] + 1)
    return box / inside.size


def _intensity(samples: np.ndarray, channel: int) -> dict[str, Any]:
    """Statistics of one channel's sampled foreground voxels (null when there are none)."""
    stats: dict[str, Any] = {"channel": channel}
    values = samples.astype(np.float64)
    empty = values.size == 0
    for key, q in INTENSITY_PERCENTILES.items():
        stats[key] = None if empty else float(np.percentile(values, q))
    stats["mean"] = None if empty else float(values.mean())
    stats["sd"] = None if empty else float(values.std())
    return stats


def compute_fingerprint(
    manifest: pd.DataFrame,
    data_dir: Path,
    class_names: Sequence[str],
    max_voxels_per_case: int = 10000,
    seed: int = 0,
    ignore_label: int | None = None,
    class_source: str = "data.classes (params.yaml)",
    channel_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Compute the fingerprint of a validated dataset, reading each case once.

    Args:
        manifest: The validated metadata table (``build_metadata``); rows with both an image and
            a mask are used, ``image_path`` (``;``-joined for channel files) and ``mask_path``
            relative to ``data_dir``.
        data_dir: Folder the manifest's paths are relative to.
        class_names: Class names ordered by mask value (``class_names[v]`` labels value ``v``).
        max_voxels_per_case: Foreground voxels sampled per case for the intensity statistics.
        seed: Seed of the sampling.
        ignore_label: Mask value of unannotated pixels (left out of every statistic).
        class_source: Where ``class_names`` came from, in words.
        channel_names: One name per image channel (``dataset.json``); None: unnamed (empty strings).

    Returns:
        The fingerprint (JSON-ready; keys in the module docstring).

    Raises:
        ValueError: No usable case, cases of different dimensionality or channel count, a
            mask value outside ``0..len(class_names)-1`` (validate the dataset first), or a number
            of channel names other than the images' channel count.

    Pixels outside a case's ROI (manifest ``roi_path``) or on ``ignore_label`` are left out of
    the class fractions and the intensity samples.
    """
    if max_voxels_per_case < 1:
        raise ValueError(f"max_voxels_per_case must be >= 1, got {max_voxels_per_case}")
    rows = manifest[manifest["has_image"].astype(bool) & manifest["has_mask"].astype(bool)]
    if rows.empty:
        raise ValueError("the manifest has no case with both an image and a mask")
    n_classes = len(class_names)
    spacings: list[tuple[float, ...]] = []
    shapes: list[tuple[int, ...]] = []
    samples: list[np.ndarray] = []
    counts = np.zeros(n_classes, np.int64)
    nonzero: list[float] = []
    layout: ClassLayout | None = None
    for i, row in enumerate(rows.itertuples(index=False)):
        image, geometry = read_case_channels(
            [data_dir / p for p in split_image_paths(cast(str, row.image_path))]
        )
        mask = read_case_mask(data_dir, row)
        if mask.shape != image.shape[1:]:
            raise ValueError(f"case {row.case_id}: mask shape {mask.shape} != image shape {image.shape[1:]}")
        roi = read_case_roi(data_dir, getattr(row, "roi_path", None))
        ref = reference_labels(mask, roi, ignore_label)  # scored pixels only
        mask = np.where(ref == IGNORE_INDEX, 0, ref)
        labels = ref[ref != IGNORE_INDEX]
        if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
            raise ValueError(f"case {row.case_id}: mask values outside 0..{n_classes - 1}")
        counts += np.bincount(labels, minlength=n_classes)
        layout = layout or ClassLayout(class_names, mask.ndim)
        if mask.ndim == layout.ndim:
            layout.add(mask.astype(np.int64, copy=False))
        spacings.append(geometry.spacing)
        nonzero.append(_nonzero_box_fraction(image))
        shapes.append(tuple(mask.shape))
        samples.append(_sample_foreground(image, mask, max_voxels_per_case, np.random.default_rng([seed, i])))
    if len({len(s) for s in shapes}) > 1 or len({s.shape[0] for s in samples}) > 1:
        raise ValueError(
            "cases differ in their number of spatial axes or channels; validate the dataset first"
        )

    n_channels = samples[0].shape[0]
    names = [""] * n_channels if channel_names is None else [str(n) for n in channel_names]
    if len(names) != n_channels:
        raise ValueError(f"{len(names)} channel name(s) {names} for images with {n_channels} channel(s)")
    sp, sh = np.asarray(spacings, np.float64), np.asarray(shapes, np.float64)
    median_spacing = np.median(sp, axis=0)
    foreground = np.concatenate(samples, axis=1)
    return {
        "ndim": int(sp.shape[1]),
        "n_cases": len(rows),
        "channels": int(foreground.shape[0]),
        "spacing": {
            "median": _floats(median_spacing),
            "min": _floats(sp.min(axis=0)),
            "max": _floats(sp.max(axis=0)),
            "p10": _floats(np.percentile(sp, 10, axis=0)),
            "p90": _floats(np.percentile(sp, 90, axis=0)),
        },
        "shape": {
            "median": _floats(np.median(sh, axis=0)),
            "min": [int(v) for v in sh.min(axis=0)],
            "max": [int(v) for v in sh.max(axis=0)],
        },
        "anisotropy": float(median_spacing.max() / median_spacing.min()),
        "coarsest_axis": int(np.argmax(median_spacing)),
        "intensity": [_intensity(foreground[c], c) for c in range(foreground.shape[0])],
        "class_fractions": {name: float(counts[v] / counts.sum()) for v, name in enumerate(class_names)},
        "nonzero_fraction": {"median": float(np.median(nonzero)), "min": float(np.min(nonzero))},
        "classes": {name: v for v, name in enumerate(class_names)},
        "class_source": class_source,
        "channel_names": names,
        "class_layout": cast(ClassLayout, layout).summary(),
    }


def write_fingerprint(fingerprint: dict[str, Any], path: Path) -> None:
    """Write the fingerprint as JSON to ``path`` atomically (parent folders are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(fingerprint, path)
