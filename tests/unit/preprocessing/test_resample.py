"""Resampling to a target spacing: shapes, interpolation, label safety, anisotropic scheme."""

from __future__ import annotations

import numpy as np
import pytest

from components.preprocessing.resample import (
    is_anisotropic,
    resample_image,
    resample_labels_from_probabilities,
    resample_mask,
    resample_probabilities,
    target_shape,
)


def _blobs(shape: tuple[int, ...]) -> np.ndarray:
    """Phantom with labels {0, 1, 2, 4}: three balls, the smallest (4) nested inside ball 1.

    Radii are 7+ voxels at half resolution, so a 2x round trip can keep Dice > 0.9 per label.
    """
    grid = np.stack(np.meshgrid(*[np.arange(n) / n for n in shape], indexing="ij"))
    mask = np.zeros(shape, np.uint8)
    for label, centre, radius in ((1, 0.35, 0.3), (2, 0.72, 0.22), (4, 0.38, 0.16)):
        inside = (((grid - centre) / radius) ** 2).sum(0) < 1
        mask[inside] = label
    return mask


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.logical_and(a, b).sum() / (a.sum() + b.sum()))


def _smooth_probs(shape: tuple[int, ...], k: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(k, *shape)) * 3
    e = np.exp(logits - logits.max(0))
    return (e / e.sum(0)).astype(np.float32)


def test_target_shape_arithmetic() -> None:
    assert target_shape((100, 200, 50), (1.0, 0.5, 3.0), (2.0, 1.0, 1.0)) == (50, 100, 150)
    assert target_shape((10, 11), (1.0, 1.0), (3.0, 3.0)) == (3, 4)  # 3.33 -> 3, 3.67 -> 4
    assert target_shape((1, 4), (1.0, 1.0), (10.0, 1.0)) == (1, 4)  # never below 1
    with pytest.raises(ValueError, match="one entry per spatial axis"):
        target_shape((10, 10), (1.0,), (1.0, 1.0))
    with pytest.raises(ValueError, match="positive"):
        target_shape((10, 10), (1.0, 0.0), (1.0, 1.0))


def test_is_anisotropic() -> None:
    assert is_anisotropic((5.0, 0.8, 0.8))
    assert not is_anisotropic((2.4, 0.8, 0.8))  # exactly 3: not more than the threshold
    assert is_anisotropic((2.0, 1.0), threshold=1.5)


@pytest.mark.parametrize(
    ("shape", "new", "spacing"),
    [((9, 13), (20, 6), None), ((6, 9, 11), (12, 5, 17), None), ((5, 9, 11), (13, 5, 17), (4.0, 1.0, 1.0))],
)
def test_constant_image_stays_constant(
    shape: tuple[int, ...], new: tuple[int, ...], spacing: tuple[float, ...] | None
) -> None:
    image = np.full((2, *shape), 3.5, np.float32)
    image[1] = -1.25
    out = resample_image(image, new, spacing=spacing)
    assert out.shape == (2, *new) and out.dtype == np.float32
    np.testing.assert_allclose(out[0], 3.5, atol=1e-5)
    np.testing.assert_allclose(out[1], -1.25, atol=1e-5)


@pytest.mark.parametrize(("old", "new"), [(10, 23), (10, 4), (9, 9 * 3)])
def test_linear_matches_analytic_ramp(old: int, new: int) -> None:
    ramp = np.broadcast_to(np.arange(old, dtype=np.float32), (1, 5, old))
    out = resample_image(ramp, (7, new), order=1)
    expected = np.clip((np.arange(new) + 0.5) * old / new - 0.5, 0, old - 1)  # centre-aligned grid
    np.testing.assert_allclose(out[0], np.broadcast_to(expected, (7, new)), atol=1e-5)
    # the same along x of an anisotropic volume (in-plane axes keep the requested order)
    vol = np.broadcast_to(np.arange(old, dtype=np.float32), (1, 3, 4, old))
    out3 = resample_image(vol, (6, 4, new), spacing=(5.0, 1.0, 1.0), order=1)
    np.testing.assert_allclose(out3[0], np.broadcast_to(expected, (6, 4, new)), atol=1e-5)


def test_image_validation() -> None:
    with pytest.raises(ValueError, match="spline order"):
        resample_image(np.zeros((1, 4, 4), np.float32), (2, 2), order=6)
    with pytest.raises(ValueError, match="spacing"):
        resample_image(np.zeros((1, 4, 4, 4), np.float32), (2, 2, 2), spacing=(1.0, 1.0))


