"""The augmentation preview reads masks as validate does: binary 0 / 255 masks show class 1."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from components.preprocessing.pipeline import PreprocessSpec
from components.preprocessing.preview import load_samples


def _folder(root: Path, values: tuple[int, ...]) -> Path:
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
    for i in range(2):
        Image.fromarray(np.full((16, 16), 90 + i, np.uint8)).save(root / "images" / f"c{i}.png")
        mask = np.zeros((16, 16), np.uint8)
        for k, v in enumerate(values):
            mask[k * 5 : k * 5 + 5] = v
        Image.fromarray(mask).save(root / "masks" / f"c{i}.png")
    return root


def test_binary_0_255_masks_preview_as_class_1_and_class_indices_as_stored(tmp_path: Path) -> None:
    spec = PreprocessSpec((16, 16), "resize", "minmax", {}, 1)
    binary = load_samples(_folder(tmp_path / "binary", (0, 255)), spec, 2)
    assert [sorted(np.unique(m).tolist()) for _, m in binary] == [[0, 1], [0, 1]]
    classes = load_samples(_folder(tmp_path / "classes", (0, 1, 2)), spec, 2)
    assert [sorted(np.unique(m).tolist()) for _, m in classes] == [[0, 1, 2], [0, 1, 2]]
