"""Evaluate a folder of predicted masks against a folder of reference masks (``segflow metrics``).

Files are paired by stem (``case_01.png`` <-> ``case_01.tif``; ``.nii.gz`` counts as one suffix).
Every pair is checked before any metric is computed, so a bad folder fails fast with the file
names in the message.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from components.core.errors import UserError
from components.data.regions import clear_outside, reference_labels, valid_pixels
from components.evaluation.statistics import regional_breakdown
from components.io import MASK_SUFFIXES, file_stem, read_mask_channels_first, read_roi
from components.io.case_masks import binary_foreground, class_indices
from components.metrics import METRIC_NAMES, case_metrics
from components.metrics.per_case import per_case_rows
from components.metrics.protocol import PooledCounts

_LIST_LIMIT = 10


class FolderEvaluationError(UserError, ValueError):
    """The prediction/reference folders cannot be evaluated (pairing, shapes, labels)."""


def _mask_files(folder: Path, role: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise FolderEvaluationError(f"{role} folder {folder} does not exist or is not a directory")
    files: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if not p.is_file() or p.name.startswith(".") or not p.name.lower().endswith(MASK_SUFFIXES):
            continue
        stem = file_stem(p)
        if stem in files:
            raise FolderEvaluationError(
                f"{role} folder {folder}: {files[stem].name} and {p.name} share the stem {stem!r}"
            )
        files[stem] = p
    if not files:
        raise FolderEvaluationError(
            f"{role} folder {folder} holds no mask files ({', '.join(MASK_SUFFIXES)})"
        )
    return files


def _names(stems: Sequence[str]) -> str:
    shown = ", ".join(sorted(stems)[:_LIST_LIMIT])
    return shown + (f" ... ({len(stems)} in all)" if len(stems) > _LIST_LIMIT else "")


def pair_files(pred_dir: str | Path, ref_dir: str | Path) -> list[tuple[str, Path, Path]]:
    """``[(case_id, pred_path, ref_path)]`` sorted by case id.

    Raises:
        FolderEvaluationError: Missing folder, no masks, duplicate stems, or files without a partner.
    """
    pred, ref = _mask_files(Path(pred_dir), "prediction"), _mask_files(Path(ref_dir), "reference")
    only_pred, only_ref = sorted(set(pred) - set(ref)), sorted(set(ref) - set(pred))
    if only_pred or only_ref:
        parts = []
        if only_ref:
            parts.append(f"no prediction in {pred_dir} for reference case(s): {_names(only_ref)}")
        if only_pred:
            parts.append(f"no reference in {ref_dir} for predicted case(s): {_names(only_pred)}")
        raise FolderEvaluationError("unpaired files (pairs are matched by file stem); " + "; ".join(parts))
    return [(stem, pred[stem], ref[stem]) for stem in sorted(ref)]


def _read_labels(path: Path) -> tuple[np.ndarray, tuple[float, ...]]:
    channels, geometry = read_mask_channels_first(path)  # JPEG: binary; gray stored as RGB: gray
    if channels.shape[0] != 1:
        raise FolderEvaluationError(
            f"{path}: mask has {channels.shape[0]} channels; expected a single-channel class-index mask"
        )
    arr, spacing = channels[0], geometry.spacing
    if arr.ndim not in (2, 3):
        raise FolderEvaluationError(f"{path}: mask has shape {arr.shape}; expected 2D (H, W) or 3D (Z, Y, X)")
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
        if not np.all(np.isfinite(arr)) or not np.array_equal(arr, np.round(arr)):
            raise FolderEvaluationError(
                f"{path}: mask values are not integer class indices (dtype {arr.dtype})"
            )
        arr = arr.astype(np.int64)
    if len(spacing) != arr.ndim:
        spacing = (1.0,) * arr.ndim
    return arr, tuple(float(s) for s in spacing)


def _with_regions(
    ref: np.ndarray, case_id: str, rois: dict[str, Path] | None, ignore: int | None
) -> np.ndarray:
    """The reference with ``IGNORE_INDEX`` outside the case's ROI file and on the ignore label."""
    if rois is None:
        return reference_labels(ref, None, ignore) if ignore is not None else ref
    if case_id not in rois:
        raise FolderEvaluationError(f"no ROI file for case {case_id!r} (same file stem as the reference)")
    roi = read_roi(rois[case_id])
    if roi.shape != ref.shape:
        raise FolderEvaluationError(f"case {case_id!r}: ROI shape {roi.shape} != reference shape {ref.shape}")
    return reference_labels(ref, roi, ignore)


