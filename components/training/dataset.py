"""torch Dataset over the cases cached by the preprocess stage (augmented, standardised tensors)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from components.data.case_store import load_case
from components.preprocessing.pipeline import PreprocessSpec, to_network_input
from components.training.augment_seed import item_seed, reseed

Augment = Callable[..., dict[str, np.ndarray]]


class SegmentationDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Cached cases -> (augmented, standardised) tensors.

    Args:
        prepared_dir: The preprocess stage's output folder.
        case_ids: Cases of this split.
        spec: Preprocessing spec (for the post-augmentation z-score).
        augment: Optional albumentations pipeline (image float32 [0, 1], mask uint8).
        augment_seed: Item ``i`` of epoch :attr:`epoch` is augmented from the seed of
            (augment_seed, epoch, i), whichever process loads it.

    Shape:
        item: image (C, h, w) float32, mask (h, w) int64
    """

    def __init__(
        self,
        prepared_dir: Path,
        case_ids: Sequence[str],
        spec: PreprocessSpec,
        augment: Augment | None = None,
        augment_seed: int = 0,
    ) -> None:
        self.case_ids = list(case_ids)
        self.spec = spec
        self.augment = augment
        self.augment_seed = int(augment_seed)
        self.epoch = 0  # set by the training loop before each epoch
        self._cache = [load_case(prepared_dir, c) for c in self.case_ids]  # small 2D sets fit in memory

    def __len__(self) -> int:
        return len(self.case_ids)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self._cache[idx]
        if self.augment is not None:
            reseed(self.augment, item_seed(self.augment_seed, self.epoch, idx))
            out = self.augment(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        x = to_network_input(np.clip(image, 0.0, 1.0), self.spec)
        return torch.from_numpy(x), torch.from_numpy(np.asarray(mask, dtype=np.int64))

    def masks(self) -> list[np.ndarray]:
        """Un-augmented masks, in case order."""
        return [m for _, m in self._cache]
