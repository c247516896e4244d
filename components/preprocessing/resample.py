"""Resample images, masks and class probabilities to a target voxel spacing (nnU-Net style).

All arrays are channels-first and spacing tuples are in array-axis order: images ``(C, *S)``,
masks ``(*S)`` integer labels, probabilities ``(K, *S)``, with ``S`` either ``(H, W)`` or
``(Z, Y, X)``.

- Images: cubic B-spline (``order=3``) per channel, edge values replicated at the border.
- Masks: "linear on one-hot" (as nnU-Net): each class indicator is interpolated linearly and every
  voxel keeps the class with the highest value. Only the running best value and label are held,
  never all K indicator maps, and only labels present in the input can appear in the output.
- Probabilities: linear per class, renormalised to sum to 1; or straight to the argmax labels
  with the same one-class-at-a-time memory budget as masks.

Anisotropic 3D data (largest / smallest spacing > :data:`ANISOTROPY_THRESHOLD`, before or after
resampling) is resampled as nnU-Net does: the in-plane axes slice by slice with the requested
order, the coarse (low-resolution) axis with nearest neighbour, so that no intensities or labels
are interpolated across thick slices. Nearest neighbour along one axis only picks slices, so each
needed source slice is resampled in plane once and repeated where the output repeats it.

Grid convention: pixel centres are aligned with pixel areas (``scipy.ndimage.zoom`` with
``grid_mode=True``, the same mapping as ``skimage.transform.resize`` that nnU-Net uses), i.e.
output index ``i`` samples input coordinate ``(i + 0.5) * old / new - 0.5``.

Why scipy and not ``torch.nn.functional.interpolate``: torch's "bicubic" is the Keys cubic
convolution kernel and it has no 3D cubic mode, so it would not be the B-spline nnU-Net uses.
Peak memory is one float64 copy of a single channel (scipy's spline prefilter) for order > 1 on
isotropic data, a single slice when anisotropic.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Literal

import numpy as np
from scipy import ndimage

ANISOTROPY_THRESHOLD: float = 3.0

SplineOrder = Literal[0, 1, 2, 3, 4, 5]
_ORDERS: tuple[SplineOrder, ...] = (0, 1, 2, 3, 4, 5)


def _spline_order(order: int) -> SplineOrder:
    """``order`` checked to be a spline order scipy supports."""
    for valid in _ORDERS:
        if order == valid:
            return valid
    raise ValueError(f"spline order must be one of {list(_ORDERS)}, got {order!r}")


def target_shape(
    shape: Sequence[int], spacing: Sequence[float], target_spacing: Sequence[float]
) -> tuple[int, ...]:
    """Shape of an array after resampling from ``spacing`` to ``target_spacing``.

    Each axis is ``round(shape * spacing / target_spacing)``, at least 1.

    Shape:
        ``shape``, ``spacing`` and ``target_spacing`` have one entry per spatial axis.

    Raises:
        ValueError: Lengths differ, or a spacing is not positive.
    """
    if not len(shape) == len(spacing) == len(target_spacing):
        raise ValueError(
            f"shape {tuple(shape)}, spacing {tuple(spacing)} and target spacing {tuple(target_spacing)} "
            "must have one entry per spatial axis"
        )
    if min(*spacing, *target_spacing) <= 0:
        raise ValueError(f"spacings must be positive, got {tuple(spacing)} -> {tuple(target_spacing)}")
    return tuple(max(1, round(n * s / t)) for n, s, t in zip(shape, spacing, target_spacing, strict=True))


def is_anisotropic(spacing: Sequence[float], threshold: float = ANISOTROPY_THRESHOLD) -> bool:
    """True when the largest spacing is more than ``threshold`` times the smallest."""
    return max(spacing) / min(spacing) > threshold


def _check_shape(old: Sequence[int], new: Sequence[int]) -> tuple[int, ...]:
    """``new`` as a tuple of ints, checked against the spatial shape ``old`` it replaces."""
    shape = tuple(int(n) for n in new)
    if len(shape) != len(old) or min(shape) < 1:
        raise ValueError(f"new_shape must be {len(old)} positive ints (spatial axes), got {tuple(new)}")
    if min(old) < 1:
        raise ValueError(f"cannot resample an empty array of spatial shape {tuple(old)}")
    return shape


def _coarse_axis(old: tuple[int, ...], new: tuple[int, ...], spacing: Sequence[float] | None) -> int | None:
    """The axis to resample with nearest neighbour (3D anisotropic data), else None.

    As nnU-Net: the spacing before resampling decides first, then the spacing after it; when two
    axes tie for the largest spacing there is no single coarse axis and everything is resampled
    together.
    """
    if spacing is None or len(old) != 3:
        return None
    if len(spacing) != len(old) or min(spacing) <= 0:
        raise ValueError(f"spacing must be {len(old)} positive values (array-axis order), got {spacing}")
    new_spacing = [s * o / n for s, o, n in zip(spacing, old, new, strict=True)]
    for sp in (list(spacing), new_spacing):
        if is_anisotropic(sp):
            coarse = [i for i, s in enumerate(sp) if s == max(sp)]
            return coarse[0] if len(coarse) == 1 else None
    return None


def _nearest_indices(old: int, new: int) -> np.ndarray:
    """Source index of each output position for centre-aligned nearest-neighbour resampling."""
    return np.minimum(((np.arange(new) + 0.5) * old / new).astype(np.int64), old - 1)


def _zoom_into(src: np.ndarray, dst: np.ndarray, order: SplineOrder) -> None:
    """Spline-resample ``src`` into the float32 array (or view) ``dst`` of the target shape."""
    if src.shape == dst.shape:
        dst[...] = src
        return
    factors = [n / o for n, o in zip(dst.shape, src.shape, strict=True)]
    ndimage.zoom(src, factors, output=dst, order=order, mode="nearest", grid_mode=True)


def _resample_into(src: np.ndarray, dst: np.ndarray, order: SplineOrder, axis: int | None) -> None:
    """Resample one spatial array into ``dst``; nearest neighbour along ``axis`` when given.

    Shape:
        src ``(*S)`` -> dst ``(*S')`` (any dtype in, float32 out).
    """
    if axis is None:
        _zoom_into(src, dst, order)
        return
    src_slices, dst_slices = np.moveaxis(src, axis, 0), np.moveaxis(dst, axis, 0)
    index = _nearest_indices(src.shape[axis], dst.shape[axis])
    for i, j in enumerate(index):
        if i > 0 and j == index[i - 1]:
            dst_slices[i] = dst_slices[i - 1]
        else:
            _zoom_into(src_slices[j], dst_slices[i], order)


def _running_argmax(maps: Iterator[tuple[int, np.ndarray]], shape: tuple[int, ...]) -> np.ndarray:
    """Label of the largest map at each voxel, consuming ``(label, map)`` pairs one at a time.

    Ties keep the label seen first. Holds only the running best value and label (plus the map
    being consumed), so ``maps`` may reuse one buffer.
    """
    best = np.full(shape, -np.inf, dtype=np.float32)
    labels = np.zeros(shape, dtype=np.uint8)
    for label, values in maps:
        better = values > best
        np.copyto(best, values, where=better)
        labels[better] = label
    return labels


def _per_channel(
    arr: np.ndarray, shape: tuple[int, ...], order: SplineOrder, spacing: Sequence[float] | None
) -> np.ndarray:
    """Resample each channel of ``(C, *S)`` into one float32 ``(C, *shape)`` (no copy when unchanged)."""
    if arr.shape[1:] == shape:
        return arr.astype(np.float32, copy=False)
    axis = _coarse_axis(arr.shape[1:], shape, spacing)
    out = np.empty((arr.shape[0], *shape), dtype=np.float32)
    for c in range(arr.shape[0]):
        _resample_into(arr[c], out[c], order, axis)
    return out


def resample_image(
    image: np.ndarray, new_shape: Sequence[int], spacing: Sequence[float] | None = None, order: int = 3
) -> np.ndarray:
    """Resample every channel of an image to ``new_shape`` (one channel at a time).

    Args:
        image: Channels-first image.
        new_shape: Spatial output shape (e.g. from :func:`target_shape`).
        spacing: Current spacing; when given for 3D data it selects the anisotropic scheme.
        order: Spline order in plane (3: cubic, 1: linear, 0: nearest).

    Shape:
        image ``(C, *S)`` -> ``(C, *new_shape)`` float32.

    Returns:
        The resampled image; ``image`` itself (as float32, no copy when already float32) when the
        shape is unchanged.

    Raises:
        ValueError: Not channels-first, bad ``new_shape`` / ``spacing``, or order not in 0..5.
    """
    if image.ndim < 2:
        raise ValueError(f"image must be channels-first (C, *S), got shape {image.shape}")
    spline = _spline_order(order)
    shape = _check_shape(image.shape[1:], new_shape)
    return _per_channel(image, shape, spline, spacing)


def resample_mask(
    mask: np.ndarray, new_shape: Sequence[int], num_classes: int, spacing: Sequence[float] | None = None
) -> np.ndarray:
    """Resample a label map by linear interpolation of each class indicator, keeping the argmax.

    Args:
        mask: Integer labels in ``[0, num_classes)``.
        new_shape: Spatial output shape.
        num_classes: Number of classes (at most 256, the output is uint8).
        spacing: Current spacing; when given for 3D data it selects the anisotropic scheme.

    Shape:
        mask ``(*S)`` -> ``(*new_shape)`` uint8.

    Raises:
        ValueError: Non-integer dtype, labels outside ``[0, num_classes)`` or more than 256 classes.
    """
    if not (np.issubdtype(mask.dtype, np.integer) or mask.dtype == np.bool_):
        raise ValueError(f"mask must hold integer labels, got dtype {mask.dtype} (cast it with astype)")
    if not 1 <= num_classes <= 256:
        raise ValueError(f"num_classes must be in [1, 256] (uint8 labels), got {num_classes}")
    if mask.size and (mask.min() < 0 or mask.max() >= num_classes):
        raise ValueError(f"mask labels must be in [0, {num_classes}), got range [{mask.min()}, {mask.max()}]")
    shape = _check_shape(mask.shape, new_shape)
    if mask.shape == shape:
        return mask.astype(np.uint8, copy=False)
    axis = _coarse_axis(mask.shape, shape, spacing)

    def indicator_maps() -> Iterator[tuple[int, np.ndarray]]:
        buf = np.empty(shape, dtype=np.float32)
        for c in range(num_classes):
            indicator = mask == c
            if indicator.any():  # absent classes cannot win anywhere: skip them
                _resample_into(indicator.view(np.uint8), buf, 1, axis)
                yield c, buf

    return _running_argmax(indicator_maps(), shape)


def _check_probs(probs: np.ndarray) -> None:
    if probs.ndim < 2 or probs.shape[0] < 1:
        raise ValueError(f"probs must be (K, *S) with K >= 1, got shape {probs.shape}")


def resample_probabilities(
    probs: np.ndarray, new_shape: Sequence[int], spacing: Sequence[float] | None = None
) -> np.ndarray:
    """Resample class probabilities linearly, one class at a time, and renormalise.

    Args:
        probs: Per-class probabilities (e.g. a network's softmax).
        new_shape: Spatial output shape (usually the original image's).
        spacing: Spacing of ``probs``; when given for 3D data it selects the anisotropic scheme.

    Shape:
        probs ``(K, *S')`` -> ``(K, *new_shape)`` float32, summing to 1 over K wherever the input
        sums to a positive value.
    """
    _check_probs(probs)
    shape = _check_shape(probs.shape[1:], new_shape)
    if probs.shape[1:] == shape:
        return probs.astype(np.float32, copy=False)
    out = _per_channel(probs, shape, 1, spacing)
    total = out.sum(axis=0, keepdims=True)
    np.divide(out, total, out=out, where=total > 0)
    return out


def resample_labels_from_probabilities(
    probs: np.ndarray, new_shape: Sequence[int], spacing: Sequence[float] | None = None
) -> np.ndarray:
    """Argmax labels of :func:`resample_probabilities` without holding the resampled probabilities.

    Renormalising divides every class by the same positive value, so it cannot change the argmax
    and is skipped. Memory: one resampled class map plus the running max and label.

    Shape:
        probs ``(K, *S')`` with K <= 256 -> ``(*new_shape)`` uint8.
    """
    _check_probs(probs)
    if probs.shape[0] > 256:
        raise ValueError(f"at most 256 classes (uint8 labels), got {probs.shape[0]}")
    shape = _check_shape(probs.shape[1:], new_shape)
    axis = _coarse_axis(probs.shape[1:], shape, spacing)

    def class_maps() -> Iterator[tuple[int, np.ndarray]]:
        buf = np.empty(shape, dtype=np.float32)
        for k in range(probs.shape[0]):
            _resample_into(probs[k], buf, 1, axis)
            yield k, buf

    return _running_argmax(class_maps(), shape)
