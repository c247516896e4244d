"""Crop to the non-zero region (nnU-Net's first preprocessing step) and paste predictions back.

Arrays are channels-first: images ``(C, *S)``, masks / labels ``(*S)``, probabilities
``(K, *S)``. A :class:`CropBox` records the crop in the per-case JSON so that predictions on the
cropped array can be put back into the original frame: outside the box everything is background.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CropBox:
    """Axis-aligned box over the spatial axes, ``starts[i] <= index < stops[i]``.

    Attributes:
        starts: First index inside the box, per spatial axis.
        stops: One past the last index inside the box, per spatial axis.
    """

    starts: tuple[int, ...]
    stops: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.starts) != len(self.stops) or any(
            not 0 <= a < b for a, b in zip(self.starts, self.stops, strict=False)
        ):
            raise ValueError(f"CropBox needs 0 <= start < stop on every axis, got {self.starts} {self.stops}")

    @classmethod
    def from_slices(cls, slices: Sequence[slice]) -> CropBox:
        """Box from ``slice(start, stop)`` objects (no steps, no open ends)."""
        if any(s.start is None or s.stop is None or s.step not in (None, 1) for s in slices):
            raise ValueError(f"crop slices need an explicit start and stop and no step, got {slices}")
        return cls(tuple(int(s.start) for s in slices), tuple(int(s.stop) for s in slices))

    @property
    def slices(self) -> tuple[slice, ...]:
        """The box as a tuple of slices over the spatial axes."""
        return tuple(slice(a, b) for a, b in zip(self.starts, self.stops, strict=True))

    @property
    def shape(self) -> tuple[int, ...]:
        """Spatial shape of the cropped array."""
        return tuple(b - a for a, b in zip(self.starts, self.stops, strict=True))

    def to_json(self) -> dict[str, list[int]]:
        """Plain dict ``{"starts": [...], "stops": [...]}``."""
        return {"starts": list(self.starts), "stops": list(self.stops)}

    @classmethod
    def from_json(cls, d: dict[str, list[int]]) -> CropBox:
        """Inverse of :meth:`to_json`."""
        return cls(tuple(int(v) for v in d["starts"]), tuple(int(v) for v in d["stops"]))


def _as_box(bbox: CropBox | Sequence[slice]) -> CropBox:
    return bbox if isinstance(bbox, CropBox) else CropBox.from_slices(bbox)


def nonzero_bbox(image: np.ndarray) -> CropBox:
    """Smallest box holding every voxel where any channel is non-zero.

    The whole extent when the image is all zero. Channels are scanned one at a time, so the
    only temporary is one boolean ``(*S)`` map.

    Shape:
        image ``(C, *S)`` -> a box over the ``len(S)`` spatial axes.
    """
    if image.ndim < 2 or min(image.shape) < 1:
        raise ValueError(f"image must be a non-empty channels-first (C, *S) array, got shape {image.shape}")
    spatial = image.shape[1:]
    nonzero = image[0] != 0
    for c in range(1, image.shape[0]):
        nonzero |= image[c] != 0
    if not nonzero.any():
        return CropBox((0,) * len(spatial), tuple(spatial))
    starts, stops = [], []
    for axis in range(len(spatial)):
        hits = np.flatnonzero(nonzero.any(axis=tuple(a for a in range(len(spatial)) if a != axis)))
        starts.append(int(hits[0]))
        stops.append(int(hits[-1]) + 1)
    return CropBox(tuple(starts), tuple(stops))


def crop(arr: np.ndarray, bbox: CropBox | Sequence[slice]) -> np.ndarray:
    """Cut the box out of an image ``(C, *S)`` or a mask ``(*S)`` (a view, not a copy).

    A leading channel axis is recognised by ``arr.ndim == len(bbox) + 1``.

    Shape:
        ``(C, *S) -> (C, *box.shape)`` or ``(*S) -> (*box.shape)``.

    Raises:
        ValueError: The array's rank does not fit the box, or the box does not fit in the array.
    """
    box = _as_box(bbox)
    n = len(box.starts)
    if arr.ndim not in (n, n + 1):
        raise ValueError(f"a {n}D crop box needs a ({n}D) mask or (C, {n}D) image, got shape {arr.shape}")
    spatial = arr.shape[arr.ndim - n :]
    if any(b > s for b, s in zip(box.stops, spatial, strict=True)):
        raise ValueError(f"crop box {box.to_json()} does not fit in spatial shape {spatial}")
    lead = (slice(None),) * (arr.ndim - n)
    return arr[(*lead, *box.slices)]


def _check_paste(crop_shape: tuple[int, ...], box: CropBox, full_shape: Sequence[int]) -> tuple[int, ...]:
    """``full_shape`` as ints, checked against the box and the cropped array's spatial shape."""
    full = tuple(int(s) for s in full_shape)
    if crop_shape != box.shape:
        raise ValueError(f"cropped array has spatial shape {crop_shape}, the box {box.to_json()} {box.shape}")
    if len(full) != len(box.stops) or any(b > s for b, s in zip(box.stops, full, strict=True)):
        raise ValueError(f"crop box {box.to_json()} does not fit in full shape {full}")
    return full


def paste_probabilities(
    probs: np.ndarray, bbox: CropBox | Sequence[slice], full_shape: Sequence[int]
) -> np.ndarray:
    """Put probabilities predicted on a crop back into the full frame.

    Outside the box the prediction is certain background: class 0 has probability 1, the others 0.

    Shape:
        probs ``(K, *box.shape)`` -> ``(K, *full_shape)`` (dtype kept).
    """
    box = _as_box(bbox)
    full = _check_paste(tuple(probs.shape[1:]), box, full_shape)
    out = np.zeros((probs.shape[0], *full), dtype=probs.dtype)
    out[0] = 1
    out[(slice(None), *box.slices)] = probs
    return out


def paste_labels(
    labels: np.ndarray, bbox: CropBox | Sequence[slice], full_shape: Sequence[int]
) -> np.ndarray:
    """Put a label map predicted on a crop back into the full frame (0 outside the box).

    Shape:
        labels ``(*box.shape)`` -> ``(*full_shape)`` (dtype kept).
    """
    box = _as_box(bbox)
    full = _check_paste(tuple(labels.shape), box, full_shape)
    out = np.zeros(full, dtype=labels.dtype)
    out[box.slices] = labels
    return out
