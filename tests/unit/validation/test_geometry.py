"""Volume cases through build_metadata + validate_metadata: grid columns, geometry failures, real MRI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from components.data.discovery import discover
from components.io import Geometry, write_volume
from components.validation import build_metadata, format_failures, validate_metadata

RNG = np.random.default_rng(11)
SHAPE = (4, 5, 6)
ISO = Geometry((1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))


def _geom(**kw: tuple[float, ...]) -> Geometry:
    return Geometry(
        kw.get("spacing", ISO.spacing), kw.get("origin", ISO.origin), kw.get("direction", ISO.direction)
    )


def _case(
    root: Path, case: str, mask_geom: Geometry = ISO, mask_shape: tuple[int, ...] = SHAPE, **extra: Geometry
) -> None:
    """One volume case; ``extra`` adds channel files ``<case>_0001`` ... with the given geometry."""
    image = RNG.normal(100.0, 20.0, SHAPE).astype(np.float32)
    mask = np.zeros(mask_shape, np.uint8)
    mask[1:3, 1:4, 2:5] = 1
    if extra:
        write_volume(root / "images" / f"{case}_0000.nii.gz", image, ISO)
        for k, geom in enumerate(extra.values(), start=1):
            write_volume(root / "images" / f"{case}_{k:04d}.nii.gz", image + k, geom)
    else:
        write_volume(root / "images" / f"{case}.nii.gz", image, ISO)
    write_volume(root / "masks" / f"{case}.nii.gz", mask, mask_geom)


def test_grid_columns_of_volume_multichannel_and_2d_cases(tmp_path: Path, mixed_dataset: Path) -> None:
    vol = tmp_path / "volumes"
    _case(vol, "mc", ch1=ISO)
    _case(vol, "iso")
    _case(vol, "moved", mask_geom=_geom(origin=(0.0, 0.0, 0.5)))
    meta = build_metadata(discover(vol), [0, 1], root=vol).set_index("case_id")
    mc = meta.loc["mc"]
    assert mc["image_path"] == "images/mc_0000.nii.gz;images/mc_0001.nii.gz"
    assert (mc["channels"], mc["ndim"], mc["shape"], mc["spacing"]) == (2, 3, "4,5,6", "1.0,1.0,1.0")
    assert mc["geometry_ok"] is True and mc["geometry_error"] == "" and mc["size_match"] is True
    assert meta.loc["iso", "channels"] == 1 and meta.loc["iso", "mask_shape"] == "4,5,6"
    assert meta.loc["moved", "geometry_ok"] is False
    assert (
        meta.loc["moved", "geometry_error"]
        == "case moved: mask origin (0.0, 0.0, 0.5) != image origin (0.0, 0.0, 0.0)"
    )

    flat = build_metadata(discover(mixed_dataset), [0, 1, 2]).set_index("case_id")
    assert flat["ndim"].tolist() == [2] * 4 and flat["spacing"].tolist() == ["1.0,1.0"] * 4
    assert flat["shape"].tolist() == ["20,28"] * 4 and flat["channels"].tolist() == [1, 1, 3, 1]
    assert flat["geometry_ok"].tolist() == [True] * 4


def test_geometry_mismatches_fail_validation_naming_each_case(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _case(data, "good")
    _case(data, "shape_bad", mask_shape=(4, 5, 5))
    _case(data, "spacing_bad", mask_geom=_geom(spacing=(2.0, 1.0, 1.0)))
    _case(data, "direction_bad", mask_geom=_geom(direction=(-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)))
    _case(data, "chan_bad", ch1=_geom(spacing=(1.0, 1.0, 1.01)))
    meta = build_metadata(discover(data), [0, 1], root=data)
    outcome = validate_metadata(meta, [0, 1], tmp_path / "report")
    assert not outcome.success
    by_check = {f.expectation.split("[")[1].rstrip("]"): f for f in outcome.failures}
    assert set(by_check) == {"size_match", "geometry_match"}  # each problem reported once
    assert by_check["size_match"].files == ["images/shape_bad.nii.gz", "masks/shape_bad.nii.gz"]
    assert by_check["geometry_match"].files == [
        "images/chan_bad_0000.nii.gz;images/chan_bad_0001.nii.gz",
        "masks/chan_bad.nii.gz",
        "images/direction_bad.nii.gz",
        "masks/direction_bad.nii.gz",
        "images/spacing_bad.nii.gz",
        "masks/spacing_bad.nii.gz",
    ]
    text = format_failures(outcome.failures)
    for line in (
        "case shape_bad: mask shape (4, 5, 5) != image shape (4, 5, 6)",
        "case spacing_bad: mask spacing (2.0, 1.0, 1.0) != image spacing (1.0, 1.0, 1.0)",
        "case direction_bad: mask direction (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0) "
        "!= image direction (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)",
        "case chan_bad: channel 1 (images/chan_bad_0001.nii.gz) spacing (1.0, 1.0, 1.01) "
        "!= channel 0 spacing (1.0, 1.0, 1.0)",
    ):
        assert line in text, text
    assert "case good" not in text
    rows = meta.set_index("case_id")
    assert rows.loc["chan_bad", "image_readable"] is None  # readable files, not stacked: not "unreadable"
    assert rows.loc["shape_bad", "geometry_ok"] is True  # spacing etc. agree; the shape is size_match's


def test_real_hippocampus_mri_validates(shared_datasets: Path, tmp_path: Path) -> None:
    source = shared_datasets / "msd_hippocampus"
    data = tmp_path / "data"
    for sub in ("images", "masks"):
        (data / sub).mkdir(parents=True)
        for name in ("hippocampus_001", "hippocampus_003", "hippocampus_004", "hippocampus_006"):
            (data / sub / f"{name}.nii.gz").symlink_to(source / sub / f"{name}.nii.gz")
    meta = build_metadata(discover(data), [0, 1, 2], root=data)
    outcome = validate_metadata(meta, [0, 1, 2], tmp_path / "report", expected_channels=1)
    assert outcome.success, format_failures(outcome.failures)
    row = meta.set_index("case_id").loc["hippocampus_001"]
    assert (row["ndim"], row["shape"], row["spacing"], row["channels"]) == (3, "35,51,35", "1.0,1.0,1.0", 1)
    assert row["labels_present"] == "0,1,2" and row["geometry_ok"] is True


@pytest.mark.parametrize("bad", ["image", "mask"])
def test_an_unreadable_volume_leaves_geometry_unknown(tmp_path: Path, bad: str) -> None:
    _case(tmp_path, "a")
    (tmp_path / f"{bad}s" / "a.nii.gz").write_bytes(b"not gzip")
    row = build_metadata(discover(tmp_path), [0, 1]).iloc[0]
    assert row[f"{bad}_readable"] is False and row["geometry_ok"] is None and row["size_match"] is None
