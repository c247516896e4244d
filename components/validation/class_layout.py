"""How the classes lie relative to each other: per pair of foreground classes and per axis, in
how many cases one class's centre comes before the other's.

The planner reads it to decide which axes augmentation may mirror
(:mod:`components.planning.mirroring`): mirroring an axis along which two classes keep one order in
every case (the anterior and posterior parts of an organ, say) shows the network arrangements no
case has, and asks it to tell the classes apart by shape alone. Written into the fingerprint as::

    "class_layout": {"pairs": [["liver", "tumour"], ...], "cases": [n, ...],
                     "before": [[n_axis0, n_axis1, ...], ...], "after": [[...], ...]}

``cases[i]`` counts the cases holding both classes of ``pairs[i]``; ``before[i][a]`` those in which
the first class's centre lies more than half a voxel before the second's along array axis ``a``,
``after[i][a]`` more than half a voxel after it (the rest are level).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

LEVEL_VOXELS = 0.5  # centres closer than this along an axis are level


class ClassLayout:
    """Accumulates the pairwise order of class centres over the cases of a dataset."""

    def __init__(self, class_names: Sequence[str], ndim: int) -> None:
        self.names = list(class_names)
        self.ndim = ndim
        k = len(self.names)
        self.pairs = [(a, b) for a in range(1, k) for b in range(a + 1, k)]
        self.cases = np.zeros(len(self.pairs), np.int64)
        self.before = np.zeros((len(self.pairs), ndim), np.int64)
        self.after = np.zeros((len(self.pairs), ndim), np.int64)

    def add(self, mask: np.ndarray) -> None:
        """Count one case's mask (values are class indices; 0 is background)."""
        if not self.pairs:
            return
        k = len(self.names)
        present = np.bincount(mask.ravel(), minlength=k)[:k] > 0
        labels = [v for v in range(1, k) if present[v]]
        if len(labels) < 2:
            return
        centres = np.full((k, self.ndim), np.nan)
        centres[labels] = _centres(mask, labels)
        a, b = (np.array(side) for side in zip(*self.pairs, strict=True))
        both = present[a] & present[b]
        d = centres[a] - centres[b]
        self.cases += both
        self.before += both[:, None] & (d < -LEVEL_VOXELS)
        self.after += both[:, None] & (d > LEVEL_VOXELS)

    def summary(self) -> dict[str, Any]:
        """The JSON-ready ``class_layout`` entry of the fingerprint."""
        return {
            "pairs": [[self.names[a], self.names[b]] for a, b in self.pairs],
            "cases": [int(n) for n in self.cases],
            "before": self.before.astype(int).tolist(),
            "after": self.after.astype(int).tolist(),
        }


def _centres(mask: np.ndarray, labels: list[int]) -> np.ndarray:
    """Centre of mass (array index coordinates) of each label in ``mask``, ``(len(labels), ndim)``."""
    return np.asarray(ndimage.center_of_mass(mask != 0, mask, labels), np.float64)
