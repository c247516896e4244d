"""The validation suite on broken volume sets: NaN/Inf voxels, one-slice volumes, fix hints that fit
NIfTI rather than PNG, masks holding thousands of values (a short observation)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from components.data.discovery import discover
from components.validation import build_metadata, format_failures, validate_metadata
from components.validation.checks import build_checks
from components.validation.fix_hints import HINTS, file_kinds, fix_hint
from tests.data.broken import write_good_cases
from tests.data.broken3d import (
    CLASSES,
    good_volumes,
    image_as_mask,
    mask_4d,
    nan_inf,
    one_voxel_thin,
    truncated_gz,
)

VALUES = sorted(CLASSES.values())


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("good3d") / "data"
    good_volumes(root)  # case_000 .. case_005
    return root


def _broken(good: Path, tmp_path: Path, *builders: object) -> Path:
    data = tmp_path / "data"
    shutil.copytree(good, data)
    for build in builders:
        build(data)  # type: ignore[operator]
    return data


def _failures(data: Path, report: Path) -> str:
    meta = build_metadata(discover(data), VALUES, root=data)
    outcome = validate_metadata(meta, VALUES, report, expected_channels=1)
    assert not outcome.success
    return format_failures(outcome.failures)


def test_nan_and_inf_voxels_in_nifti_volumes_fail_image_finite(good: Path, tmp_path: Path) -> None:
    """SimpleITK read them as 0 and the set passed; the reader puts them back, image_finite refuses."""
    data = _broken(good, tmp_path, nan_inf)
    meta = build_metadata(discover(data), VALUES, root=data)
    finite = dict(zip(meta["case_id"], meta["intensity_finite"], strict=True))
    assert finite == {f"case_{i:03d}": i not in (1, 2) for i in range(6)}
    text = _failures(data, tmp_path / "report")
    assert "[image_finite]" in text and "images/case_001.nii.gz" in text and "images/case_002.nii.gz" in text


def test_broken_volumes_get_volume_hints(good: Path, tmp_path: Path) -> None:
    """A truncated NIfTI, a 4D mask and a mask holding the image: the fixes speak of volumes."""
    data = _broken(good, tmp_path, truncated_gz, mask_4d, image_as_mask)
    text = _failures(data, tmp_path / "report")
    assert "[image_readable]" in text and "images/case_001.nii.gz" in text and "truncated: expected" in text
    assert HINTS["image_readable"][1] in text and "PNG/TIFF" not in text
    assert "[mask_single_channel]" in text and "not 4D or vector volumes" in text and "RGB" not in text
    assert "masks/case_004.nii.gz  (2 channels)" in text
    # the mask holding the image's int16 intensities: hundreds of values, shown as a dozen and a count
    line = next(ln for ln in text.splitlines() if "masks/case_005.nii.gz" in ln and "distinct values" in ln)
    assert "(a class-index mask holds a few)" in line and len(line) < 200


def test_a_one_slice_volume_fails_volume_not_flat(good: Path, tmp_path: Path) -> None:
    meta = build_metadata(discover(good), VALUES, root=good)
    assert "volume_not_flat" not in {c.name for c in build_checks(meta, VALUES)}  # listed only when needed
    data = _broken(good, tmp_path, one_voxel_thin)
    text = _failures(data, tmp_path / "report")
    assert "[volume_not_flat]" in text and "images/case_005.nii.gz" in text and "1 voxel along z" in text
    assert "single slice" in text


def test_fix_hints_follow_the_file_kinds(good: Path, tmp_path: Path) -> None:
    meta = build_metadata(discover(good), VALUES, root=good)
    assert file_kinds(meta) == {"volume"}
    flat = tmp_path / "flat"
    write_good_cases(flat, n=2)
    flat_meta = build_metadata(discover(flat), [0, 1], root=flat)
    assert file_kinds(flat_meta) == {"2d"}
    assert fix_hint({"2d"}, "mask_single_channel").endswith("not RGB colour masks")
    assert fix_hint({"volume"}, "has_mask").startswith("add masks/<stem>.nii.gz")
    both = fix_hint(file_kinds(pd.concat([meta, flat_meta])), "image_readable")
    assert (
        both.startswith("2D images: re-export the image as PNG/TIFF") and "; volumes: copy the volume" in both
    )
    checks = {c.name: c.fix for c in build_checks(meta, VALUES)}
    assert checks["image_readable"] == HINTS["image_readable"][1]
    assert checks["mask_readable"] == HINTS["mask_readable"][1]
