"""Class balance of a set of masks: pixel frequencies (loss weights) and per-case sampling weights."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def class_frequencies(masks: Sequence[np.ndarray], num_classes: int) -> list[float]:
    """Pixel fraction of each class over ``masks`` (for inverse-frequency loss weights)."""
    counts = np.zeros(num_classes, dtype=np.float64)
    for m in masks:
        counts += np.bincount(m.ravel(), minlength=num_classes)[:num_classes]
    return (counts / max(counts.sum(), 1.0)).tolist()


def rare_class_weights(masks: Sequence[np.ndarray], num_classes: int) -> list[float]:
    """Sampling weight per case for class-aware sampling.

    A case's weight is the largest inverse frequency (over cases) of the classes it contains, so
    cases holding a class that few cases hold are drawn more often.
    """
    present = [np.unique(m) for m in masks]
    n_with = np.zeros(num_classes)
    for p in present:
        n_with[p[p < num_classes]] += 1
    inv = np.where(n_with > 0, len(masks) / np.maximum(n_with, 1), 0.0)
    return [float(inv[p[p < num_classes]].max()) if len(p) else 1.0 for p in present]
