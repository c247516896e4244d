"""`segflow metrics --regions`: base / middle / apex thirds for 3D NIfTI cases."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from typer.testing import CliRunner

from flows.cli import app


def _nifti(path: Path, zyx: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(np.transpose(zyx, (2, 1, 0)).astype(np.uint8), np.diag([0.8, 0.8, 2.0, 1.0]))
    nib.save(img, path)


def test_regions_rows_and_tables(tmp_path: Path) -> None:
    ref = np.zeros((12, 20, 20), np.uint8)
    ref[0:12, 5:15, 5:15] = 1
    pred = ref.copy()
    pred[8:12] = 0  # the apex third (slices 8..11) is missed entirely
    _nifti(tmp_path / "ref" / "c1.nii.gz", ref)
    _nifti(tmp_path / "pred" / "c1.nii.gz", pred)
    out = tmp_path / "pc.csv"

    res = CliRunner().invoke(
        app,
        [
            "metrics",
            "--pred",
            str(tmp_path / "pred"),
            "--ref",
            str(tmp_path / "ref"),
            "--out",
            str(out),
            "--regions",
        ],
    )

    assert res.exit_code == 0, res.output
    df = pd.read_csv(out).set_index("region")
    assert list(df.index) == ["all", "base", "middle", "apex"]
    assert df.loc["base", "dice"] == 1.0 and df.loc["middle", "dice"] == 1.0
    assert df.loc["apex", "dice"] == 0.0 and df.loc["apex", "empty"] == "pred"
    assert np.isclose(df.loc["all", "dice"], 2 * 8 / (8 + 12))
    assert "apex third" in res.output and "base third" in res.output
