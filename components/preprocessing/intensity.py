"""Intensity normalisation to [0, 1], per-image z-score, and CLAHE.

The pipeline keeps images as float32 ``(H, W, C)`` in [0, 1] up to augmentation
(:func:`to_unit_range`); the optional per-image z-score runs after augmentation
(:func:`standardize`), because photometric augmentations expect a [0, 1] range.
"""

from __future__ import annotations

import cv2
import numpy as np

METHODS: tuple[str, ...] = ("minmax", "ct_window", "dtype", "zscore")
_KWARGS: dict[str, tuple[str, ...]] = {
    "minmax": ("lower", "upper"),
    "ct_window": ("center", "width"),
    "dtype": (),
    "zscore": (),
}


def _as_hwc(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image[..., None]
    if image.ndim == 3 and image.shape[-1] in (1, 3):
        return image
    raise ValueError(f"image must be (H, W), (H, W, 1) or (H, W, 3), got shape {image.shape}")


def _rescale(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Clip to [lo, hi] and map linearly onto [0, 1]; a constant image maps to 0."""
    if not hi > lo:
        return np.zeros(x.shape, np.float32)
    out = (np.clip(x.astype(np.float64), lo, hi) - lo) / (hi - lo)
    return out.astype(np.float32)


def _minmax(x: np.ndarray, lower: float = 0.0, upper: float = 100.0) -> np.ndarray:
    if not 0.0 <= lower < upper <= 100.0:
        raise ValueError(
            "preprocess.intensity: minmax percentiles need 0 <= lower < upper <= 100, "
            f"got lower={lower}, upper={upper}"
        )
    if lower == 0.0 and upper == 100.0:
        lo, hi = float(x.min()), float(x.max())
    else:
        lo, hi = (float(v) for v in np.percentile(x, [lower, upper]))
    return _rescale(x, lo, hi)


def _dtype_range(x: np.ndarray) -> np.ndarray:
    if x.dtype == np.bool_:
        return x.astype(np.float32)
    if np.issubdtype(x.dtype, np.integer):
        info = np.iinfo(x.dtype)
        return _rescale(x, float(info.min), float(info.max))
    if x.size and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
        raise ValueError(
            f"preprocess.intensity.method 'dtype' needs an integer image or floats in [0, 1]; got "
            f"{x.dtype} values in [{float(x.min()):g}, {float(x.max()):g}] (use 'minmax' or 'ct_window')"
        )
    return x.astype(np.float32)


def to_unit_range(image: np.ndarray, method: str, **kwargs: float) -> np.ndarray:
    """Map raw intensities onto [0, 1].

    Methods (params key ``preprocess.intensity.method``):

    - ``"minmax"``: per image; optional percentile clip ``lower`` / ``upper`` (default 0 / 100).
    - ``"ct_window"``: clip raw values (HU) to ``center +- width / 2`` (both required).
    - ``"dtype"``: divide by the range of the integer dtype (uint8: 255, uint16: 65535); floats
      must already lie in [0, 1].
    - ``"zscore"``: robust min-max (0.5 / 99.5 percentiles); the z-score itself is applied after
      augmentation by :func:`standardize`.

    RGB images are normalised jointly over all channels, so colours keep their balance.

    Args:
        image: Raw image of any numeric dtype.
        method: One of :data:`METHODS`.
        **kwargs: Method parameters listed above.

    Shape:
        image ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` -> ``(H, W, C)`` with C = 1 or 3.

    Returns:
        float32 image with values in [0, 1].

    Raises:
        ValueError: Unknown method, unexpected or missing kwargs, bad shape.
    """
    if method not in METHODS:
        raise ValueError(f"preprocess.intensity.method must be one of {list(METHODS)}, got {method!r}")
    extra = sorted(set(kwargs) - set(_KWARGS[method]))
    if extra:
        raise ValueError(
            f"preprocess.intensity: unexpected parameter(s) {extra} for method {method!r}; "
            f"valid: {list(_KWARGS[method])}"
        )
    x = _as_hwc(np.asarray(image))
    if method == "minmax":
        return _minmax(x, **{k: float(v) for k, v in kwargs.items()})
    if method == "zscore":
        return _minmax(x, 0.5, 99.5)
    if method == "dtype":
        return _dtype_range(x)
    if "center" not in kwargs or "width" not in kwargs:
        raise ValueError("preprocess.intensity: method 'ct_window' needs center and width (in raw units, HU)")
    center, width = float(kwargs["center"]), float(kwargs["width"])
    if width <= 0:
        raise ValueError(f"preprocess.intensity: ct_window width must be > 0, got {width}")
    return _rescale(x, center - width / 2, center + width / 2)


def standardize(image: np.ndarray, method: str) -> np.ndarray:
    """Per-image z-score over all pixels and channels when ``method == "zscore"``, else identity.

    A constant image becomes all zeros (no division by a zero standard deviation).

    Shape:
        image any shape -> same shape, float32.
    """
    if method not in METHODS:
        raise ValueError(f"preprocess.intensity.method must be one of {list(METHODS)}, got {method!r}")
    x = np.asarray(image, dtype=np.float32)
    if method != "zscore":
        return x
    mean, std = float(x.mean()), float(x.std())
    return ((x - mean) / std if std > 1e-8 else x - mean).astype(np.float32)


def apply_clahe(image: np.ndarray, clip_limit: float, tile_grid: int) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation of a [0, 1] image.

    Runs OpenCV's CLAHE on an 8-bit copy, so ``clip_limit`` has its usual 8-bit meaning (the
    values found in the literature, e.g. 2.0, carry over); RGB images are equalised on the
    lightness channel of CIE Lab so colours do not shift.

    Args:
        image: float image in [0, 1].
        clip_limit: Contrast limit (> 0), params key ``preprocess.clahe.clip_limit``.
        tile_grid: Number of tiles per side (>= 1), params key ``preprocess.clahe.tile_grid``.

    Shape:
        image ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` -> same shape, float32 in [0, 1].
    """
    if clip_limit <= 0:
        raise ValueError(f"preprocess.clahe.clip_limit must be > 0, got {clip_limit}")
    if tile_grid < 1:
        raise ValueError(f"preprocess.clahe.tile_grid must be >= 1, got {tile_grid}")
    x = _as_hwc(np.asarray(image, dtype=np.float32))
    clahe = cv2.createCLAHE(clipLimit=float(clip_limit), tileGridSize=(int(tile_grid), int(tile_grid)))
    if x.shape[-1] == 1:
        u8 = np.round(np.clip(x[..., 0], 0, 1) * 255).astype(np.uint8)
        out = (clahe.apply(u8).astype(np.float32) / 255.0)[..., None]
    else:
        lab = cv2.cvtColor(np.clip(x, 0, 1), cv2.COLOR_RGB2Lab)  # float input: L in [0, 100]
        lightness = np.round(lab[..., 0] * 2.55).astype(np.uint8)
        lab[..., 0] = clahe.apply(lightness).astype(np.float32) / 2.55
        out = np.clip(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB), 0, 1)
    return out.reshape(np.asarray(image).shape).astype(np.float32)
