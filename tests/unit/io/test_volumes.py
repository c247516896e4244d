"""Volumes on real files: NIfTI/NRRD/MHA round trips keep the geometry, 4D and per-channel cases."""

from __future__ import annotations

import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from components.io import (
    IMAGE_PATHS_SEP,
    IMAGE_SUFFIXES,
    MASK_SUFFIXES,
    ChannelGridError,
    Geometry,
    ImageReadError,
    VolumeReadError,
    file_stem,
    grid_mismatches,
    is_volume,
    join_image_paths,
    read_case_channels,
    read_case_image,
    read_channels_first,
    read_image,
    read_mask,
    read_volume,
    read_volume_header,
    read_with_geometry,
    read_with_spacing,
    split_image_paths,
    write_volume,
)

RNG = np.random.default_rng(3)
_C, _S = np.cos(np.pi / 6), np.sin(np.pi / 6)
# anisotropic spacing (array order Z, Y, X), an origin away from 0, a rotation about z
GEOM = Geometry((2.5, 0.7, 0.5), (10.0, -20.0, 30.5), (_C, -_S, 0.0, _S, _C, 0.0, 0.0, 0.0, 1.0))


def _assert_geometry_close(a: Geometry, b: Geometry) -> None:
    for field in ("spacing", "origin", "direction"):
        np.testing.assert_allclose(getattr(a, field), getattr(b, field), atol=1e-5, err_msg=field)


