"""Published-protocol metrics: mean Dice over binarisation thresholds, and set-pooled pixel counts.

The metric panel (:mod:`components.metrics.panel`) scores each case on its own. Several published
benchmarks report other numbers, and comparing with them needs their protocol, named explicitly:

- ``dice_thrmean`` (after Inf-Net / PraNet's binary-task evaluation): the probability map is
  binarised at each of 256 thresholds ``t`` in ``np.linspace(0, 1, 256)``, a pixel being foreground
  when ``prob >= t`` (compared in float64, so a probability exactly on a threshold is foreground
  there); the case's score is the mean of the Dice values over the thresholds. Two differences from
  their MATLAB tool: the probabilities are used as they are (the tool first stretches each map to
  [0, 1] with min-max), and the per-threshold Dice follows the panel's empty-mask policy (both
  empty = 1, one empty = 0; the tool scores 0 wherever the masks share no pixel).
- ``dice_thrmean_label`` (Inf-Net's multi-class protocol, its Table of ground-glass opacity and
  consolidation): Inf-Net scores its multi-class models on the argmax label map, split into one
  binary map per class, through the same MATLAB tool. Here exactly that: the class's label mask as
  the map, min-max stretched (a constant map becomes 0), binarised at the 256 thresholds from 1 down
  to 0 (``map >= t``), Dice 0 wherever the binarised map and the reference share no pixel (both
  empty included), the mean over the thresholds; on a mask holding both values that is
  ``(255 x Dice of the mask + Dice of the whole image) / 256``.
- ``pooled_*``: TP/FP/FN/TN of ``pred == c`` vs ``ref == c`` summed over every valid pixel of a
  whole set (e.g. the test set) before any ratio is taken, so large cases weigh more; this is
  the "global" / "micro" Dice of many challenge leaderboards. A ratio whose denominator is 0 over
  the whole set is NaN (e.g. ``pooled_dice`` of a class absent from every prediction and every
  reference, ``pooled_specificity`` when the class covers every valid pixel): a pooled value
  describes the set, and an empty set of positives has no rate; the panel's "both empty = 1"
  is a per-case convention and is not invented here.

Region of interest: every function takes an optional boolean ``valid`` mask; pixels outside it
(a field of view, or pixels carrying an ignore label: pass ``valid=ref != ignore_label``) count
in no metric, and whatever ``prob`` / ``pred`` hold there is never read.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from components.metrics.panel import EMPTY_POLICY, MetricInfo

THRESHOLDS: np.ndarray = np.linspace(0.0, 1.0, 256)
THRESHOLD_METRIC_NAMES: tuple[str, ...] = ("dice_thrmean", "dice_thrmean_label")
POOLED_METRIC_NAMES: tuple[str, ...] = (
    "pooled_dice",
    "pooled_iou",
    "pooled_sensitivity",
    "pooled_specificity",
    "pooled_precision",
    "pooled_accuracy",
)
PROTOCOL_METRIC_NAMES: tuple[str, ...] = THRESHOLD_METRIC_NAMES + POOLED_METRIC_NAMES
PROTOCOL_METRIC_INFO: dict[str, MetricInfo] = {
    "dice_thrmean": MetricInfo("per-case mean Dice over 256 thresholds (prob >= t)", True, ""),
    "dice_thrmean_label": MetricInfo(
        "per-case mean Dice over 256 thresholds of the label mask (Inf-Net's multi-class tool)", True, ""
    ),
    "pooled_dice": MetricInfo("Dice (F1) of TP/FP/FN pooled over the set", True, ""),
    "pooled_iou": MetricInfo("IoU of counts pooled over the set", True, ""),
    "pooled_sensitivity": MetricInfo("TP/(TP+FN) pooled over the set", True, ""),
    "pooled_specificity": MetricInfo("TN/(TN+FP) pooled over the set", True, ""),
    "pooled_precision": MetricInfo("TP/(TP+FP) pooled over the set", True, ""),
    "pooled_accuracy": MetricInfo("(TP+TN)/N of class-vs-rest, pooled over the set", True, ""),
}
_BOTH_EMPTY_DICE = EMPTY_POLICY["dice"][2]


def dice_from_counts(tp: np.ndarray | int, n_pred: np.ndarray | int, n_ref: np.ndarray | int) -> np.ndarray:
    """Dice ``2 TP / (|P| + |R|)`` with the panel's policy when both masks are empty.

    Args:
        tp: True-positive counts.
        n_pred: Predicted-foreground counts.
        n_ref: Reference-foreground counts.

    Returns:
        float64 Dice values (1 where ``n_pred + n_ref == 0``; one empty mask gives 0 by the formula).

    Shape: tp, n_pred, n_ref broadcastable (*B) -> (*B).
    """
    tp_a, den = np.asarray(tp, dtype=np.float64), np.asarray(n_pred, np.float64) + np.asarray(n_ref)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.where(den > 0, 2.0 * tp_a / den, _BOTH_EMPTY_DICE), dtype=np.float64)


def _valid_mask(valid: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    if valid is None:
        return None
    v = np.asarray(valid)
    if v.dtype != bool:
        raise ValueError(f"valid must be a boolean mask (True = counted), got dtype {v.dtype}")
    if v.shape != shape:
        raise ValueError(f"valid shape {v.shape} != image shape {shape}; the mask must match the image")
    return v


def _check_thresholds(thresholds: np.ndarray) -> np.ndarray:
    t = np.asarray(thresholds, dtype=np.float64)
    if t.ndim != 1 or t.size == 0 or not np.all(np.isfinite(t)):
        raise ValueError(f"thresholds must be a non-empty 1D array of finite numbers, got shape {t.shape}")
    return t


def threshold_dice_curve(
    prob: np.ndarray,
    ref: np.ndarray,
    valid: np.ndarray | None = None,
    thresholds: np.ndarray = THRESHOLDS,
) -> np.ndarray:
    """Dice of ``prob >= t`` vs ``ref`` for every threshold ``t``, one class of one case.

    One pass over the pixels: each pixel's number of thresholds at or below its probability is
    found by binary search (``O(pixels log T)``), and per-threshold counts follow from a histogram
    of those numbers and a cumulative sum (``O(T)``); no pass per threshold.

    Args:
        prob: Foreground probability in [0, 1] (compared in float64).
        ref: Reference mask; bool, or integers 0/1 (an ignore label belongs in ``valid``).
        valid: Pixels that count; ``None`` = all.
        thresholds: Binarisation thresholds, any order (the curve follows their order).

    Returns:
        float64 Dice per threshold; both masks empty at a threshold -> 1, one empty -> 0.

    Raises:
        ValueError: Shape mismatch, a valid probability outside [0, 1] or NaN, a reference value
            other than 0/1 at a valid pixel, or bad thresholds.

    Shape: prob (*S) float, ref (*S) bool, valid (*S) bool, thresholds (T,) -> (T,).
    """
    prob, ref = np.asarray(prob), np.asarray(ref)
    if prob.shape != ref.shape:
        raise ValueError(f"prob shape {prob.shape} != ref shape {ref.shape}; they must be the same size")
    t = _check_thresholds(thresholds)
    v = _valid_mask(valid, prob.shape)
    p, r = (prob, ref) if v is None else (prob[v], ref[v])
    p = p.astype(np.float64, copy=False).reshape(-1)
    if p.size and not (np.min(p) >= 0.0 and np.max(p) <= 1.0):  # also catches NaN
        raise ValueError(
            f"prob must hold probabilities in [0, 1] at valid pixels, got range "
            f"[{np.min(p)}, {np.max(p)}] (apply sigmoid/softmax to logits first)"
        )
    if r.dtype != bool:
        if r.size and not np.isin(r, (0, 1)).all():
            raise ValueError(
                "ref must be a binary mask (bool or 0/1) at valid pixels; "
                "mark ignore labels as invalid with valid=ref != ignore_label"
            )
        r = r.astype(bool)
    r = r.reshape(-1)
    order = np.argsort(t, kind="stable")
    # k = number of thresholds <= p: the pixel is foreground at sorted thresholds 0..k-1.
    k = np.searchsorted(t[order], p, side="right")
    n_t = t.size
    hist = np.bincount(k + (n_t + 1) * r, minlength=2 * (n_t + 1)).reshape(2, n_t + 1)
    # foreground count at sorted threshold j = #pixels with k > j (reverse cumulative sum).
    above = np.cumsum(hist[:, ::-1], axis=1)[:, ::-1][:, 1:]
    tp_sorted, n_pred_sorted = above[1], above[0] + above[1]
    curve = np.empty(n_t, dtype=np.float64)
    curve[order] = dice_from_counts(tp_sorted, n_pred_sorted, int(np.count_nonzero(r)))
    return curve


def mean_dice_over_thresholds(
    prob: np.ndarray,
    ref: np.ndarray,
    valid: np.ndarray | None = None,
    thresholds: np.ndarray = THRESHOLDS,
) -> float:
    """``dice_thrmean``: mean of :func:`threshold_dice_curve` (Inf-Net/PraNet "mean Dice").

    Args:
        prob: Foreground probability in [0, 1].
        ref: Reference mask (bool or 0/1).
        valid: Pixels that count; ``None`` = all.
        thresholds: Binarisation thresholds.

    Returns:
        The mean Dice over the thresholds.

    Shape: prob (*S), ref (*S), valid (*S) -> scalar.
    """
    return float(np.mean(threshold_dice_curve(prob, ref, valid, thresholds)))


def label_mask_threshold_dice(
    pred: np.ndarray, ref: np.ndarray, valid: np.ndarray | None = None, n_thresholds: int = THRESHOLDS.size
) -> float:
    """``dice_thrmean_label``: Inf-Net's multi-class protocol for one class of one case (see the
    module docstring): the predicted label mask through its threshold-averaged evaluation.

    Args:
        pred: The predicted mask of the class (bool or 0/1).
        ref: The reference mask of the class (bool or 0/1).
        valid: Pixels that count; ``None`` = all.
        n_thresholds: Thresholds from 1 down to 0 (the tool's 256).

    Returns:
        The mean over the thresholds of Dice, 0 wherever prediction and reference share no pixel.

    Shape: pred (*S), ref (*S), valid (*S) -> scalar.
    """
    pred, ref = np.asarray(pred), np.asarray(ref)
    if pred.shape != ref.shape:
        raise ValueError(f"pred shape {pred.shape} != ref shape {ref.shape}; they must be the same size")
    v = _valid_mask(valid, pred.shape)
    p, r = (pred, ref) if v is None else (pred[v], ref[v])
    p, r = p.astype(bool).reshape(-1), r.astype(bool).reshape(-1)
    n_ref = int(np.count_nonzero(r))

    def dice(tp: int, n_pred: int) -> float:
        return 0.0 if tp == 0 else 2.0 * tp / (n_pred + n_ref)

    n_pred = int(np.count_nonzero(p))
    constant = n_pred in (0, p.size)  # min-max makes a constant map 0: empty above threshold 0
    above_zero = 0.0 if constant else dice(int(np.count_nonzero(p & r)), n_pred)
    at_zero = dice(n_ref, p.size)  # t = 0: every pixel
    return ((n_thresholds - 1) * above_zero + at_zero) / n_thresholds


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1), np.nan)


class PooledCounts:
    """Pixel counts pooled over a set, per foreground class: TP/FP/FN/TN of class-vs-rest.

    Counts are int64 and accumulated case by case (:meth:`update`); memory is ``O(classes)``.
    Fold or shard accumulators combine with :meth:`merge`, or through :meth:`to_json` /
    :meth:`from_json` when they were computed in different processes.

    Args:
        num_classes: Number of classes K including background 0 (foreground classes 1..K-1).
    """

    def __init__(self, num_classes: int) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int | np.integer) or num_classes < 2:
            raise ValueError(f"num_classes={num_classes!r} must be an integer >= 2 (background + 1 class)")
        self.num_classes = int(num_classes)
        self.tp = np.zeros(self.num_classes, dtype=np.int64)
        self.fp = np.zeros(self.num_classes, dtype=np.int64)
        self.fn = np.zeros(self.num_classes, dtype=np.int64)
        self.n = 0  # valid pixels seen (TN = n - TP - FP - FN)

    @property
    def tn(self) -> np.ndarray:
        """True negatives per class. Shape: (K,) int64."""
        return self.n - self.tp - self.fp - self.fn

    def update(self, pred: np.ndarray, ref: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Add one case (or a batch: any shape works, the pixels are only counted).

        Args:
            pred: Predicted class map, values 0..K-1 at valid pixels.
            ref: Reference class map, values 0..K-1 at valid pixels.
            valid: Pixels that count; ``None`` = all.

        Raises:
            ValueError: Shape mismatch, non-integer maps, or a valid label outside 0..K-1.

        Shape: pred, ref (*S) int; valid (*S) bool.
        """
        pred, ref = np.asarray(pred), np.asarray(ref)
        if pred.shape != ref.shape:
            raise ValueError(f"pred shape {pred.shape} != ref shape {ref.shape}; they must be the same size")
        for name, arr in (("pred", pred), ("ref", ref)):
            if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
                raise ValueError(f"{name} must be an integer class map, got dtype {arr.dtype}")
        v = _valid_mask(valid, pred.shape)
        p, r = (pred, ref) if v is None else (pred[v], ref[v])
        p, r = p.reshape(-1).astype(np.int64), r.reshape(-1).astype(np.int64)
        k = self.num_classes
        for name, arr in (("pred", p), ("ref", r)):
            if arr.size and (arr.min() < 0 or arr.max() >= k):
                raise ValueError(
                    f"{name} holds labels in [{arr.min()}, {arr.max()}] at valid pixels, "
                    f"expected 0..{k - 1}; mark ignore labels as invalid with valid=ref != ignore_label"
                )
        confusion = np.bincount(r * k + p, minlength=k * k).reshape(k, k)  # [ref, pred]
        diag = np.diag(confusion)
        self.tp += diag
        self.fp += confusion.sum(axis=0) - diag
        self.fn += confusion.sum(axis=1) - diag
        self.n += int(p.size)

    def merge(self, other: PooledCounts) -> None:
        """Add another accumulator's counts to this one (in place).

        Raises:
            ValueError: Different numbers of classes.
        """
        if other.num_classes != self.num_classes:
            raise ValueError(f"cannot merge counts of {other.num_classes} classes into {self.num_classes}")
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.n += other.n

    def metrics(self) -> dict[int, dict[str, float]]:
        """Every metric of :data:`POOLED_METRIC_NAMES` for each foreground class 1..K-1.

        ``pooled_accuracy`` is the accuracy of the binary class-vs-rest decision. A ratio whose
        denominator is 0 over the whole set is NaN (no pixel at all; a class never predicted nor
        present -> ``pooled_dice``/``pooled_iou``/``pooled_precision``/``pooled_sensitivity`` NaN).
        """
        tp, fp, fn, tn = self.tp, self.fp, self.fn, self.tn
        values = {
            "pooled_dice": _ratio(2 * tp, 2 * tp + fp + fn),
            "pooled_iou": _ratio(tp, tp + fp + fn),
            "pooled_sensitivity": _ratio(tp, tp + fn),
            "pooled_specificity": _ratio(tn, tn + fp),
            "pooled_precision": _ratio(tp, tp + fp),
            "pooled_accuracy": _ratio(tp + tn, np.full_like(tp, self.n)),
        }
        return {c: {m: float(values[m][c]) for m in POOLED_METRIC_NAMES} for c in range(1, self.num_classes)}

    def to_json(self) -> dict[str, Any]:
        """JSON-serialisable counts (per class, background included)."""
        return {
            "num_classes": self.num_classes,
            "n": self.n,
            "tp": self.tp.tolist(),
            "fp": self.fp.tolist(),
            "fn": self.fn.tolist(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PooledCounts:
        """Rebuild an accumulator written by :meth:`to_json`.

        Raises:
            ValueError: Missing keys, wrong lengths or negative / inconsistent counts.
        """
        keys = {"num_classes", "n", "tp", "fp", "fn"}
        if not isinstance(data, dict) or set(data) != keys:
            got = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"pooled counts JSON must have exactly the keys {sorted(keys)}, got {got}")
        out = cls(data["num_classes"])
        n = data["n"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"pooled counts JSON: n={n!r} must be a non-negative integer")
        out.n = n
        for name in ("tp", "fp", "fn"):
            vals = data[name]
            if (
                not isinstance(vals, list)
                or len(vals) != out.num_classes
                or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in vals)
            ):
                raise ValueError(
                    f"pooled counts JSON: {name!r} must be a list of {out.num_classes} non-negative integers"
                )
            setattr(out, name, np.asarray(vals, dtype=np.int64))
        if np.any(out.tn < 0):
            raise ValueError("pooled counts JSON: TP + FP + FN exceeds n for some class")
        return out
