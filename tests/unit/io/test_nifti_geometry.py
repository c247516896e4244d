"""NIfTI headers whose grid SimpleITK would guess at are refused; predictions keep the input header."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from components.io import VolumeReadError, read_volume, write_volume
from components.io.nifti_geometry import nifti_geometry_problems
from tests.data.broken3d import edit_nifti_header

AFFINE = np.array([[0.8, 0.0, 0.0, 10.0], [0.0, 0.8, 0.0, 20.0], [0.0, 0.0, 3.0, 30.0], [0.0, 0.0, 0.0, 1.0]])
DATA = np.arange(6 * 5 * 4, dtype=np.int16).reshape(6, 5, 4)  # nibabel order (x, y, z)


def _good(path: Path) -> Path:
    image = nib.Nifti1Image(DATA, AFFINE)
    image.set_qform(AFFINE, code=1)
    image.set_sform(AFFINE, code=1)
    nib.save(image, str(path))
    return path


def _set(field: str, index: int | None, value: float) -> Callable[[nib.Nifti1Header], None]:
    def edit(h: nib.Nifti1Header) -> None:
        if index is None:
            h[field] = value
        else:
            h[field][index] = value

    return edit


CASES = {
    # what SimpleITK does without a word -> what the refusal says
    "pixdim NaN (ITK: 1 mm)": (_set("pixdim", 1, np.nan), r"voxel size \(pixdim\) \(nan, "),
    "pixdim 0 (ITK: 1 mm)": (_set("pixdim", 3, 0.0), r"voxel size \(pixdim\) .* 0\.0\)"),
    "pixdim negative (ITK: flips y)": (_set("pixdim", 2, -0.8), r"-0\.8.*expected positive voxel sizes"),
    "sform NaN (ITK: NaN direction)": (
        _set("srow_x", 0, np.nan),
        r"sform \(code 1 \(scanner\)\) holds NaN/Inf",
    ),
    "quaternion NaN": (_set("quatern_b", None, np.nan), r"qform \(code 1 \(scanner\)\) holds NaN/Inf"),
    "qform and sform 10 mm apart (ITK: the sform)": (
        _set("srow_y", 3, 30.0),
        r"qform \(code 1 \(scanner\)\) and sform .*corners up to 10 mm apart.*make them agree",
    ),
    "sheared sform (ITK: the qform)": (_set("srow_x", 1, 0.4), r"sform \(code 1 \(scanner\)\) is sheared"),
    "sform scale differs from pixdim (ITK: pixdim)": (
        _set("srow_x", 0, 1.6),
        r"sform .* voxel sizes \(1\.6, 0\.8, 3\.0\) differ from pixdim \(0\.8, 0\.8, 3\.0\)",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_header_readers_would_guess_at_is_refused(tmp_path: Path, name: str) -> None:
    edit, message = CASES[name]
    path = _good(tmp_path / "v.nii.gz")
    edit_nifti_header(path, edit)
    with pytest.raises(VolumeReadError, match=message) as info:
        read_volume(path)
    assert str(info.value).startswith(f"{path}: ")


def test_a_good_header_and_one_without_codes_pass(tmp_path: Path) -> None:
    path = _good(tmp_path / "v.nii.gz")
    assert nifti_geometry_problems(path) == []
    edit_nifti_header(path, lambda h: (_set("qform_code", None, 0)(h), _set("sform_code", None, 0)(h)))
    assert nifti_geometry_problems(path) == []  # ANALYZE-style: pixdim only, as NIfTI allows
    arr, geometry = read_volume(path)
    assert arr.shape == (4, 5, 6) and geometry.spacing == pytest.approx((3.0, 0.8, 0.8))


def test_the_msd_hippocampus_headers_pass(tmp_path: Path) -> None:
    """Real data: no false refusals on the 520 MSD Task04 files (skipped without the dataset)."""
    root = Path("/work/shared/datasets/msd_hippocampus")
    files = sorted(root.glob("*/*.nii.gz"))
    if not files:
        pytest.skip("MSD hippocampus not on this machine")
    assert [f for f in files if nifti_geometry_problems(f)] == []


def test_a_nifti_prediction_keeps_the_inputs_header_codes_and_units(tmp_path: Path) -> None:
    """SimpleITK writes qform/sform codes 1/1 and mm; with the input as reference they stay 0/2 and um."""
    rot = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([0.8, 0.9, 3.0])
    affine[:3, 3] = (10.0, 20.0, 30.0)
    image = nib.Nifti1Image(DATA.astype(np.float32), affine)
    image.set_qform(affine, code=0)
    image.set_sform(affine, code=2)
    image.header.set_xyzt_units("mm", "msec")
    src = tmp_path / "in.nii.gz"
    nib.save(image, str(src))
    arr, geometry = read_volume(src)
    labels = (arr > 50).astype(np.uint8)

    kept, plain = tmp_path / "kept.nii.gz", tmp_path / "plain.nii.gz"
    write_volume(kept, labels, geometry, reference=src)
    write_volume(plain, labels, geometry)
    head = nib.load(str(kept)).header
    assert (int(head["qform_code"]), int(head["sform_code"])) == (0, 2)
    assert head.get_xyzt_units() == ("mm", "msec") and head.get_data_dtype() == np.uint8
    assert (
        int(nib.load(str(plain)).header["qform_code"]),
        int(nib.load(str(plain)).header["sform_code"]),
    ) == (1, 1)
    back, back_geometry = read_volume(kept)
    np.testing.assert_array_equal(back, labels)
    for field in ("spacing", "origin", "direction"):
        np.testing.assert_allclose(getattr(back_geometry, field), getattr(geometry, field), atol=1e-6)
    np.testing.assert_allclose(nib.load(str(kept)).affine, affine, atol=1e-5)
    assert [p.name for p in sorted(tmp_path.iterdir())] == ["in.nii.gz", "kept.nii.gz", "plain.nii.gz"]


def test_a_reference_on_another_grid_or_format_falls_back_to_simpleitk(tmp_path: Path) -> None:
    src = _good(tmp_path / "in.nii.gz")
    arr, geometry = read_volume(src)
    other = tmp_path / "other.nii.gz"
    write_volume(other, arr[:-1], geometry, reference=src)  # a different shape: not the reference's header
    assert nib.load(str(other)).shape == (6, 5, 3)
    nrrd = tmp_path / "in.nrrd"
    sitk.WriteImage(sitk.ReadImage(str(src)), str(nrrd))
    out = tmp_path / "out.nii.gz"
    write_volume(out, arr, geometry, reference=nrrd)
    np.testing.assert_allclose(nib.load(str(out)).affine, nib.load(str(src)).affine, atol=1e-5)
