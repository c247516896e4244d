"""Streaming pixel-level ROC curves and AUC per class (memory independent of the pixel count)."""

from __future__ import annotations

import numpy as np


class StreamingROC:
    """Pixel-level one-vs-rest ROC per class without keeping pixels: fixed-bin score histograms.

    Scores are binned into ``bins`` equal bins on [0, 1]; the ROC is evaluated at the bin edges, so
    it is exact for scores quantised to the bins and otherwise within one bin width. Memory is
    ``2 * num_classes * bins`` counters whatever the number of pixels.

    Args:
        num_classes: Number of classes C (channel count of the probabilities).
        bins: Number of score bins.
    """

    def __init__(self, num_classes: int, bins: int = 1000) -> None:
        if num_classes < 1 or bins < 1:
            raise ValueError(f"num_classes={num_classes} and bins={bins} must be >= 1")
        self.num_classes, self.bins = int(num_classes), int(bins)
        self.pos = np.zeros((self.num_classes, self.bins), dtype=np.int64)
        self.neg = np.zeros((self.num_classes, self.bins), dtype=np.int64)

    def update(self, probs: np.ndarray, labels: np.ndarray) -> None:
        """Add one image or batch.

        Args:
            probs: Class probabilities in [0, 1]. Shape: (C, *spatial) or (N, C, *spatial).
            labels: Integer class map; values outside 0..C-1 (e.g. an ignore label) are skipped.
                Shape: (*spatial) or (N, *spatial).
        """
        probs, labels = np.asarray(probs), np.asarray(labels)
        if probs.shape[1:] == labels.shape and probs.shape[0] == self.num_classes:  # one image
            probs, labels = probs[None], labels[None]
        if (
            probs.shape[1] != self.num_classes
            or probs.shape[2:] != labels.shape[1:]
            or probs.shape[0] != labels.shape[0]
        ):
            raise ValueError(
                f"probs shape {probs.shape} does not match labels {labels.shape} "
                f"with {self.num_classes} classes; "
                "expected (N, C, *spatial) and (N, *spatial)"
            )
        valid = (labels >= 0) & (labels < self.num_classes)
        lab = labels[valid]
        for c in range(self.num_classes):
            b = np.clip((probs[:, c][valid] * self.bins).astype(np.int64), 0, self.bins - 1)
            counts = np.bincount(b + self.bins * (lab == c), minlength=2 * self.bins)
            self.neg[c] += counts[: self.bins]
            self.pos[c] += counts[self.bins :]

    def curves(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """``{class: (fpr, tpr)}`` from threshold above 1 (0, 0) down to 0 (1, 1); NaN if a side is empty."""
        out = {}
        for c in range(self.num_classes):
            tp = np.concatenate([[0], np.cumsum(self.pos[c][::-1])])
            fp = np.concatenate([[0], np.cumsum(self.neg[c][::-1])])
            with np.errstate(invalid="ignore", divide="ignore"):
                out[c] = (fp / fp[-1], tp / tp[-1])
        return out

    def auc(self) -> dict[int, float]:
        """Area under each class's ROC curve (trapezoid; ties within a bin count one half)."""
        return {c: float(np.trapezoid(tpr, fpr)) for c, (fpr, tpr) in self.curves().items()}
