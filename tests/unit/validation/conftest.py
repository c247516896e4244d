"""Fixtures for validation tests: small generated datasets and the shared real datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

REPO = Path(__file__).resolve().parents[3]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"


@pytest.fixture
def mixed_dataset(tmp_path: Path) -> Path:
    """Four valid cases in mixed formats (class values {0, 1, 2}).

    - ``a``: gray 8-bit PNG image, gray PNG mask
    - ``b``: gray 16-bit TIFF image, TIFF mask
    - ``c``: RGB JPG image, palette PNG mask
    - ``d``: gray 8-bit PNG image, palette PNG mask
    """
    rng = np.random.default_rng(42)
    img, msk = tmp_path / "images", tmp_path / "masks"
    img.mkdir()
    msk.mkdir()
    h, w = 20, 28

    def mask() -> np.ndarray:
        m = np.zeros((h, w), np.uint8)
        m[2:8, 3:10] = 1
        m[10:14, 12:20] = 2
        return m

    Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8)).save(img / "a.png")
    Image.fromarray(mask()).save(msk / "a.png")

    tifffile.imwrite(img / "b.tif", rng.integers(0, 65536, (h, w), dtype=np.uint16))
    tifffile.imwrite(msk / "b.tif", mask())

    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(img / "c.jpg", quality=95)
    pal = Image.fromarray(mask()).convert("P")
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 9))
    pal.save(msk / "c.png")

    Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8)).save(img / "d.png")
    pal.save(msk / "d.png")
    return tmp_path


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """The read-only real datasets (../shared/datasets relative to the repo); skip if absent."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"{SHARED_DATASETS} not available")
    return SHARED_DATASETS
