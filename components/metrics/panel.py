"""The segmentation metric panel: overlap, volume and surface metrics per class and case.

This is the ONE implementation used by training validation, fold evaluation, the ensemble's test
report and ``segflow metrics``. On non-empty masks every value equals medpy 0.5.2 (``dc, jc,
sensitivity, specificity, precision, ravd, hd, hd95, asd, assd``) within 1e-9, for 2D and 3D,
anisotropic spacing and connectivity 1..ndim (tests/unit/metrics/test_metrics_exactness.py).

Definitions (P = predicted foreground, R = reference foreground, |.| = voxel count,
S_P / S_R = border voxels, d(x, S) = Euclidean distance in physical units, spacing-aware):

- dice = 2|P∩R| / (|P|+|R|); iou = |P∩R| / |P∪R|; voe = 1 - iou
- sensitivity = TP/(TP+FN); specificity = TN/(TN+FP); precision = TP/(TP+FP)
- rvd = (|P|-|R|)/|R| (signed, medpy's ``ravd`` convention: over-segmentation > 0); ravd = |rvd|
- hd = max of all border-to-border distances (both directions); hd95 = 95th percentile of the
  concatenated distances of both directions (medpy); asd = mean of d(S_P -> S_R) (medpy: the
  prediction's border to the reference); assd = mean of the *concatenated* distances of both
  directions (medpy 0.5.x definition, NOT the mean of the two directed means)
- surface_dice = (#{p in S_P: d(p,S_R) <= tau} + #{r in S_R: d(r,S_P) <= tau}) / (|S_P|+|S_R|),
  Nikolov et al. 2021 with border voxels as surface elements (as MONAI ``compute_surface_dice``
  without sub-voxels); tau = ``surface_tolerance`` in physical units (mm)
- pred_volume, ref_volume = voxel count x prod(spacing) (physical units, e.g. mm^2 / mm^3)

Empty-mask policy (the ``empty`` column says which case applies; "formula" = the definition above
is well defined and used; NaN values are counted and dropped by the statistics):

| metric               | ref empty (pred not) | pred empty (ref not) | both empty |
|----------------------|----------------------|----------------------|------------|
| dice, iou            | 0                    | 0                    | 1          |
| voe                  | 1                    | 1                    | 0          |
| sensitivity          | NaN                  | 0 (formula)          | NaN        |
| specificity          | formula              | 1 (formula)          | 1 (formula)|
| precision            | 0 (formula)          | NaN                  | NaN        |
| rvd                  | NaN                  | -1 (formula)         | 0          |
| ravd                 | NaN                  | 1 (formula)          | 0          |
| hd, hd95, asd, assd  | NaN                  | NaN                  | 0          |
| surface_dice         | 0                    | 0                    | 1          |
| pred_volume, ref_volume | formula           | formula              | 0 (formula)|

Why: when both masks are empty the model correctly predicted absence, so every *agreement*
metric takes its best value (Dice 1, distances 0, volume error 0); medpy's ``jc`` makes the same
choice. Sensitivity and precision are rates over the reference / predicted positives; with no
positives they have no denominator and are NaN rather than an invented 1 that would inflate means
(specificity likewise is NaN if the reference covers the whole image; medpy returns 0 there).
With exactly one mask empty the overlap is 0 and surface distances do not exist (NaN rather
than an image-size-dependent number such as the diagonal); the case is flagged by ``empty``
so reports can count such cases. A relative volume error against an empty reference is NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from components.data.regions import valid_pixels
from components.metrics.surface import check_connectivity, normalize_spacing, surface_distances

METRIC_NAMES: tuple[str, ...] = (
    "dice",
    "iou",
    "sensitivity",
    "specificity",
    "precision",
    "voe",
    "rvd",
    "ravd",
    "hd",
    "hd95",
    "asd",
    "assd",
    "surface_dice",
    "pred_volume",
    "ref_volume",
)
SURFACE_METRICS: tuple[str, ...] = ("hd", "hd95", "asd", "assd", "surface_dice")
NAN = float("nan")


@dataclass(frozen=True)
class MetricInfo:
    """How to read a metric: description, whether higher is better, and its unit kind."""

    description: str
    higher_is_better: bool
    unit: str  # "" (ratio), "length" (spacing units) or "volume" (spacing units ** ndim)


METRIC_INFO: dict[str, MetricInfo] = {
    "dice": MetricInfo("Dice similarity coefficient", True, ""),
    "iou": MetricInfo("intersection over union (Jaccard)", True, ""),
    "sensitivity": MetricInfo("true positive rate (recall)", True, ""),
    "specificity": MetricInfo("true negative rate", True, ""),
    "precision": MetricInfo("positive predictive value", True, ""),
    "voe": MetricInfo("volumetric overlap error, 1 - IoU", False, ""),
    "rvd": MetricInfo("signed relative volume difference (|P|-|R|)/|R|", False, ""),
    "ravd": MetricInfo("absolute relative volume difference", False, ""),
    "hd": MetricInfo("Hausdorff distance", False, "length"),
    "hd95": MetricInfo("95th percentile Hausdorff distance", False, "length"),
    "asd": MetricInfo("average surface distance, prediction to reference", False, "length"),
    "assd": MetricInfo("average symmetric surface distance", False, "length"),
    "surface_dice": MetricInfo("normalised surface Dice at the tolerance", True, ""),
    "pred_volume": MetricInfo("predicted volume (area in 2D)", True, "volume"),
    "ref_volume": MetricInfo("reference volume (area in 2D)", True, "volume"),
}

# metric -> value for (ref empty, pred empty, both empty); None = use the formula (well defined).
EMPTY_POLICY: dict[str, tuple[float | None, float | None, float | None]] = {
    "dice": (0.0, 0.0, 1.0),
    "iou": (0.0, 0.0, 1.0),
    "voe": (1.0, 1.0, 0.0),
    "sensitivity": (NAN, None, NAN),
    "specificity": (None, None, None),
    "precision": (None, NAN, NAN),
    "rvd": (NAN, None, 0.0),
    "ravd": (NAN, None, 0.0),
    "hd": (NAN, NAN, 0.0),
    "hd95": (NAN, NAN, 0.0),
    "asd": (NAN, NAN, 0.0),
    "assd": (NAN, NAN, 0.0),
    "surface_dice": (0.0, 0.0, 1.0),
    "pred_volume": (None, None, None),
    "ref_volume": (None, None, None),
}
_EMPTY_COLUMN = {"ref": 0, "pred": 1, "both": 2}


def _ratio(num: int, den: int) -> float:
    return num / float(den) if den else NAN


def _overlap(pred: np.ndarray, ref: np.ndarray, voxel: float, n_valid: int) -> dict[str, float]:
    """Overlap and volume metrics from the confusion counts (formulas of medpy 0.5.2), over
    ``n_valid`` scored pixels (``pred``/``ref`` are already False outside them)."""
    n_pred, n_ref = int(np.count_nonzero(pred)), int(np.count_nonzero(ref))
    tp = int(np.count_nonzero(pred & ref))
    fp, fn = n_pred - tp, n_ref - tp
    tn = n_valid - tp - fp - fn
    iou = _ratio(tp, n_pred + n_ref - tp)
    rvd = _ratio(n_pred - n_ref, n_ref)
    return {
        "dice": _ratio(2 * tp, n_pred + n_ref),
        "iou": iou,
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "precision": _ratio(tp, tp + fp),
        "voe": 1.0 - iou,
        "rvd": rvd,
        "ravd": abs(rvd),
        "pred_volume": n_pred * voxel,
        "ref_volume": n_ref * voxel,
    }


def surface_metrics(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: Sequence[float] | np.ndarray | None = None,
    connectivity: int = 1,
    tolerance: float = 1.0,
) -> dict[str, float]:
    """HD, HD95, ASD, ASSD and surface Dice of two NON-empty binary masks, from one distance pass.

    Args:
        pred: Predicted binary mask. Shape: (H, W) or (D, H, W).
        ref: Reference binary mask, same shape.
        spacing: Physical voxel size per array axis; ``None`` = 1.
        connectivity: Border neighbourhood, 1..ndim.
        tolerance: Surface Dice tolerance in physical units.

    Raises:
        ValueError: An empty mask (use :func:`binary_metrics` for the empty-mask policy).
    """
    sd = surface_distances(pred, ref, spacing, connectivity)
    a, b = sd.pred_to_ref, sd.ref_to_pred
    both = np.concatenate([a, b])
    within = int(np.count_nonzero(a <= tolerance)) + int(np.count_nonzero(b <= tolerance))
    return {
        "hd": float(max(a.max(), b.max())),
        "hd95": float(np.percentile(both, 95)),
        "asd": float(a.mean()),
        "assd": float(both.mean()),
        "surface_dice": within / float(both.size),
    }


def empty_state(pred: np.ndarray, ref: np.ndarray) -> str:
    """Which mask is empty: ``"none"``, ``"ref"``, ``"pred"`` or ``"both"``."""
    p, r = bool(np.any(pred)), bool(np.any(ref))
    return {(True, True): "none", (True, False): "ref", (False, True): "pred", (False, False): "both"}[(p, r)]


def binary_metrics(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: Sequence[float] | None = None,
    connectivity: int = 1,
    surface: bool = True,
    surface_tolerance: float = 1.0,
    valid: np.ndarray | None = None,
) -> dict[str, float | str]:
    """Every metric of :data:`METRIC_NAMES` for one binary pair, with the empty-mask policy applied.

    Pixels outside ``valid`` (outside the region of interest, or on the ignore label) count in no
    metric: both masks are cleared there before the surfaces are found, and specificity's true
    negatives are counted over valid pixels only.

    Args:
        pred: Predicted mask; non-zero = foreground. Shape: (H, W) or (D, H, W).
        ref: Reference mask, same shape.
        spacing: Physical voxel size per array axis ((z, y, x) order for 3D); ``None`` = 1.
        connectivity: Neighbourhood defining the border (1..ndim), as medpy's ``connectivity``.
        surface: ``False`` skips the surface metrics (NaN), for cheap training validation.
        surface_tolerance: Surface Dice tolerance in physical units (>= 0).
        valid: Scored pixels (bool, same shape), or None for all.

    Returns:
        ``{metric: value}`` for every metric plus ``"empty"`` (``"none"|"ref"|"pred"|"both"``).

    Raises:
        ValueError: Shape mismatch, bad spacing, connectivity or tolerance.
    """
    pred = np.asarray(pred).astype(bool, copy=False)
    ref = np.asarray(ref).astype(bool, copy=False)
    if pred.shape != ref.shape:
        raise ValueError(f"pred shape {pred.shape} != ref shape {ref.shape}; masks must be the same size")
    if pred.ndim not in (2, 3):
        raise ValueError(f"masks must be 2D or 3D, got {pred.ndim}D with shape {pred.shape}")
    n_valid = pred.size
    if valid is not None:
        valid = np.asarray(valid, dtype=bool)
        if valid.shape != pred.shape:
            raise ValueError(f"valid shape {valid.shape} != mask shape {pred.shape}")
        pred, ref, n_valid = pred & valid, ref & valid, int(np.count_nonzero(valid))
    sp = normalize_spacing(spacing, pred.ndim)
    conn = check_connectivity(connectivity, pred.ndim)
    if not surface_tolerance >= 0:
        raise ValueError(f"surface_tolerance={surface_tolerance!r} must be >= 0 (physical units)")
    values: dict[str, float | str] = dict(_overlap(pred, ref, float(np.prod(sp)), n_valid))
    state = empty_state(pred, ref)
    if state == "none" and surface:
        values.update(surface_metrics(pred, ref, sp, conn, float(surface_tolerance)))
    else:
        values.update(dict.fromkeys(SURFACE_METRICS, NAN))
    if state != "none":
        column = _EMPTY_COLUMN[state]
        for name, cells in EMPTY_POLICY.items():
            cell = cells[column]
            if cell is not None and (surface or name not in SURFACE_METRICS):
                values[name] = cell
    out: dict[str, float | str] = {name: values[name] for name in METRIC_NAMES}
    out["empty"] = state
    return out


def check_label_maps(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two label maps as arrays, checked to be integer (or bool) maps of one shape.

    Raises:
        ValueError: Shape mismatch or a non-integer dtype.
    """
    pred, ref = np.asarray(pred), np.asarray(ref)
    if pred.shape != ref.shape:
        raise ValueError(
            f"pred shape {pred.shape} != ref shape {ref.shape}; label maps must be the same size"
        )
    for name, arr in (("pred", pred), ("ref", ref)):
        if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
            raise ValueError(f"{name} must be an integer label map, got dtype {arr.dtype}")
    return pred, ref


