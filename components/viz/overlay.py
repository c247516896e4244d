"""Colour overlays of label maps on images: one palette and one blend for every picture segflow draws
(prediction overlays, the worst-case gallery, the augmentation preview, plot legends)."""

from __future__ import annotations

import numpy as np

# Okabe–Ito colour-blind-safe palette; class c >= 1 uses PALETTE[(c - 1) % len(PALETTE)].
PALETTE: tuple[str, ...] = (
    "#E69F00",
    "#56B4E9",
    "#009E73",
    "#F0E442",
    "#0072B2",
    "#D55E00",
    "#CC79A7",
    "#999999",
)


def class_color(c: int) -> str:
    """Hex colour of foreground class ``c`` (>= 1)."""
    return PALETTE[(int(c) - 1) % len(PALETTE)]


def _rgb_table(n: int) -> np.ndarray:
    """Float RGB in [0, 1] for classes 0..n-1 (row 0 unused). Shape: -> (n, 3)."""
    table = np.zeros((max(n, 1), 3), dtype=np.float32)
    for c in range(1, n):
        h = class_color(c).lstrip("#")
        table[c] = [int(h[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    return table


def to_gray_unit(image: np.ndarray) -> np.ndarray:
    """Any image -> 2D float in [0, 1], contrast-stretched to its 1st-99th percentile (RGB averaged).

    Shape:
        image: (H, W) or (H, W, C) -> (H, W)
    """
    img = image.astype(np.float64)
    if img.ndim == 3:
        img = img.mean(axis=-1)
    lo, hi = np.percentile(img, [1, 99]) if img.size else (0.0, 1.0)
    return np.clip((img - lo) / (hi - lo if hi > lo else 1.0), 0, 1)


def overlay(image: np.ndarray, labels: np.ndarray, alpha: float = 0.5, stretch: bool = True) -> np.ndarray:
    """Blend class colours over the image where ``labels`` > 0.

    Args:
        image: Gray or RGB image, any range (contrast-stretched when ``stretch``; else taken as [0, 1]).
        labels: Class-index map.
        alpha: Opacity of the class colour.
        stretch: Stretch intensities to the 1st-99th percentile first.

    Shape:
        image: (H, W) or (H, W, C); labels: (H, W) -> (H, W, 3) float in [0, 1]
    """
    if stretch or image.ndim == 2 or image.shape[-1] == 1:
        base = image if not stretch else to_gray_unit(image)
        base = np.squeeze(base, -1) if base.ndim == 3 else base
        rgb = np.repeat(np.clip(base, 0, 1)[..., None], 3, axis=-1).astype(np.float32)
    else:
        rgb = np.clip(image[..., :3], 0, 1).astype(np.float32)
    lab = np.asarray(labels).astype(np.int64)
    colors = _rgb_table(int(lab.max(initial=0)) + 1)
    fg = lab > 0
    rgb[fg] = (1 - alpha) * rgb[fg] + alpha * colors[lab[fg]]
    return rgb


def overlay_uint8(image: np.ndarray, labels: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """:func:`overlay` as an 8-bit RGB picture (for PNG files). Shape: -> (H, W, 3) uint8."""
    return (overlay(image, labels, alpha) * 255).round().astype(np.uint8)
