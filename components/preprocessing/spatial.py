"""Bring images and masks to the network size, and map predictions back to the original size.

Every mode is one resize followed by one centred placement on the output canvas:

- ``"resize"``: resize to ``size`` (aspect ratio not kept), no placement offset.
- ``"pad"``: no resize; pad with 0 and/or crop, centred, to ``size``.
- ``"letterbox"``: resize by one factor so that the image fits in ``size``, then pad (centred).

:class:`SpatialParams` records the resized shape and the placement offset, which is all
:func:`restore` needs to invert the mapping. Images use area interpolation when shrinking and
bilinear when enlarging; masks use centre-aligned nearest neighbour, so no new labels appear.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

MODES: tuple[str, ...] = ("resize", "pad", "letterbox")


@dataclass(frozen=True)
class SpatialParams:
    """How one image was mapped to the network size (JSON-serialisable via ``to_json``).

    Attributes:
        original_shape: ``(H, W)`` before :func:`fit_to_size`.
        size: ``(h, w)`` output (network) size.
        mode: One of :data:`MODES`.
        resized_shape: Shape after the resize step (equals ``original_shape`` in ``"pad"`` mode).
        offset: ``(top, left)`` position of the resized image on the output canvas; negative
            values mean the resized image was cropped on that side.
    """

    original_shape: tuple[int, int]
    size: tuple[int, int]
    mode: str
    resized_shape: tuple[int, int]
    offset: tuple[int, int]

    def to_json(self) -> dict:
        """Plain dict of lists/ints/strings."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, d: dict) -> SpatialParams:
        """Inverse of :meth:`to_json`."""
        return cls(
            original_shape=(int(d["original_shape"][0]), int(d["original_shape"][1])),
            size=(int(d["size"][0]), int(d["size"][1])),
            mode=str(d["mode"]),
            resized_shape=(int(d["resized_shape"][0]), int(d["resized_shape"][1])),
            offset=(int(d["offset"][0]), int(d["offset"][1])),
        )


def _resize_image(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize ``(H, W)`` or ``(H, W, C)`` to ``shape``; area when shrinking, bilinear otherwise."""
    if image.shape[:2] == shape:
        return image
    shrink = shape[0] <= image.shape[0] and shape[1] <= image.shape[1]
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    out = cv2.resize(image, (shape[1], shape[0]), interpolation=interp)
    if image.ndim == 3 and out.ndim == 2:  # cv2 drops a trailing channel axis of size 1
        out = out[..., None]
    return out


def _resize_nearest(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Centre-aligned nearest-neighbour resize of a label map; keeps the dtype and the labels."""
    h, w = mask.shape[:2]
    rows = np.minimum(((np.arange(shape[0]) + 0.5) * h / shape[0]).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(shape[1]) + 0.5) * w / shape[1]).astype(np.int64), w - 1)
    return mask[rows[:, None], cols[None, :]]


def _place(arr: np.ndarray, size: tuple[int, int], offset: tuple[int, int], fill: float) -> np.ndarray:
    """Put ``arr`` (leading axes H, W) on a ``size`` canvas at ``offset``, cropping what falls outside."""
    canvas = np.full((*size, *arr.shape[2:]), fill, dtype=arr.dtype)
    (top, left), (h, w) = offset, arr.shape[:2]
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + h, size[0]), min(left + w, size[1])
    canvas[y0:y1, x0:x1] = arr[y0 - top : y1 - top, x0 - left : x1 - left]
    return canvas


def fit_to_size(
    image: np.ndarray, mask: np.ndarray | None, size: tuple[int, int], mode: str = "resize"
) -> tuple[np.ndarray, np.ndarray | None, SpatialParams]:
    """Map an image (and its mask) to the network size.

    Args:
        image: Image, float32 (uint8/uint16 also work and keep their dtype).
        mask: Class-index mask or None.
        size: Output ``(h, w)``.
        mode: ``"resize"``, ``"pad"`` or ``"letterbox"`` (params key ``preprocess.spatial_mode``).

    Shape:
        image ``(H, W)`` or ``(H, W, C)`` -> ``(h, w)`` or ``(h, w, C)``; mask ``(H, W)`` -> ``(h, w)``.

    Returns:
        The image, the mask (None if none was given) and the parameters to invert the mapping.

    Raises:
        ValueError: Unknown mode, bad size, or mask shape not matching the image.
    """
    if mode not in MODES:
        raise ValueError(f"preprocess.spatial_mode must be one of {list(MODES)}, got {mode!r}")
    size = (int(size[0]), int(size[1]))
    if min(size) < 1:
        raise ValueError(f"size must be positive (h, w), got {size}")
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be (H, W) or (H, W, C), got shape {image.shape}")
    H, W = image.shape[:2]
    if mask is not None and mask.shape != (H, W):
        raise ValueError(f"mask shape {mask.shape} does not match image shape {(H, W)}")

    if mode == "resize":
        resized = size
    elif mode == "pad":
        resized = (H, W)
    else:
        scale = min(size[0] / H, size[1] / W)
        resized = (
            min(size[0], max(1, round(H * scale))),
            min(size[1], max(1, round(W * scale))),
        )
    offset = ((size[0] - resized[0]) // 2, (size[1] - resized[1]) // 2)
    params = SpatialParams((H, W), size, mode, resized, offset)

    img = image if image.dtype in (np.uint8, np.uint16, np.float32) else image.astype(np.float32)
    img = _place(_resize_image(img, resized), size, offset, 0)
    out_mask = None
    if mask is not None:
        out_mask = _place(_resize_nearest(mask, resized), size, offset, 0)
    return img, out_mask, params


def restore(probs: np.ndarray, params: SpatialParams) -> np.ndarray:
    """Map class probabilities at the network size back to the original image size.

    Inverse of :func:`fit_to_size`: removes the padding, resizes back (bilinear when enlarging,
    area when shrinking; both keep probabilities summing to 1) and, where the forward mapping
    cropped part of the image away (``"pad"`` mode with an image larger than ``size``), fills
    that part with background (channel 0 = 1, others 0).

    Args:
        probs: Per-class probabilities from the network.
        params: The parameters :func:`fit_to_size` returned for this image.

    Shape:
        probs ``(C, h, w)`` with ``(h, w) == params.size`` -> ``(C, H, W)`` with
        ``(H, W) == params.original_shape``.

    Returns:
        float32 probabilities at the original resolution.
    """
    if probs.ndim != 3 or tuple(probs.shape[1:]) != params.size:
        raise ValueError(f"probs must have shape (C, {params.size[0]}, {params.size[1]}), got {probs.shape}")
    hwc = np.ascontiguousarray(np.moveaxis(probs.astype(np.float32, copy=False), 0, -1))
    fill = np.zeros(hwc.shape[-1], np.float32)
    fill[0] = 1.0
    # Take the resized image's area back out of the canvas (the inverse placement).
    top, left = params.offset
    region = np.broadcast_to(fill, (*params.resized_shape, fill.size)).copy()
    y0, x0 = max(top, 0), max(left, 0)
    y1 = min(top + params.resized_shape[0], params.size[0])
    x1 = min(left + params.resized_shape[1], params.size[1])
    region[y0 - top : y1 - top, x0 - left : x1 - left] = hwc[y0:y1, x0:x1]
    out = _resize_image(region, params.original_shape)
    return np.ascontiguousarray(np.moveaxis(out, -1, 0))
