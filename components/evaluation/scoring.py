"""Score a predictor on a set of cases at their original resolution with the shared metric panel."""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, cast

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from components.data.regions import clear_outside, reference_labels, valid_pixels
from components.evaluation.roc import StreamingROC
from components.io import read_case_roi, read_image
from components.io.case_masks import read_case_mask
from components.io.volumes import Geometry, is_volume, read_case_image
from components.metrics import case_metrics
from components.metrics.per_case import per_case_rows
from components.metrics.protocol import PooledCounts, label_mask_threshold_dice, mean_dice_over_thresholds
from components.postprocessing import Postprocessing, candidate_rules
from components.postprocessing.selection import (
    HOLDS_COLUMN,
    TABLE_COLUMNS,
    candidate_dice,
    candidate_rows,
    reference_holds,
)
from components.preprocessing.native_io import image_files

if TYPE_CHECKING:
    from components.params.config import Params


class ProbabilityModel(Protocol):
    """Anything that maps a raw image or volume to class probabilities at its original size."""

    def predict_proba(self, image: np.ndarray, spacing: Sequence[float] | None = None) -> np.ndarray:
        """Shape: image (H, W[, C]) or volume (C, Z, Y, X) -> (K, *S)."""
        ...


def read_scoring_case(data_dir: Path, row: Any) -> tuple[np.ndarray, np.ndarray, Geometry | None]:
    """A manifest row's raw image (2D as stored; volumes ``(C, Z, Y, X)``), its class-index labels
    (:func:`components.io.case_masks.read_case_mask`) and a volume's geometry."""
    # the manifest's path columns hold relative paths as str (the stubs type a row's fields as any scalar)
    files = image_files(data_dir, cast(str, row.image_path))
    mask = read_case_mask(data_dir, row).astype(np.int64)
    if is_volume(files[0]):
        image, geometry = read_case_image(files)
        return image, mask, geometry
    return read_image(files[0]), mask, None


