"""Augmentation preview: a PNG grid of samples, each shown raw and after several augmentation draws.

Rendering takes arrays only (image float32 (H, W, C) in [0, 1], mask uint8 (H, W)); :func:`load_samples`
reads them from a dataset folder through the same preprocessing as training.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from components.viz.overlay import overlay

if TYPE_CHECKING:
    import albumentations as A

    from components.preprocessing.pipeline import PreprocessSpec

Sample = tuple[np.ndarray, np.ndarray]


def render_preview(
    samples: Sequence[Sample] | Callable[[int], Sample],
    aug: A.Compose,
    n: int,
    out: Path,
    draws: int = 3,
) -> Path:
    """Write a grid: one row per sample, the original then ``draws`` augmented versions.

    Args:
        samples: List of (image, mask) pairs, or a callable ``i -> (image, mask)``.
        aug: Augmentation pipeline (``aug(image=..., mask=...)``).
        n: Number of samples (rows); at most ``len(samples)`` for a list.
        out: PNG path (parent folders are created; written atomically).
        draws: Augmented versions per sample.

    Returns:
        ``out``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    get = samples if callable(samples) else samples.__getitem__
    rows = n if callable(samples) else min(n, len(samples))
    if rows == 0:
        raise ValueError("no samples to preview")
    fig, axes = plt.subplots(rows, draws + 1, figsize=(2.2 * (draws + 1), 2.2 * rows), squeeze=False)
    for r in range(rows):
        image, mask = get(r)
        panels = [(image, mask, "original")]
        for d in range(draws):
            res = aug(image=image, mask=mask)
            panels.append((res["image"], res["mask"], f"augmented {d + 1}"))
        for c, (img, msk, label) in enumerate(panels):
            ax = axes[r][c]
            ax.imshow(overlay(img, msk, 0.45, stretch=False), interpolation="nearest")
            ax.set_axis_off()
            if r == 0:
                ax.set_title(label, fontsize=9)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, out)
    return out


def load_samples(data_dir: Path, spec: PreprocessSpec, n: int) -> list[Sample]:
    """The first ``n`` image/mask pairs of a dataset folder, preprocessed to the network size; binary
    masks written as ``0 / v`` read with ``v`` as 1, as validate reads them
    (:func:`components.io.case_masks.binary_foreground`, over these samples' values).

    Shape:
        each sample: image (h, w, channels) float32 in [0, 1], mask (h, w) uint8.
    """
    from components.data.discovery import discover
    from components.io import read_image, read_mask
    from components.io.case_masks import binary_foreground, class_indices
    from components.preprocessing.pipeline import to_unit_image

    pairs = [(read_image(p.image), read_mask(p.mask)) for p in discover(Path(data_dir)).pairs[:n]]
    values = sorted({int(v) for _, mask in pairs for v in np.unique(mask)})
    foreground = binary_foreground(values)
    samples = []
    for raw, stored in pairs:
        image, mask, _ = to_unit_image(raw, class_indices(stored, foreground), spec)
        samples.append((image, np.asarray(mask).astype(np.uint8)))
    if not samples:
        raise ValueError(
            f"{data_dir}: no image/mask pairs found (expected images/ and masks/, or an MSD / nnU-Net "
            "imagesTr/ and labelsTr/, with matching stems)"
        )
    return samples