def evaluate_folders(
    pred_dir: str | Path,
    ref_dir: str | Path,
    classes: Sequence[int] | None = None,
    spacing: Sequence[float] | None = None,
    connectivity: int = 1,
    tolerance: float = 1.0,
    progress: bool = True,
    regions: bool = False,
    roi_dir: str | Path | None = None,
    ignore_label: int | None = None,
    pooled: PooledCounts | None = None,
) -> pd.DataFrame:
    """Metric panel for every case and class of two folders of masks.

    Args:
        pred_dir: Folder of predicted class-index masks (PNG, TIFF or NIfTI).
        ref_dir: Folder of reference masks; paired with predictions by file stem.
        classes: Classes to evaluate; ``None`` = every non-zero label in any reference, and where
            that is one value ``v > 1`` (binary references written as ``0 / 255``), ``v`` is read
            as class 1 in references and predictions alike, with a printed note.
        spacing: Voxel size per array axis overriding the files' (NIfTI headers give (Z, Y, X)
            spacing; 2D formats have none, so 1).
        connectivity: Border neighbourhood for surface metrics, 1..ndim.
        tolerance: Surface Dice tolerance in physical units.
        progress: Show a tqdm progress bar (for more than a few files).
        regions: For 3D cases, add rows per third of the reference extent along the slice axis
            (``region`` = base / middle / apex, as cardiac studies report); whole-case rows have
            ``region`` = "all".
        roi_dir: Folder of regions of interest (same stems; non-zero = scored): pixels outside
            count in no metric and predictions there are ignored.
        ignore_label: Reference value of unannotated pixels (count in no metric).
        pooled: Accumulator that receives every case's pixels (pooled protocol metrics).

    Returns:
        One row per case and class: ``case_id, class_name, class, region, <METRIC_NAMES>, empty,
        spacing, pred_path, ref_path``.

    Raises:
        FolderEvaluationError: Unpaired files, unreadable or multi-channel masks, shape or spacing
            mismatches, bad spacing length.
    """
    from tqdm.auto import tqdm

    pairs = pair_files(pred_dir, ref_dir)
    foreground = None
    if classes is None:
        found: set[int] = set()
        for _, _, ref_path in pairs:
            found.update(int(v) for v in np.unique(_read_labels(ref_path)[0]) if v != 0)
        foreground = binary_foreground([0, *sorted(found)])
        classes = [1] if foreground is not None else sorted(found)
        if not classes:
            raise FolderEvaluationError(
                f"references in {ref_dir} contain no non-zero label; pass classes explicitly"
            )
        if foreground is not None:
            print(
                f"references in {ref_dir} are binary masks written as 0 / {foreground}: {foreground} is read "
                "as class 1 in references and predictions (segflow writes predictions as 0 / 1)"
            )
    classes = [int(c) for c in classes]
    rois = _mask_files(Path(roi_dir), "ROI") if roi_dir is not None else None
    rows: list[dict] = []
    bar = tqdm(pairs, desc="metrics", unit="case", disable=not progress or len(pairs) < 5)
    for case_id, pred_path, ref_path in bar:
        ref, ref_spacing = _read_labels(ref_path)
        pred, pred_spacing = _read_labels(pred_path)
        ref, pred = class_indices(ref, foreground), class_indices(pred, foreground)
        ref = _with_regions(ref, case_id, rois, ignore_label)
        if pred.shape != ref.shape:
            raise FolderEvaluationError(
                f"case {case_id!r}: prediction {pred_path.name} has shape {pred.shape} but reference "
                f"{ref_path.name} has {ref.shape}; masks must be the same size"
            )
        if spacing is not None:
            case_spacing = tuple(float(s) for s in spacing)
            if len(case_spacing) != ref.ndim:
                raise FolderEvaluationError(
                    f"--spacing {case_spacing} has {len(case_spacing)} values "
                    f"but {ref_path.name} is {ref.ndim}D"
                )
        else:
            if not np.allclose(pred_spacing, ref_spacing, rtol=1e-3):
                raise FolderEvaluationError(
                    f"case {case_id!r}: prediction spacing {pred_spacing} != reference spacing {ref_spacing} "
                    "(header); resample the prediction or pass spacing explicitly"
                )
            case_spacing = ref_spacing
        if pooled is not None:
            pooled.update(clear_outside(pred, ref), ref, valid_pixels(ref))
        case_rows = [
            {**row, "region": "all"}
            for row in case_metrics(pred, ref, classes, case_spacing, connectivity, True, tolerance)
        ]
        if regions and ref.ndim == 3:
            case_rows += regional_breakdown(pred, ref, classes, case_spacing)
        rows += per_case_rows(
            case_id,
            case_rows,
            str,
            keys=("class", "region", *METRIC_NAMES, "empty"),
            extra={
                "spacing": "x".join(f"{s:g}" for s in case_spacing),
                "pred_path": str(pred_path),
                "ref_path": str(ref_path),
            },
        )
    return pd.DataFrame(rows)
