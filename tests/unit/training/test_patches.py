"""Random patch sampling: shapes, foreground forcing (rare classes too), padding, slices, epochs."""

from __future__ import annotations

import numpy as np
import pytest

from components.training.patches import PatchDataset, class_locations, pad_to


def _volume_case(shape: tuple[int, int, int] = (12, 20, 24)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    image = rng.normal(size=(1, *shape)).astype(np.float32)
    mask = np.zeros(shape, np.uint8)
    mask[2:4, 3:5, 4:6] = 1  # a tiny common-ish class
    mask[9, 15, 20] = 2  # one voxel of a rare class
    return image, mask


def test_patches_have_the_patch_shape_and_dtypes() -> None:
    ds = PatchDataset([_volume_case()], (8, 8, 8), length=6, num_classes=3)
    assert len(ds) == 6
    x, y = ds[0]
    assert tuple(x.shape) == (1, 8, 8, 8) and tuple(y.shape) == (8, 8, 8)
    assert str(x.dtype) == "torch.float32" and str(y.dtype) == "torch.int64"


def test_forced_patches_contain_foreground_and_rare_classes_get_their_share() -> None:
    ds = PatchDataset([_volume_case()], (6, 6, 6), length=400, num_classes=3, foreground_fraction=1.0)
    seen = [set(np.unique(ds[i][1].numpy())) for i in range(len(ds))]
    assert all(s - {0} for s in seen), "every forced patch holds a foreground voxel"
    rare = sum(2 in s for s in seen) / len(seen)
    assert 0.35 < rare < 0.65, f"the one-voxel class should get about half the forced patches, got {rare}"


def test_without_forcing_a_tiny_class_is_mostly_missed() -> None:
    ds = PatchDataset([_volume_case()], (6, 6, 6), length=200, num_classes=3, foreground_fraction=0.0)
    rare = np.mean([2 in np.unique(ds[i][1].numpy()) for i in range(len(ds))])
    assert rare < 0.2


def test_patches_are_redrawn_each_epoch_and_reproducible() -> None:
    ds = PatchDataset([_volume_case()], (8, 8, 8), length=4, num_classes=3, seed=3)
    first = ds[1][0].clone()
    assert np.array_equal(first.numpy(), ds[1][0].numpy())
    ds.epoch = 1
    assert not np.array_equal(first.numpy(), ds[1][0].numpy())


def test_cases_smaller_than_the_patch_are_zero_padded_centred() -> None:
    image, mask = np.ones((2, 3, 5), np.float32), np.ones((3, 5), np.uint8)
    pi, pm, offset = pad_to(image, mask, (8, 8))
    assert pi.shape == (2, 8, 8) and pm.shape == (8, 8) and list(offset) == [2, 1]
    assert pm.sum() == 15 and pi[:, 2:5, 1:6].min() == 1
    ds = PatchDataset([(image, mask)], (8, 8), length=2, num_classes=2)
    assert tuple(ds[0][0].shape) == (2, 8, 8)


def test_2d_patches_on_volumes_are_single_slices_along_the_slice_axis() -> None:
    image, mask = _volume_case((12, 20, 24))
    ds = PatchDataset(
        [(image, mask)], (10, 10), length=50, num_classes=3, foreground_fraction=1.0, slice_axis=0
    )
    x, y = ds[0]
    assert tuple(x.shape) == (1, 10, 10) and tuple(y.shape) == (10, 10)
    assert all(set(np.unique(ds[i][1].numpy())) - {0} for i in range(len(ds)))
    ds2 = PatchDataset([(image, mask)], (10, 10), length=1, num_classes=3, slice_axis=2)
    assert tuple(ds2[0][0].shape) == (1, 10, 10)


def test_intensity_maps_apply_after_augmentation() -> None:
    image, mask = np.full((1, 8, 8), 0.5, np.float32), np.zeros((8, 8), np.uint8)

    def double(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return x * 2, y

    ds = PatchDataset(
        [(image, mask)], (4, 4), length=1, num_classes=2, augment=double, intensity_maps=[(10.0, -3.0)]
    )
    assert np.allclose(ds[0][0].numpy(), 0.5 * 2 * 10 - 3)


def test_class_locations_sample_at_most_the_cap() -> None:
    mask = np.ones((200, 200), np.uint8)
    locs = class_locations(mask, 2, seed=0)
    assert set(locs) == {1} and len(locs[1]) == 10_000


def test_a_patch_of_the_wrong_rank_is_refused() -> None:
    with pytest.raises(ValueError, match="patch_size"):
        PatchDataset([_volume_case()], (8, 8, 8, 8), length=1, num_classes=3)
