"""torch Dataset over the arrays cached by the preprocess stage."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from components.preprocessing.pipeline import PreprocessSpec, to_network_input

Augment = Callable[..., dict[str, np.ndarray]]


def case_array_path(prepared_dir: Path, case_id: str) -> Path:
    """Where the preprocess stage caches one case."""
    return Path(prepared_dir) / "arrays" / f"{case_id}.npz"


def save_case(prepared_dir: Path, case_id: str, image: np.ndarray, mask: np.ndarray) -> None:
    """Cache one preprocessed case (image float32 (h, w, C) in [0, 1], mask uint8 (h, w))."""
    path = case_array_path(prepared_dir, case_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, image=image.astype(np.float32), mask=mask.astype(np.uint8))


def load_case(prepared_dir: Path, case_id: str) -> tuple[np.ndarray, np.ndarray]:
    """Read one cached case: (image (h, w, C) float32, mask (h, w) uint8)."""
    with np.load(case_array_path(prepared_dir, case_id)) as z:
        return z["image"], z["mask"]


class SegmentationDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Cached cases -> (augmented, standardised) tensors.

    Args:
        prepared_dir: The preprocess stage's output folder.
        case_ids: Cases of this split.
        spec: Preprocessing spec (for the post-augmentation z-score).
        augment: Optional albumentations pipeline (image float32 [0, 1], mask uint8).

    Shape:
        item: image (C, h, w) float32, mask (h, w) int64
    """

    def __init__(
        self,
        prepared_dir: Path,
        case_ids: Sequence[str],
        spec: PreprocessSpec,
        augment: Augment | None = None,
    ) -> None:
        self.case_ids = list(case_ids)
        self.spec = spec
        self.augment = augment
        self._cache = [load_case(prepared_dir, c) for c in self.case_ids]  # small 2D sets fit in memory

    def __len__(self) -> int:
        return len(self.case_ids)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self._cache[idx]
        if self.augment is not None:
            out = self.augment(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        x = to_network_input(np.clip(image, 0.0, 1.0), self.spec)
        return torch.from_numpy(x), torch.from_numpy(np.asarray(mask, dtype=np.int64))

    def masks(self) -> list[np.ndarray]:
        """Un-augmented masks, in case order."""
        return [m for _, m in self._cache]


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
