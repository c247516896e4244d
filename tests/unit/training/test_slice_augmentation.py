"""2D augmentation on slices of volumes: the prepared intensities are z-scores (or CT units), not
[0, 1]; nnU-Net's 2D set (gamma included) keeps them finite and in their own range, and a flip
alone changes nothing but the orientation."""

from __future__ import annotations

import numpy as np

from components.planning.recipe import augmentation_2d
from components.preprocessing.native import NativeSpec
from components.training.native_data import patch_augmentation

VOLUME = NativeSpec(ndim=3, channels=2, intensity_method="zscore", slice_axis=0, patch_size=(16, 16))
IMAGES = NativeSpec(ndim=2, channels=2, intensity_method="zscore", patch_size=(16, 16))


def _slice() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    image = np.stack([rng.normal(0, 1.5, (16, 16)), rng.normal(40, 10, (16, 16))]).astype(np.float32)
    return image, (rng.random((16, 16)) > 0.5).astype(np.uint8)


def test_nnunets_2d_set_keeps_z_scores_finite_and_in_their_range() -> None:
    always = [{**t, "kwargs": {**t["kwargs"], "p": 1.0}} for t in augmentation_2d()]  # every transform
    augment, _ = patch_augmentation(always, 0, VOLUME, 2)
    assert augment is not None
    image, mask = _slice()
    for _ in range(20):
        out, out_mask = augment(image, mask)
        assert out.shape == image.shape and out_mask.shape == mask.shape and np.isfinite(out).all()
        for c in range(2):  # not clipped to [0, 1]: each channel within its own extent
            assert image[c].min() - 1e-4 <= out[c].min() and out[c].max() <= image[c].max() + 1e-4
        assert out[1].mean() > 10  # the second channel keeps its own level


def test_a_flip_of_a_slice_is_exact_and_2d_images_stay_in_unit_range() -> None:
    flip = [{"name": "HorizontalFlip", "kwargs": {"p": 1.0}}]
    image, mask = _slice()
    out, out_mask = patch_augmentation(flip, 0, VOLUME, 2)[0](image, mask)  # type: ignore[misc]
    np.testing.assert_allclose(out, image[:, :, ::-1], atol=1e-5)
    np.testing.assert_array_equal(out_mask, mask[:, ::-1])
    unit = np.clip(image / 50, 0, 1)
    out, _ = patch_augmentation(flip, 0, IMAGES, 2)[0](unit, mask)  # type: ignore[misc]
    np.testing.assert_array_equal(out, unit[:, :, ::-1])