def test_nifti_round_trip_keeps_the_affine(tmp_path: Path) -> None:
    xyz = RNG.integers(-100, 1000, (6, 5, 4)).astype(np.int16)  # nibabel order (X, Y, Z)
    rot = np.array([[_C, -_S, 0.0], [_S, _C, 0.0], [0.0, 0.0, 1.0]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([0.5, 0.7, 2.5])
    affine[:3, 3] = (-10.0, 20.0, 30.5)  # RAS; ITK's LPS origin is (10, -20, 30.5)
    src = tmp_path / "src.nii.gz"
    nib.save(nib.Nifti1Image(xyz, affine), str(src))

    arr, geom = read_volume(src)
    assert arr.shape == (4, 5, 6) and geom.spacing == pytest.approx((2.5, 0.7, 0.5))
    np.testing.assert_array_equal(arr, np.transpose(xyz, (2, 1, 0)))
    lps = np.diag([-1.0, -1.0, 1.0])  # NIfTI stores RAS, ITK gives LPS
    _assert_geometry_close(geom, Geometry(GEOM.spacing, GEOM.origin, tuple((lps @ rot).ravel())))
    out = tmp_path / "out.nii.gz"
    write_volume(out, arr, geom)
    np.testing.assert_allclose(nib.load(str(out)).affine, nib.load(str(src)).affine, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(nib.load(str(out)).dataobj), xyz)


@pytest.mark.parametrize("suffix", [".nrrd", ".mha", ".nii"])
def test_nrrd_mha_round_trip_keeps_voxels_and_geometry(tmp_path: Path, suffix: str) -> None:
    arr = RNG.normal(size=(3, 4, 5)).astype(np.float32)
    path = tmp_path / f"v{suffix}"
    write_volume(path, arr, GEOM)
    back, geom = read_volume(path)
    np.testing.assert_array_equal(back, arr)
    _assert_geometry_close(geom, GEOM)
    shape, header_geom = read_volume_header(path)
    assert shape == (3, 4, 5)
    _assert_geometry_close(header_geom, GEOM)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left
    # the image readers go through the same reader
    image, spacing = read_with_spacing(path)
    np.testing.assert_array_equal(image, arr)
    assert spacing == pytest.approx(GEOM.spacing)
    assert read_with_geometry(path)[1] == geom


def test_a_4d_file_and_a_vector_file_come_back_channels_first(tmp_path: Path) -> None:
    czyx = RNG.integers(0, 100, (2, 3, 4, 5)).astype(np.int16)
    sitk.WriteImage(sitk.GetImageFromArray(czyx, isVector=False), str(tmp_path / "t.nii.gz"))  # 4D scalar
    sitk.WriteImage(sitk.GetImageFromArray(np.moveaxis(czyx, 0, -1), isVector=True), str(tmp_path / "v.mha"))
    for name in ("t.nii.gz", "v.mha"):
        path = tmp_path / name
        assert read_volume_header(path)[0] == (2, 3, 4, 5)
        arr, geom = read_case_image([path])
        assert arr.shape == (2, 3, 4, 5) and geom.ndim == 3, name
        np.testing.assert_array_equal(arr, czyx)
        np.testing.assert_array_equal(read_image(path), czyx)


def test_channel_files_are_stacked_and_must_share_one_grid(tmp_path: Path) -> None:
    a, b = (RNG.integers(0, 9, (3, 4, 5)).astype(np.uint8) for _ in range(2))
    write_volume(tmp_path / "c_0000.nii.gz", a, GEOM)
    write_volume(tmp_path / "c_0001.nrrd", b, GEOM)
    files = [tmp_path / "c_0000.nii.gz", tmp_path / "c_0001.nrrd"]
    arr, geom = read_case_image(files)
    assert arr.shape == (2, 3, 4, 5)
    np.testing.assert_array_equal(arr, np.stack([a, b]))
    _assert_geometry_close(geom, GEOM)
    np.testing.assert_array_equal(read_case_channels(files)[0], arr)

    coarse = Geometry((2.5, 0.7, 1.0), GEOM.origin, GEOM.direction)
    write_volume(tmp_path / "c_0001.nrrd", b, coarse)
    with pytest.raises(
        ChannelGridError, match=r"c_0001\.nrrd.*channel 1 spacing \(2\.5, 0\.7, 1\.0\)"
    ) as err:
        read_case_image(files)
    assert isinstance(err.value, VolumeReadError) and err.value.channel == 1
    assert [m.field for m in err.value.mismatches] == ["spacing"]

    write_volume(tmp_path / "c_0001.nrrd", b[:, :, :4], GEOM)
    with pytest.raises(ChannelGridError, match=r"channel 1 shape \(3, 4, 4\) != channel 0 shape \(3, 4, 5\)"):
        read_case_image(files)


def test_read_case_image_refuses_2d_files_and_read_case_channels_reads_them(tmp_path: Path) -> None:
    from PIL import Image

    rgb = RNG.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "x.png")
    with pytest.raises(VolumeReadError, match="not a volume file"):
        read_case_image([tmp_path / "x.png"])
    arr, geom = read_case_channels([tmp_path / "x.png"])
    assert arr.shape == (3, 6, 7) and geom == Geometry.identity(2)
    np.testing.assert_array_equal(arr, np.moveaxis(rgb, -1, 0))
    assert read_channels_first(tmp_path / "x.png")[0].shape == (3, 6, 7)


def test_grid_mismatch_tolerances() -> None:
    shape = (3, 4, 5)
    near = Geometry(
        tuple(s * (1 + 5e-4) for s in GEOM.spacing),
        tuple(o + 5e-4 for o in GEOM.origin),
        tuple(d + 5e-5 for d in GEOM.direction),
    )
    assert grid_mismatches(shape, near, shape, GEOM) == []
    far = Geometry(
        tuple(s * (1 + 2e-3) for s in GEOM.spacing),
        tuple(o + 2e-3 for o in GEOM.origin),
        tuple(d + 2e-4 for d in GEOM.direction),
    )
    assert [m.field for m in grid_mismatches((3, 4, 6), far, shape, GEOM)] == list(
        ("shape", "spacing", "origin", "direction")
    )
    assert [m.field for m in grid_mismatches(shape, far, shape, GEOM, fields=("origin",))] == ["origin"]
    assert [m.field for m in grid_mismatches((4, 5), Geometry.identity(2), shape, GEOM)][:2] == [
        "shape",
        "spacing",
    ]
    with pytest.raises(ValueError, match="unknown grid fields"):
        grid_mismatches(shape, GEOM, shape, GEOM, fields=("affine",))


def test_a_volume_header_claiming_an_absurd_size_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "bomb.nrrd"
    path.write_text("NRRD0004\ntype: uint8\ndimension: 3\nsizes: 5000 4000 3000\nencoding: raw\n\n")
    with pytest.raises(VolumeReadError, match=re.escape("(3000, 4000, 5000)") + ".*over the limit"):
        read_volume(path)
    with pytest.raises(ImageReadError, match=r"bomb\.nrrd: cannot be read as an image.*over the limit"):
        read_mask(path)


def test_suffixes_stems_and_image_path_fields() -> None:
    for suffix in (".nrrd", ".mha", ".nii.gz"):
        assert suffix in IMAGE_SUFFIXES and suffix in MASK_SUFFIXES
    assert file_stem(Path("a/case_0000.nii.gz")) == "case_0000"
    assert file_stem(Path("b.NRRD")) == "b" and file_stem(Path("c.v2.mha")) == "c.v2"
    assert is_volume(Path("x.MHA")) and is_volume(Path("x.nii")) and not is_volume(Path("x.png"))
    field = join_image_paths(["images/c_0000.nii.gz", "images/c_0001.nii.gz"])
    assert field == "images/c_0000.nii.gz;images/c_0001.nii.gz" and IMAGE_PATHS_SEP == ";"
    assert split_image_paths(field) == ["images/c_0000.nii.gz", "images/c_0001.nii.gz"]
    assert split_image_paths("images/a.png") == ["images/a.png"]
    with pytest.raises(ValueError, match="must not contain"):
        join_image_paths(["a;b.png"])


def test_a_volume_mask_keeps_a_one_voxel_wide_axis(tmp_path: Path) -> None:
    m = RNG.integers(0, 3, (4, 5, 1)).astype(np.uint8)  # X = 1: not a channel axis
    write_volume(tmp_path / "m.nii.gz", m, Geometry.identity(3))
    assert read_mask(tmp_path / "m.nii.gz").shape == (4, 5, 1)
