"""Tests for resize / pad / letterbox and its inverse."""

from __future__ import annotations

import numpy as np
import pytest

from components.preprocessing.spatial import MODES, SpatialParams, fit_to_size, restore


def _smooth_probs(shape: tuple[int, int], n_classes: int = 3) -> np.ndarray:
    """Smooth softmax probabilities ``(C, H, W)``."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]] / np.array(shape).reshape(2, 1, 1)
    logits = np.stack([np.sin(2 * (k + 1) * yy + k) + np.cos(3 * xx - k) for k in range(n_classes)])
    e = np.exp(2 * logits)
    return (e / e.sum(0)).astype(np.float32)


def _labels(shape: tuple[int, int]) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return (((yy // 17) + (xx // 23)) % 4 * 2).astype(np.uint8)  # labels {0, 2, 4, 6}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", [(153, 507), (507, 153), (61, 45), (128, 128)])
def test_round_trip_shapes_and_labels(mode: str, shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    image = rng.random((*shape, 3), dtype=np.float32)
    mask = _labels(shape)
    img, m, params = fit_to_size(image, mask, (128, 128), mode)
    assert img.shape == (128, 128, 3) and img.dtype == np.float32
    assert m is not None and m.shape == (128, 128) and m.dtype == np.uint8
    assert set(np.unique(m)) <= set(np.unique(mask)) | {0}
    assert params.original_shape == shape
    probs = np.stack([np.ones((128, 128)), np.zeros((128, 128))]).astype(np.float32)
    back = restore(probs, params)
    assert back.shape == (2, *shape) and back.dtype == np.float32
    np.testing.assert_allclose(back.sum(0), 1.0, atol=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_restore_inverts_fit_for_smooth_probs(mode: str) -> None:
    probs = _smooth_probs((153, 207))
    hwc = np.moveaxis(probs, 0, -1)
    net, _, params = fit_to_size(hwc, None, (160, 160), mode)
    back = restore(np.moveaxis(net, -1, 0), params)
    assert back.shape == probs.shape
    if mode == "pad":  # 207 > 160: the cropped-away columns come back as background
        left = -params.offset[1]
        inner = (slice(None), slice(None), slice(left, left + 160))
        np.testing.assert_allclose(back[inner], probs[inner], atol=1e-6)
        assert np.all(back[0, :, :left] == 1) and np.all(back[1:, :, :left] == 0)
    else:
        assert np.abs(back - probs).max() < 0.05
        assert np.abs(back - probs).mean() < 0.01


def test_pad_centres_and_fills_zero() -> None:
    image = np.ones((10, 6), np.float32)
    mask = np.full((10, 6), 3, np.uint8)
    img, m, params = fit_to_size(image, mask, (14, 12), "pad")
    assert params.offset == (2, 3) and params.resized_shape == (10, 6)
    assert img.shape == (14, 12) and img.sum() == 60 and img[2:12, 3:9].min() == 1
    assert m is not None and (m == 3).sum() == 60
    probs = np.zeros((2, 14, 12), np.float32)
    probs[1, 2:12, 3:9] = 1
    np.testing.assert_array_equal(restore(probs, params)[1], np.ones((10, 6)))


def test_letterbox_keeps_aspect_ratio() -> None:
    _, m, params = fit_to_size(
        np.zeros((50, 200), np.float32), np.ones((50, 200), np.uint8), (64, 64), "letterbox"
    )
    assert params.resized_shape == (16, 64) and params.offset == (24, 0)
    assert m is not None and m[24:40].all() and not m[:24].any() and not m[40:].any()


def test_nearest_mask_keeps_dtype_and_exact_labels_when_scaling_by_integers() -> None:
    mask = np.arange(16, dtype=np.int64).reshape(4, 4)
    _, up, _ = fit_to_size(np.zeros((4, 4), np.float32), mask, (8, 8), "resize")
    assert up is not None and up.dtype == np.int64
    np.testing.assert_array_equal(up, np.repeat(np.repeat(mask, 2, 0), 2, 1))


def test_grayscale_channel_axis_and_params_json() -> None:
    img, _, params = fit_to_size(np.zeros((30, 40, 1), np.float32), None, (16, 16), "letterbox")
    assert img.shape == (16, 16, 1)
    assert SpatialParams.from_json(params.to_json()) == params


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"preprocess\.spatial_mode"):
        fit_to_size(np.zeros((8, 8), np.float32), None, (4, 4), "crop")
    with pytest.raises(ValueError, match="mask shape"):
        fit_to_size(np.zeros((8, 8), np.float32), np.zeros((8, 7), np.uint8), (4, 4))
    _, _, params = fit_to_size(np.zeros((8, 8), np.float32), None, (4, 4))
    with pytest.raises(ValueError, match="probs must have shape"):
        restore(np.zeros((2, 5, 4), np.float32), params)
