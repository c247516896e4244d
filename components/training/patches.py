"""Random training patches from native-resolution cases (``preprocess.spatial_mode: patch``).

An epoch is ``iterations_per_epoch`` optimiser steps of ``batch_size`` patches, each drawn
afresh: a random case, then a random location, or, for ``foreground_fraction`` of the patches,
a location centred on a voxel of a foreground class chosen uniformly among the classes the case
holds (rare classes get as many forced patches as common ones, nnU-Net's oversampling).
Cases smaller than the patch are zero-padded. With a 2D patch on volumes (2D-on-3D), each
patch is one slice along the spec's slice axis.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from components.training.augment_seed import item_seed, reseed

PatchAugment = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
MAX_LOCATIONS = 10_000  # foreground voxels remembered per class and case (a random sample)


def class_locations(mask: np.ndarray, num_classes: int, seed: int) -> dict[int, np.ndarray]:
    """A random sample of at most MAX_LOCATIONS voxel indices ``(n, ndim)`` per foreground class present."""
    rng = np.random.default_rng(seed)
    out: dict[int, np.ndarray] = {}
    for c in range(1, num_classes):
        idx = np.argwhere(mask == c)
        if len(idx):
            out[c] = (
                idx[rng.choice(len(idx), MAX_LOCATIONS, replace=False)] if len(idx) > MAX_LOCATIONS else idx
            )
    return out


def pad_to(
    image: np.ndarray, mask: np.ndarray, shape: Sequence[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Zero-pad (centred) ``image (C, *S)`` and ``mask (*S)`` to at least ``shape``; return the offset too."""
    before = [max(0, (p - s)) // 2 for s, p in zip(mask.shape, shape, strict=True)]
    after = [max(0, p - s - b) for s, p, b in zip(mask.shape, shape, before, strict=True)]
    if not any(before) and not any(after):
        return image, mask, np.zeros(mask.ndim, dtype=np.int64)
    widths = list(zip(before, after, strict=True))
    return (
        np.pad(image, [(0, 0), *widths]),
        np.pad(mask, widths),
        np.asarray(before, dtype=np.int64),
    )


class PatchDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """``iterations * batch_size`` random patches per epoch (set :attr:`epoch` to re-draw).

    Args:
        cases: ``(image (C, *S) float32, mask (*S) uint8)`` per case, already on the prepared grid.
        patch_size: Patch shape: as many ints as the cases have axes, or 2 on volumes (slices).
        length: Patches per epoch (iterations x batch size).
        num_classes: Classes including background.
        foreground_fraction: Share of patches centred on a foreground voxel.
        seed: Base seed (patch ``i`` of epoch ``e`` is a function of (seed, e, i)).
        augment: Optional ``(image, mask) -> (image, mask)`` on each patch.
        slice_axis: Volumes with a 2D patch: the axis slices are taken along.
        intensity_maps: Per case ``(scale, shift)`` applied after augmentation (default identity).

    Shape:
        item: image (C, *patch) float32, mask (*patch) int64
    """

    def __init__(
        self,
        cases: Sequence[tuple[np.ndarray, np.ndarray]],
        patch_size: Sequence[int],
        length: int,
        num_classes: int,
        foreground_fraction: float = 1 / 3,
        seed: int = 0,
        augment: PatchAugment | None = None,
        slice_axis: int | None = None,
        intensity_maps: Sequence[tuple[float, float]] | None = None,
        augment_seed: int = 0,
    ) -> None:
        if not cases:
            raise ValueError("PatchDataset needs at least one case")
        self.slice_axis = slice_axis
        if slice_axis is not None:  # slices first: a 2D patch becomes (1, h, w) on the volume
            cases = [(np.moveaxis(im, 1 + slice_axis, 1), np.moveaxis(m, slice_axis, 0)) for im, m in cases]
            patch_size = (1, *patch_size)
        self.patch = tuple(int(p) for p in patch_size)
        if len(self.patch) != cases[0][1].ndim:
            raise ValueError(
                f"train.patch_size {list(patch_size)} does not fit cases of {cases[0][1].ndim} axes"
            )
        self.cases = [pad_to(im, m, self.patch)[:2] for im, m in cases]
        self.locations = [class_locations(m, num_classes, seed + i) for i, (_, m) in enumerate(self.cases)]
        self.length, self.fg, self.seed, self.augment = int(length), float(foreground_fraction), seed, augment
        self.maps = list(intensity_maps) if intensity_maps is not None else [(1.0, 0.0)] * len(cases)
        self.epoch = 0
        self.augment_seed = int(augment_seed)

    def __len__(self) -> int:
        return self.length

    def _start(self, rng: np.random.Generator, case: int) -> np.ndarray:
        shape = np.asarray(self.cases[case][1].shape)
        patch = np.asarray(self.patch)
        locs = self.locations[case]
        if locs and rng.random() < self.fg:
            cls = list(locs)[int(rng.integers(len(locs)))]
            centre = locs[cls][int(rng.integers(len(locs[cls])))]
            start = centre - patch // 2
        else:
            start = np.array([rng.integers(0, s - p + 1) for s, p in zip(shape, patch, strict=True)])
        return np.clip(start, 0, shape - patch)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, idx])
        case = int(rng.integers(len(self.cases)))
        image, mask = self.cases[case]
        start = self._start(rng, case)
        box = tuple(slice(int(a), int(a) + p) for a, p in zip(start, self.patch, strict=True))
        x, y = image[(slice(None), *box)], mask[box]
        if self.slice_axis is not None:
            x, y = x[:, 0], y[0]
        if self.augment is not None:
            reseed(self.augment, item_seed(self.augment_seed, self.epoch, idx))
            x, y = self.augment(np.ascontiguousarray(x), np.ascontiguousarray(y))
        scale, shift = self.maps[case]
        return (
            torch.from_numpy(np.ascontiguousarray(x * scale + shift, dtype=np.float32)),
            torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64)),
        )

    def masks(self) -> list[np.ndarray]:
        """The cases' (padded) label maps, for class frequencies."""
        return [m for _, m in self.cases]
