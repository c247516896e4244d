"""Colour overlays of label maps on images (prediction previews, galleries)."""

from __future__ import annotations

import numpy as np

# Colour-blind-friendly qualitative palette (Okabe–Ito), background transparent.
_PALETTE = np.array(
    [
        [0, 0, 0],
        [230, 159, 0],
        [86, 180, 233],
        [0, 158, 115],
        [240, 228, 66],
        [0, 114, 178],
        [213, 94, 0],
        [204, 121, 167],
    ],
    dtype=np.float32,
)


def class_colors(num_classes: int) -> np.ndarray:
    """RGB colour per class (uint8), class 0 black; cycles past the palette size.

    Shape:
        -> (num_classes, 3)
    """
    idx = [0] + [1 + (c - 1) % (len(_PALETTE) - 1) for c in range(1, num_classes)]
    return _PALETTE[idx].astype(np.uint8)


def to_display(image: np.ndarray) -> np.ndarray:
    """Any image -> uint8 RGB, contrast-stretched to its 1st-99th percentile.

    Shape:
        image: (H, W) or (H, W, C) -> (H, W, 3)
    """
    img = image.astype(np.float32)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    lo, hi = np.percentile(img, [1, 99]) if img.size else (0.0, 1.0)
    unit = np.clip((img - lo) / max(float(hi - lo), 1e-6), 0, 1)
    rgb = np.repeat(unit[..., None], 3, -1) if unit.ndim == 2 else unit[..., :3]
    return (rgb * 255).astype(np.uint8)


def overlay(image: np.ndarray, labels: np.ndarray, num_classes: int, alpha: float = 0.45) -> np.ndarray:
    """Blend class colours over the image where ``labels`` > 0.

    Shape:
        image: (H, W) or (H, W, C); labels: (H, W) -> (H, W, 3) uint8
    """
    base = to_display(image).astype(np.float32)
    colors = class_colors(max(num_classes, int(labels.max(initial=0)) + 1)).astype(np.float32)
    fg = labels > 0
    base[fg] = (1 - alpha) * base[fg] + alpha * colors[labels[fg]]
    return base.astype(np.uint8)
