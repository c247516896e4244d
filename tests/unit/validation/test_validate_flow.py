"""The validate stage's task: fingerprint and manifest only after the suite passed, nothing on failure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from components.core import layout
from components.io import Geometry, write_volume
from components.validation import DatasetValidationError


def test_fingerprint_and_manifest_are_written_only_when_the_suite_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.validate import check_dataset

    monkeypatch.chdir(tmp_path)  # the layout's paths are relative to the project root
    data = tmp_path / "data"
    geom = Geometry.identity(3, (2.0, 1.0, 1.0))
    rng = np.random.default_rng(0)
    for case in ("a", "b"):
        mask = np.zeros((3, 4, 5), np.uint8)
        mask[1, 1:3, 1:4] = 1
        write_volume(data / "images" / f"{case}.nii.gz", rng.normal(size=(3, 4, 5)).astype(np.float32), geom)
        write_volume(data / "masks" / f"{case}.nii.gz", mask, geom if case == "a" else Geometry.identity(3))

    with pytest.raises(DatasetValidationError, match=r"case b: mask spacing \(1\.0, 1\.0, 1\.0\) != image"):
        check_dataset.fn(str(data), {"background": 0, "fg": 1}, 1)
    assert not layout.FINGERPRINT.exists() and not layout.MANIFEST.exists()

    write_volume(data / "masks" / "b.nii.gz", mask, geom)
    assert check_dataset.fn(str(data), {"background": 0, "fg": 1}, 1) == str(layout.MANIFEST)
    fp = json.loads(layout.FINGERPRINT.read_text())
    assert fp["n_cases"] == 2 and fp["spacing"]["median"] == [2.0, 1.0, 1.0] and fp["coarsest_axis"] == 0
    assert fp["class_fractions"]["fg"] == pytest.approx(6 / 60)
    assert layout.MANIFEST.is_file()
