"""The prepared-case store: one ``.npz`` per case, written by preprocess and read by training."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from components.core.layout import case_arrays


def save_case(prepared_dir: Path, case_id: str, image: np.ndarray, mask: np.ndarray) -> None:
    """Cache one preprocessed case (image float32 (h, w, C) in [0, 1], mask uint8 (h, w))."""
    path = case_arrays(prepared_dir, case_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, image=image.astype(np.float32), mask=mask.astype(np.uint8))


def load_case(prepared_dir: Path, case_id: str) -> tuple[np.ndarray, np.ndarray]:
    """Read one cached case: (image (h, w, C) float32, mask (h, w) uint8)."""
    with np.load(case_arrays(prepared_dir, case_id)) as z:
        return z["image"], z["mask"]
