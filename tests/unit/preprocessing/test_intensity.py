"""Tests for intensity normalisation, z-score and CLAHE."""

from __future__ import annotations

import numpy as np
import pytest

from components.preprocessing.intensity import METHODS, apply_clahe, standardize, to_unit_range


def _ramp(
    dtype: type = np.float32, shape: tuple[int, int] = (20, 30), lo: float = 0, hi: float = 1
) -> np.ndarray:
    return np.linspace(lo, hi, shape[0] * shape[1]).reshape(shape).astype(dtype)


@pytest.mark.parametrize("method", ["minmax", "dtype", "zscore"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_range_shape_dtype(method: str, dtype: type) -> None:
    img = _ramp(dtype, hi=np.iinfo(dtype).max // 3)
    out = to_unit_range(img, method)
    assert out.shape == (20, 30, 1) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    if method == "minmax":
        assert out.min() == 0 and out.max() == 1


def test_dtype_divides_by_dtype_max() -> None:
    np.testing.assert_allclose(to_unit_range(np.array([[0, 255]], np.uint8), "dtype")[..., 0], [[0, 1]])
    u16 = np.array([[0, 65535, 6553]], np.uint16)
    np.testing.assert_allclose(to_unit_range(u16, "dtype")[..., 0], [[0, 1, 6553 / 65535]], atol=1e-7)
    with pytest.raises(ValueError, match="minmax"):
        to_unit_range(np.array([[-5.0, 300.0]], np.float32), "dtype")


def test_minmax_percentiles_clip_outliers() -> None:
    img = _ramp(shape=(100, 100))
    img[0, 0] = 1000.0  # one hot pixel
    plain = to_unit_range(img, "minmax")
    robust = to_unit_range(img, "minmax", lower=1, upper=99)
    assert np.median(plain) < 0.01  # squashed by the outlier
    assert 0.45 < np.median(robust) < 0.55
    zs = to_unit_range(img, "zscore")
    assert 0.45 < np.median(zs) < 0.55 and zs.max() == 1


def test_ct_window_clips_raw_hu() -> None:
    hu = np.array([[-1000, -160, 40, 240, 3000]], np.int16)
    out = to_unit_range(hu, "ct_window", center=40, width=400)[..., 0]
    np.testing.assert_allclose(out, [[0, 0, 0.5, 1, 1]], atol=1e-6)


def test_rgb_keeps_channels_and_colour_balance() -> None:
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    rgb[0, 0] = 0
    out = to_unit_range(rgb, "minmax")
    assert out.shape == (8, 8, 3)
    np.testing.assert_allclose(out[1, 1], [1.0, 0.5, 0.25], atol=1e-6)  # normalised jointly


def test_constant_image_is_zero() -> None:
    for method in ("minmax", "zscore"):
        assert not to_unit_range(np.full((4, 4), 7, np.uint16), method).any()
    assert not standardize(np.full((4, 4, 1), 0.3, np.float32), "zscore").any()


def test_standardize() -> None:
    img = _ramp(shape=(16, 16))[..., None]
    z = standardize(img, "zscore")
    assert z.dtype == np.float32 and z.shape == img.shape
    assert abs(float(z.mean())) < 1e-5 and abs(float(z.std()) - 1) < 1e-4
    for method in set(METHODS) - {"zscore"}:
        np.testing.assert_array_equal(standardize(img, method), img)


def test_errors_name_params_keys() -> None:
    img = _ramp()
    with pytest.raises(ValueError, match=r"preprocess\.intensity\.method.*minmax.*ct_window"):
        to_unit_range(img, "percentile")
    with pytest.raises(ValueError, match=r"preprocess\.intensity\.method"):
        standardize(img, "nope")
    with pytest.raises(ValueError, match="center and width"):
        to_unit_range(img, "ct_window", center=40)
    with pytest.raises(ValueError, match="unexpected parameter"):
        to_unit_range(img, "minmax", lowr=1)
    with pytest.raises(ValueError, match="lower < upper"):
        to_unit_range(img, "minmax", lower=90, upper=10)
    with pytest.raises(ValueError, match="shape"):
        to_unit_range(np.zeros((4, 4, 2)), "minmax")


@pytest.mark.parametrize("channels", [None, 1, 3])
def test_clahe_shape_range_and_contrast(channels: int | None) -> None:
    rng = np.random.default_rng(0)
    base = 0.4 + 0.1 * rng.random((64, 64)).astype(np.float32)  # low-contrast image
    img = base if channels is None else np.repeat(base[..., None], channels, axis=2)
    out = apply_clahe(img, clip_limit=2.0, tile_grid=4)
    assert out.shape == img.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    assert out.std() > 1.5 * img.std()  # contrast increased
    with pytest.raises(ValueError, match="clip_limit"):
        apply_clahe(img, clip_limit=0, tile_grid=4)
    with pytest.raises(ValueError, match="tile_grid"):
        apply_clahe(img, clip_limit=2.0, tile_grid=0)
