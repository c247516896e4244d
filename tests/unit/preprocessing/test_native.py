"""Native-resolution preprocessing: normalisation, crop + resample, and undoing it exactly."""

from __future__ import annotations

import numpy as np
import pytest

from components.params.config import parse_params
from components.preprocessing.native import (
    NativeSpec,
    intensity_map,
    native_spec_from_params,
    normalise,
    preprocess_case,
    resolve_target_spacing,
    restore_probabilities,
    with_training_window,
)

FINGERPRINT = {
    "ndim": 3,
    "channels": 1,
    "spacing": {"median": [3.0, 0.8, 0.8], "p10": [2.0, 0.7, 0.7], "min": [1, 1, 1], "max": [5, 1, 1]},
    "shape": {"median": [20, 256, 256]},
    "coarsest_axis": 0,
    "intensity": [{"channel": 0, "p0_5": -100.0, "p50": 40.0, "p99_5": 300.0, "mean": 50.0, "sd": 80.0}],
}


def _params(**preprocess: object) -> object:
    return parse_params(
        {
            "data": {"classes": {"background": 0, "a": 1, "b": 2}},
            "preprocess": {"spatial_mode": "patch", **preprocess},
            "train": {
                "model": {"name": "dynunet"},
                "loss": [{"name": "dice"}],
                "optimizer": {"name": "adamw"},
                "patch_size": [8, 16, 16],
            },
        }
    )


def test_median_target_spacing_uses_the_10th_percentile_on_a_coarse_axis() -> None:
    assert resolve_target_spacing("median", FINGERPRINT) == (2.0, 0.8, 0.8)
    iso = {"spacing": {"median": [1.0, 1.0, 1.2], "p10": [1, 1, 1]}, "shape": {"median": [40, 50, 40]}}
    assert resolve_target_spacing("median", iso) == (1.0, 1.0, 1.2)
    # thick slices but many of them (the coarse axis holds as many voxels as the others): the median
    many = {**FINGERPRINT, "shape": {"median": [300, 256, 256]}}
    assert resolve_target_spacing("median", many) == (3.0, 0.8, 0.8)
    # the 10th percentile never goes finer than the in-plane spacing
    fine = {**FINGERPRINT, "spacing": {"median": [3.0, 0.8, 0.8], "p10": [0.5, 0.7, 0.7]}}
    assert resolve_target_spacing("median", fine) == (0.8, 0.8, 0.8)
    assert resolve_target_spacing([1, 2, 3], FINGERPRINT) == (1.0, 2.0, 3.0)
    assert resolve_target_spacing(None, FINGERPRINT) is None


def test_spec_from_params_resolves_ct_statistics_and_the_slice_axis() -> None:
    spec = native_spec_from_params(_params(target_spacing="median", intensity={"method": "ct"}), FINGERPRINT)
    assert spec.target_spacing == (2.0, 0.8, 0.8) and spec.intensity_stats is not None
    assert spec.intensity_stats[0]["p99_5"] == 300.0
    assert NativeSpec.from_dict(spec.to_dict()) == spec
    assert spec.patch_size is None and spec.slice_axis is None  # the window is training's


def test_the_training_window_adds_the_patch_and_the_slice_axis() -> None:
    spec = native_spec_from_params(_params(), FINGERPRINT)
    windowed = with_training_window(spec, _params(), FINGERPRINT)
    assert (windowed.patch_size, windowed.slice_axis) == ((8, 16, 16), None)
    params_2d = _params()
    sliced = with_training_window(
        spec,
        params_2d.model_copy(update={"train": params_2d.train.model_copy(update={"patch_size": [16, 16]})}),
        FINGERPRINT,
    )
    assert (sliced.patch_size, sliced.slice_axis) == ((16, 16), 0)  # the coarsest axis
    flat = NativeSpec(ndim=2, channels=1, intensity_method="zscore")
    with pytest.raises(ValueError, match="2D images"):
        with_training_window(flat, _params(), {"ndim": 2})


def test_ct_normalisation_clips_to_the_foreground_percentiles_then_z_scores() -> None:
    spec = native_spec_from_params(_params(intensity={"method": "ct"}), FINGERPRINT)
    out = normalise(np.array([[[[-1000.0, 50.0, 2000.0]]]]), spec)
    np.testing.assert_allclose(out.ravel(), [(-100 - 50) / 80, 0.0, (300 - 50) / 80], rtol=1e-6)


