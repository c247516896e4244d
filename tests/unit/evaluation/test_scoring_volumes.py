"""Scoring volumes: each case's own spacing gives distances in mm; multi-channel cases are read whole."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from components.evaluation.scoring import ScoringOptions, has_volumes, score_cases
from components.io.volumes import Geometry, write_volume


class ShiftedReference:
    """Predicts the reference moved by one voxel along axis 0 (and records what it was given)."""

    def __init__(self, ref: np.ndarray) -> None:
        self.ref = ref
        self.seen: list[tuple[tuple[int, ...], tuple[float, ...] | None]] = []

    def predict_proba(self, image: np.ndarray, spacing: Sequence[float] | None = None) -> np.ndarray:
        self.seen.append((image.shape, None if spacing is None else tuple(spacing)))
        shifted = np.roll(self.ref, 1, axis=0)
        return np.stack([(shifted == 0), (shifted == 1)]).astype(np.float32)


def _case(root: Path, channels: int) -> tuple[pd.DataFrame, np.ndarray]:
    geometry = Geometry((2.0, 1.0, 1.0), (5.0, -3.0, 1.0), (1, 0, 0, 0, -1, 0, 0, 0, 1))
    ref = np.zeros((10, 12, 12), np.uint8)
    ref[3:7, 3:9, 3:9] = 1
    names = [f"c_{k:04d}.nii.gz" for k in range(channels)]
    for name in names:
        write_volume(root / "images" / name, (ref * 100).astype(np.int16), geometry)
    write_volume(root / "masks/c.nii.gz", ref, geometry)
    row = {
        "case_id": "c",
        "image_path": ";".join(f"images/{n}" for n in names),
        "mask_path": "masks/c.nii.gz",
        "ndim": 3,
    }
    return pd.DataFrame([row]), ref


def test_distances_use_the_volume_spacing(tmp_path: Path) -> None:
    cases, ref = _case(tmp_path, channels=2)
    model = ShiftedReference(ref)
    scored = score_cases(model, cases, tmp_path, ScoringOptions(["background", "organ"], worst_cases=1))
    assert model.seen == [((2, 10, 12, 12), (2.0, 1.0, 1.0))]  # channels first, spacing in array order
    row = scored.per_case.iloc[0]
    assert row["hd"] == 2.0  # one voxel along the 2 mm axis
    assert scored.worst[0]["image"].ndim == 2  # the gallery shows a slice
    assert has_volumes(cases)


def test_evaluate_spacing_overrides_the_files(tmp_path: Path) -> None:
    cases, ref = _case(tmp_path, channels=1)
    opts = ScoringOptions(["background", "organ"], spacing=(1.0, 1.0, 1.0), worst_cases=0)
    assert score_cases(ShiftedReference(ref), cases, tmp_path, opts).per_case.iloc[0]["hd"] == 1.0
