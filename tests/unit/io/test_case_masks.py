"""A case's mask as class indices: binary 0 / v files read with v as class 1, others as stored."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from components.io import write_volume
from components.io.case_masks import class_indices, mask_foreground, read_case_mask
from components.io.volumes import Geometry


@pytest.mark.parametrize("value", [None, float("nan"), pd.NA])
def test_a_row_without_a_foreground_value_reads_the_mask_as_stored(value: object) -> None:
    assert mask_foreground(SimpleNamespace(mask_foreground=value)) is None
    assert mask_foreground(SimpleNamespace()) is None  # a manifest written before the column existed


def test_the_foreground_value_is_read_as_1_and_nothing_else_changes() -> None:
    mask = np.array([[0, 255], [255, 0]], np.uint8)
    assert class_indices(mask, 255).tolist() == [[0, 1], [1, 0]]
    assert class_indices(mask, None) is mask
    assert mask.max() == 255  # not in place


def test_read_case_mask_maps_2d_files_and_volumes(tmp_path: Path) -> None:
    Image.fromarray(np.array([[0, 255], [255, 255]], np.uint8)).save(tmp_path / "a.png")
    volume = np.zeros((2, 3, 4), np.float32)
    volume[1] = 7.0  # a float label file holding whole numbers
    write_volume(tmp_path / "b.nii.gz", volume, Geometry.identity(3))
    flat = read_case_mask(tmp_path, SimpleNamespace(mask_path="a.png", mask_foreground=255))
    assert flat.tolist() == [[0, 1], [1, 1]]
    vol = read_case_mask(tmp_path, SimpleNamespace(mask_path="b.nii.gz", mask_foreground=np.int64(7)))
    assert vol.shape == (2, 3, 4) and np.issubdtype(vol.dtype, np.integer)
    assert vol[1].tolist() == np.ones((3, 4), int).tolist() and not vol[0].any()
    as_stored = read_case_mask(tmp_path, SimpleNamespace(mask_path="b.nii.gz", mask_foreground=None))
    assert int(as_stored.max()) == 7