def test_zscore_is_per_case_for_volumes() -> None:
    spec = NativeSpec(ndim=3, channels=2, intensity_method="zscore")
    rng = np.random.default_rng(0)
    image = np.stack([rng.normal(5, 2, (4, 6, 6)), rng.normal(-3, 9, (4, 6, 6))])
    out = normalise(image, spec)
    np.testing.assert_allclose(out.reshape(2, -1).mean(1), 0, atol=1e-5)
    np.testing.assert_allclose(out.reshape(2, -1).std(1), 1, atol=1e-4)


def test_2d_zscore_is_a_whole_image_map_applied_after_augmentation() -> None:
    spec = NativeSpec(ndim=2, channels=1, intensity_method="zscore")
    image = np.random.default_rng(1).integers(0, 255, (1, 20, 30)).astype(np.uint8)
    unit = normalise(image, spec)
    assert unit.min() >= 0.0 and unit.max() <= 1.0  # photometric augmentations expect [0, 1]
    scale, shift = intensity_map(unit, spec)
    z = unit * scale + shift
    assert abs(float(z.mean())) < 1e-5 and abs(float(z.std()) - 1) < 1e-4


def test_preprocess_and_restore_return_to_the_original_grid() -> None:
    spec = NativeSpec(
        ndim=3, channels=1, intensity_method="zscore", target_spacing=(2.0, 1.0, 1.0), crop_nonzero=True
    )
    image = np.zeros((1, 20, 30, 28), np.float32)
    image[0, 4:16, 5:25, 3:20] = np.random.default_rng(2).normal(10, 1, (12, 20, 17))
    mask = np.zeros((20, 30, 28), np.uint8)
    mask[4:16, 6:24, 4:19] = 1
    mask[8:12, 8:20, 6:16] = 2  # boxes on even voxels: the 2x coarser grid can hold them
    x, m, rec = preprocess_case(image, (1.0, 0.5, 0.5), spec, mask, num_classes=3)
    assert rec.bbox == ((4, 16), (5, 25), (3, 20))
    assert x.shape == (1, 6, 10, 8) and m is not None and m.shape == (6, 10, 8)
    assert set(np.unique(m)) == {0, 1, 2}
    onehot = np.stack([(m == c).astype(np.float32) for c in range(3)])
    back = restore_probabilities(onehot, rec)
    assert back.shape == (3, 20, 30, 28)
    np.testing.assert_allclose(back.sum(0), 1, atol=1e-5)
    labels = back.argmax(0)
    assert (labels[image[0] == 0] == 0).all()  # outside the crop: background
    for c in (1, 2):
        dice = 2 * ((labels == c) & (mask == c)).sum() / ((labels == c).sum() + (mask == c).sum())
        assert dice > 0.8, (c, dice)


def test_crop_without_resampling_restores_labels_exactly() -> None:
    spec = NativeSpec(
        ndim=3, channels=1, intensity_method="minmax", target_spacing=(1.0, 0.5, 0.5), crop_nonzero=True
    )
    image = np.zeros((1, 10, 12, 14), np.float32)
    image[0, 2:8, 3:9, 4:12] = 5.0
    mask = np.zeros((10, 12, 14), np.uint8)
    mask[3:6, 4:8, 5:10] = 1
    _, m, rec = preprocess_case(image, (1.0, 0.5, 0.5), spec, mask, num_classes=2)
    assert m is not None and m.shape == (6, 6, 8)
    onehot = np.stack([(m == c).astype(np.float32) for c in range(2)])
    np.testing.assert_array_equal(restore_probabilities(onehot, rec).argmax(0), mask)


def test_2d_images_keep_their_pixels() -> None:
    spec = NativeSpec(ndim=2, channels=3, intensity_method="minmax")
    image = np.random.default_rng(3).integers(0, 255, (3, 17, 23)).astype(np.uint8)
    x, _, rec = preprocess_case(image, (1.0, 1.0), spec)
    assert x.shape == (3, 17, 23) and rec.resampled_shape == (17, 23)
    probs = np.random.default_rng(4).random((2, 17, 23)).astype(np.float32)
    np.testing.assert_array_equal(restore_probabilities(probs, rec), probs)


def test_patch_mode_without_a_patch_size_is_refused() -> None:
    with pytest.raises(ValueError, match=r"train\.patch_size"):
        parse_params(
            {
                "data": {"classes": {"background": 0, "a": 1}},
                "preprocess": {"spatial_mode": "patch"},
                "train": {
                    "model": {"name": "dynunet"},
                    "loss": [{"name": "dice"}],
                    "optimizer": {"name": "adamw"},
                },
            }
        )