def test_identity_is_copy_free_and_coarse_axis_is_nearest() -> None:
    image = np.random.default_rng(1).random((2, 4, 6, 6), dtype=np.float32)
    assert resample_image(image, (4, 6, 6)) is image
    # anisotropic along z: every output slice is an unchanged input slice (no blending across z)
    out = resample_image(image, (11, 6, 6), spacing=(5.0, 1.0, 1.0))
    for z in range(11):
        assert any(np.array_equal(out[:, z], image[:, s]) for s in range(4))
    # the coarse axis can be any axis; here the last one
    out_x = resample_image(image, (4, 6, 13), spacing=(1.0, 1.0, 4.0))
    assert out_x.shape == (2, 4, 6, 13)
    for x in range(13):
        assert any(np.array_equal(out_x[..., x], image[..., s]) for s in range(6))


@pytest.mark.parametrize("shape", [(64, 60), (48, 44, 40)])
def test_mask_round_trip_keeps_labels(shape: tuple[int, ...]) -> None:
    mask = _blobs(shape)
    half = tuple(n // 2 for n in shape)
    down = resample_mask(mask, half, num_classes=5)
    back = resample_mask(down, shape, num_classes=5)
    assert back.shape == shape and back.dtype == np.uint8
    assert set(np.unique(back)) == set(np.unique(mask)) == {0, 1, 2, 4}
    for label in (1, 2, 4):
        assert _dice(back == label, mask == label) > 0.9, label


def test_mask_round_trip_anisotropic() -> None:
    mask = _blobs((10, 48, 44))
    spacing = (4.0, 1.0, 1.0)
    new = target_shape(mask.shape, spacing, (2.0, 2.0, 2.0))
    assert new == (20, 24, 22)
    up = resample_mask(mask, new, num_classes=5, spacing=spacing)
    back = resample_mask(up, mask.shape, num_classes=5, spacing=(2.0, 2.0, 2.0))
    assert set(np.unique(up)) == set(np.unique(back)) == {0, 1, 2, 4}
    for z in range(new[0]):  # z by nearest neighbour: each slice comes from one source slice
        src = min(int((z + 0.5) * 10 / 20), 9)
        assert np.array_equal(up[z], resample_mask(mask[src], new[1:], num_classes=5))
    for label in (1, 2, 4):
        assert _dice(back == label, mask == label) > 0.9, label


def test_mask_identity_and_no_invented_labels() -> None:
    mask = _blobs((20, 24))
    assert np.array_equal(resample_mask(mask, mask.shape, num_classes=5), mask)
    noisy = np.random.default_rng(2).choice(np.array([0, 3, 7], np.int16), size=(9, 11, 10))
    for new, spacing in (((5, 17, 4), None), ((14, 6, 13), (3.5, 1.0, 1.0))):
        out = resample_mask(noisy, new, num_classes=8, spacing=spacing)
        assert out.shape == new and set(np.unique(out)) <= {0, 3, 7}


def test_mask_validation() -> None:
    with pytest.raises(ValueError, match="integer labels"):
        resample_mask(np.zeros((4, 4), np.float32), (2, 2), num_classes=2)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        resample_mask(np.full((4, 4), 2, np.uint8), (2, 2), num_classes=2)
    with pytest.raises(ValueError, match="new_shape"):
        resample_mask(np.zeros((4, 4), np.uint8), (2, 2, 2), num_classes=2)


@pytest.mark.parametrize(
    ("shape", "new", "spacing"),
    [((12, 10), (25, 7), None), ((6, 10, 9), (13, 5, 18), None), ((4, 10, 9), (9, 21, 5), (5.0, 1.0, 1.0))],
)
def test_probabilities_sum_to_one_and_argmax_agrees(
    shape: tuple[int, ...], new: tuple[int, ...], spacing: tuple[float, ...] | None
) -> None:
    probs = _smooth_probs(shape, k=4)
    out = resample_probabilities(probs, new, spacing=spacing)
    assert out.shape == (4, *new) and out.dtype == np.float32
    assert out.min() >= 0
    np.testing.assert_allclose(out.sum(0), 1.0, atol=1e-5)
    labels = resample_labels_from_probabilities(probs, new, spacing=spacing)
    assert labels.dtype == np.uint8 and labels.shape == new
    assert np.array_equal(labels, out.argmax(0))


def test_probabilities_identity() -> None:
    probs = _smooth_probs((5, 6))
    assert resample_probabilities(probs, (5, 6)) is probs
    assert np.array_equal(resample_labels_from_probabilities(probs, (5, 6)), probs.argmax(0))