def gallery_slice(
    image: np.ndarray, ref: np.ndarray, pred: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """2D views for the worst-case gallery: images as they are; volumes at the axis-0 slice with
    the most reference foreground (first channel)."""
    if ref.ndim == 2:
        return image, ref, pred
    z = int(np.argmax((ref > 0).reshape(ref.shape[0], -1).sum(1)))
    vol = image if image.ndim == ref.ndim else image[0]
    return vol[z], ref[z], pred[z]


class WorstCase(TypedDict):
    """One worst-case gallery item (see ``plots.worst_cases_gallery``)."""

    image: np.ndarray
    ref: np.ndarray
    pred: np.ndarray
    mean_dice: float
    title: str


@dataclass
class ScoredCases:
    """Per-case metric rows, the ROC and pooled-count accumulators, the worst cases (for the
    gallery) and, for cross-validation, the Dice of every postprocessing candidate per case."""

    per_case: pd.DataFrame
    roc: StreamingROC
    worst: list[WorstCase] = field(default_factory=list)
    pooled: PooledCounts | None = None
    candidates: pd.DataFrame | None = None


@dataclass(frozen=True)
class ScoringOptions:
    """How cases are scored.

    Attributes:
        ignore_label: Mask value of unannotated pixels (``data.ignore_label``); with the case's
            ROI (manifest ``roi_path``) it marks pixels that count in no metric.
        postprocessing: Applied to every prediction before it is scored (the test report).
        postprocess_candidates: Also score every postprocessing rule (cross-validation).
    """

    class_names: Sequence[str]
    spacing: Sequence[float] | None = None
    connectivity: int = 1
    surface_tolerance: float = 1.0
    worst_cases: int = 6
    ignore_label: int | None = None
    postprocessing: Postprocessing | None = None
    postprocess_candidates: bool = False


def scoring_options(params: Params, postprocessing: Postprocessing | None = None) -> ScoringOptions:
    """Scoring options from params.yaml (fold evaluation and the ensemble's test report)."""
    ev = params.evaluate
    return ScoringOptions(
        params.data.class_names,
        ev.spacing,
        ev.connectivity,
        ev.surface_tolerance,
        ev.worst_cases,
        params.data.ignore_label,
        postprocessing,
        postprocess_candidates=postprocessing is None and ev.postprocess == "cv",
    )


def _reference(data_dir: Path, row: object, mask: np.ndarray, ignore_label: int | None) -> np.ndarray:
    """The reference labels with ``IGNORE_INDEX`` outside the case's ROI and on the ignore label."""
    return reference_labels(mask, read_case_roi(data_dir, getattr(row, "roi_path", None)), ignore_label)


def _threshold_rows(probs: np.ndarray, ref: np.ndarray, classes: Sequence[int]) -> dict[int, float]:
    """Mean Dice over binarisation thresholds of each class's probability (``dice_thrmean``)."""
    valid = valid_pixels(ref)
    return {c: mean_dice_over_thresholds(probs[c], ref == c, valid) for c in classes}


def has_volumes(cases: pd.DataFrame) -> bool:
    """True when the manifest rows hold 3D volumes (the validate stage's ``ndim`` column)."""
    return "ndim" in cases.columns and bool((cases["ndim"] == 3).any())


def distance_unit(params: Params, volumes: bool = False) -> str:
    """Millimetres for volumes (their spacing) or when evaluate.spacing is given, else pixels."""
    return "mm" if params.evaluate.spacing or volumes else "px"


def score_cases(
    predictor: ProbabilityModel,
    cases: pd.DataFrame,
    data_dir: Path,
    opts: ScoringOptions,
    desc: str = "evaluate",
    roc: StreamingROC | None = None,
) -> ScoredCases:
    """Predict every case and compute the metric panel per case and foreground class.

    Args:
        predictor: Model or ensemble.
        cases: Manifest rows (case_id, image_path, mask_path relative to ``data_dir``).
        data_dir: Dataset root.
        opts: Class names, spacing, connectivity, tolerance, gallery size.
        desc: Progress-bar label.
        roc: Accumulator to add this set's pixels to (pooled ROC over folds); a new one if None.
    """
    num_classes = len(opts.class_names)
    classes = list(range(1, num_classes))
    roc = roc if roc is not None else StreamingROC(num_classes)
    pooled = PooledCounts(num_classes)
    rules = candidate_rules() if opts.postprocess_candidates else []
    candidates: list[dict[str, object]] = []
    rows: list[dict[str, object]] = []
    heap: list[tuple[float, int, WorstCase]] = []
    for i, row in enumerate(tqdm(list(cases.itertuples(index=False)), desc=desc, unit="case")):
        image, mask, geometry = read_scoring_case(data_dir, row)
        ref = _reference(data_dir, row, mask, opts.ignore_label)
        spacing = geometry.spacing if geometry is not None else None
        probs = predictor.predict_proba(image, spacing)
        pred = probs.argmax(0)
        valid = valid_pixels(ref)
        if rules:  # components as the model sees them; Dice over the scored pixels
            scores = candidate_dice(pred, ref, classes, rules, opts.connectivity, valid)
            holds = reference_holds(ref, classes, valid)
            candidates += candidate_rows(str(row.case_id), scores, holds)
        if opts.postprocessing is not None:
            pred = opts.postprocessing.apply(pred)
        pred = clear_outside(pred, ref)  # outside the ROI: background (as segflow predict --rois)
        roc.update(probs, ref)
        pooled.update(pred, ref, valid)
        thr_dice = _threshold_rows(probs, ref, classes)
        metrics = case_metrics(
            pred,
            ref,
            classes,
            spacing=opts.spacing if opts.spacing is not None else spacing,
            connectivity=opts.connectivity,
            surface_tolerance=opts.surface_tolerance,
        )
        for m in metrics:
            c = int(m["class"])
            m["dice_thrmean"] = thr_dice[c]
            m["dice_thrmean_label"] = label_mask_threshold_dice(pred == c, ref == c, valid)
        rows += per_case_rows(str(row.case_id), metrics, lambda c: opts.class_names[c])
        mean_dice = float(np.nanmean([float(m["dice"]) for m in metrics]))
        view_image, view_ref, view_pred = gallery_slice(image, ref, pred)
        item: WorstCase = {
            "image": view_image,
            "ref": view_ref,
            "pred": view_pred,
            "mean_dice": mean_dice,
            "title": f"{row.case_id}  mean Dice {mean_dice:.3f}",
        }
        if opts.worst_cases:  # keep the k lowest mean Dice: the heap top is the best kept case
            heapq.heappush(heap, (-mean_dice, i, item))
            if len(heap) > opts.worst_cases:
                heapq.heappop(heap)
    worst = [h[2] for h in sorted(heap, key=lambda h: (-h[0], h[1]))]
    table = pd.DataFrame(candidates, columns=[*TABLE_COLUMNS, HOLDS_COLUMN]) if rules else None
    return ScoredCases(pd.DataFrame(rows), roc, worst, pooled, table)
