"""The per-image preprocessing shared by training, evaluation and the packaged model.

One function maps a raw image (any size, gray or RGB, 8/16 bit) to the network's input so that
the arrays cached for training and the images seen at inference go through the same code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from components.preprocessing.intensity import apply_clahe, standardize, to_unit_range
from components.preprocessing.spatial import SpatialParams, fit_to_size

if TYPE_CHECKING:
    from components.params.config import Params


@dataclass(frozen=True)
class PreprocessSpec:
    """What preprocessing does, in plain values (stored with checkpoints and the packaged model)."""

    size: tuple[int, int]
    spatial_mode: str
    intensity_method: str
    intensity_kwargs: dict[str, float]
    channels: int
    clahe: tuple[float, int] | None = None

    def to_dict(self) -> dict[str, object]:
        """JSON-serialisable form."""
        return {
            "size": list(self.size),
            "spatial_mode": self.spatial_mode,
            "intensity_method": self.intensity_method,
            "intensity_kwargs": dict(self.intensity_kwargs),
            "channels": self.channels,
            "clahe": list(self.clahe) if self.clahe else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PreprocessSpec:
        """Inverse of :meth:`to_dict` (``d`` as read back from a checkpoint or JSON)."""
        size = d["size"]
        assert isinstance(size, list | tuple)
        return cls(
            size=(int(size[0]), int(size[1])),
            spatial_mode=str(d["spatial_mode"]),
            intensity_method=str(d["intensity_method"]),
            intensity_kwargs=dict(d.get("intensity_kwargs") or {}),
            channels=int(d["channels"]),
            clahe=(float(d["clahe"][0]), int(d["clahe"][1])) if d.get("clahe") else None,
        )


def match_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """Convert ``image`` to ``channels`` channels (RGB -> gray by luminance, gray -> RGB by copying).

    Integer images keep their dtype (the luminance is rounded); an alpha channel is dropped.

    Shape:
        image: (H, W) or (H, W, C) -> (H, W, channels)
    """
    img = image[..., None] if image.ndim == 2 else image
    if img.shape[-1] == 4:
        img = img[..., :3]
    if img.shape[-1] == channels:
        return img
    if channels == 1:
        weights = np.array([0.299, 0.587, 0.114], dtype=np.float64)
        gray = (img[..., :3].astype(np.float64) * weights).sum(-1)
        if np.issubdtype(image.dtype, np.integer):  # keep the dtype: intensity method "dtype" needs it
            info = np.iinfo(image.dtype)
            return np.clip(np.round(gray), info.min, info.max).astype(image.dtype)[..., None]
        return gray.astype(image.dtype if np.issubdtype(image.dtype, np.floating) else np.float32)[..., None]
    return np.repeat(img[..., :1], channels, axis=-1)


def to_unit_image(
    image: np.ndarray, mask: np.ndarray | None, spec: PreprocessSpec
) -> tuple[np.ndarray, np.ndarray | None, SpatialParams]:
    """Raw image (and mask) -> float32 image in [0, 1] at the network size (no z-score yet).

    Shape:
        image: (H, W) or (H, W, C); mask: (H, W) -> (h, w, channels), (h, w)
    """
    img = match_channels(image, spec.channels)
    unit = to_unit_range(img, spec.intensity_method, **spec.intensity_kwargs)
    if spec.clahe:
        unit = apply_clahe(unit, *spec.clahe)
    out_img, out_mask, params = fit_to_size(unit, mask, spec.size, mode=spec.spatial_mode)
    if out_img.ndim == 2:
        out_img = out_img[..., None]
    return out_img.astype(np.float32), out_mask, params


def to_network_input(unit_image: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """Unit-range image -> channels-first network input (applies the z-score when configured).

    Shape:
        unit_image: (h, w, C) -> (C, h, w) float32
    """
    std = standardize(unit_image, spec.intensity_method)
    return np.ascontiguousarray(np.moveaxis(std, -1, 0), dtype=np.float32)


def spec_from_params(params: Params) -> PreprocessSpec:
    """The preprocessing spec that params.yaml describes."""
    pp = params.preprocess
    return PreprocessSpec(
        size=(int(pp.image_size[0]), int(pp.image_size[1])),
        spatial_mode=pp.spatial_mode,
        intensity_method=pp.intensity.method,
        intensity_kwargs=dict(pp.intensity.kwargs),
        channels=params.data.channels,
        clahe=(pp.clahe.clip_limit, pp.clahe.tile_grid) if pp.clahe else None,
    )