def case_metrics(
    pred: np.ndarray,
    ref: np.ndarray,
    classes: Sequence[int],
    spacing: Sequence[float] | None = None,
    connectivity: int = 1,
    surface: bool = True,
    surface_tolerance: float = 1.0,
) -> list[dict[str, float | int | str]]:
    """The metric panel for each class of one case.

    Reference pixels holding ``IGNORE_INDEX`` (outside the ROI, or the ignore label; see
    ``components.data.regions``) count in no metric, whatever the prediction there.

    Args:
        pred: Predicted integer label map. Shape: (H, W) or (D, H, W).
        ref: Reference integer label map, same shape.
        classes: Class indices to evaluate (e.g. ``[1, 2]``; background is usually left out).
        spacing: Physical voxel size per array axis; ``None`` = 1.
        connectivity: Border neighbourhood, 1..ndim.
        surface: ``False`` skips the surface metrics (NaN).
        surface_tolerance: Surface Dice tolerance in physical units.

    Returns:
        One dict per class: ``{"class": c, <every metric>, "empty": ...}``.

    Raises:
        ValueError: Shape mismatch, non-integer label maps, or the arguments of :func:`binary_metrics`.
    """
    pred, ref = check_label_maps(pred, ref)
    valid = valid_pixels(ref)
    rows: list[dict[str, float | int | str]] = []
    for c in classes:
        row: dict[str, float | int | str] = {"class": int(c)}
        row.update(
            binary_metrics(pred == c, ref == c, spacing, connectivity, surface, surface_tolerance, valid)
        )
        rows.append(row)
    return rows
