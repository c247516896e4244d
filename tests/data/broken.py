"""Write small datasets (good and deliberately broken) into a folder, for validation tests.

``write_broken_dataset`` returns which file breaks which check, so tests can assert that every
offending file is named in the failure report.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SIZE = (24, 32)  # (H, W): small, so decoding and hashing stay instant


def _gray(rng: np.random.Generator, size: tuple[int, int] = SIZE) -> np.ndarray:
    return rng.integers(0, 256, size=size, dtype=np.uint8)


def _mask(
    rng: np.random.Generator, size: tuple[int, int] = SIZE, values: tuple[int, ...] = (0, 1)
) -> np.ndarray:
    return rng.choice(np.array(values, dtype=np.uint8), size=size)


def _save(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def write_good_cases(root: Path, n: int = 3, seed: int = 0, prefix: str = "good") -> list[str]:
    """Write ``n`` valid gray 8-bit PNG image/mask pairs (values {0, 1}); return their case ids."""
    rng = np.random.default_rng(seed)
    ids = [f"{prefix}_{i}" for i in range(n)]
    for case in ids:
        _save(root / "images" / f"{case}.png", _gray(rng))
        _save(root / "masks" / f"{case}.png", _mask(rng))
    return ids


def write_broken_dataset(root: Path, seed: int = 1) -> dict[str, list[str]]:
    """Write a dataset with one case per defect, plus three good cases.

    Defects: image without mask, mask without image, image/mask size mismatch, undeclared label
    value (7, with class values {0, 1}), unreadable (garbage bytes) image, unreadable (truncated)
    mask, RGB mask, two images with identical pixels.

    Args:
        root: Dataset folder (``images/`` and ``masks/`` are created).
        seed: Random seed for pixel content.

    Returns:
        Check name (as in ``components.validation.checks``) -> offending files, relative to
        ``root`` in POSIX style (the form ``build_metadata(..., root=root)`` reports).
    """
    rng = np.random.default_rng(seed)
    write_good_cases(root, n=3, seed=seed + 100)
    img, msk = root / "images", root / "masks"

    _save(img / "no_mask.png", _gray(rng))
    _save(msk / "no_image.png", _mask(rng))

    _save(img / "size_mismatch.png", _gray(rng))
    _save(msk / "size_mismatch.png", _mask(rng, size=(SIZE[0], SIZE[1] // 2)))

    _save(img / "bad_label.png", _gray(rng))
    _save(msk / "bad_label.png", _mask(rng, values=(0, 1, 7)))

    (img / "garbage.png").write_bytes(b"this is not a PNG file" * 4)
    _save(msk / "garbage.png", _mask(rng))

    _save(img / "truncated_mask.png", _gray(rng))
    _save(msk / "truncated_mask.png", _mask(rng))
    data = (msk / "truncated_mask.png").read_bytes()
    (msk / "truncated_mask.png").write_bytes(data[: len(data) // 2])

    _save(img / "rgb_mask.png", _gray(rng))
    colour = np.repeat(_mask(rng)[..., None], 3, axis=2)
    colour[..., 1] = 1 - colour[..., 1]  # colour-coded (a gray mask saved as RGB is read as gray)
    _save(msk / "rgb_mask.png", colour)

    dup = _gray(rng)
    for case in ("dup_a", "dup_b"):
        _save(img / f"{case}.png", dup)
        _save(msk / f"{case}.png", _mask(rng))

    return {
        "has_mask": ["images/no_mask.png"],
        "has_image": ["masks/no_image.png"],
        "size_match": ["images/size_mismatch.png", "masks/size_mismatch.png"],
        "mask_labels_declared": ["masks/bad_label.png"],
        "image_readable": ["images/garbage.png"],
        "mask_readable": ["masks/truncated_mask.png"],
        "mask_single_channel": ["masks/rgb_mask.png"],
        "no_duplicate_images": ["images/dup_a.png", "images/dup_b.png"],
    }
