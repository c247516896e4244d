"""Image/mask readers and writers on real files: PNG, TIFF, NIfTI, errors, mask round trip."""

from __future__ import annotations

import re
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import tifffile
from PIL import Image

from components.io import (
    ImageReadError,
    file_stem,
    is_nifti,
    read_image,
    read_mask,
    read_mask_channels_first,
    read_with_spacing,
    write_mask,
)

RNG = np.random.default_rng(7)


def test_png_gray_8_bit(tmp_path: Path) -> None:
    a = RNG.integers(0, 256, (13, 17), dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "g8.png")
    out, spacing = read_with_spacing(tmp_path / "g8.png")
    assert out.dtype == np.uint8 and out.shape == (13, 17)
    np.testing.assert_array_equal(out, a)
    assert spacing == (1.0, 1.0)


def test_png_gray_16_bit_keeps_full_range(tmp_path: Path) -> None:
    a = RNG.integers(0, 65536, (13, 17), dtype=np.uint16)
    a[0, 0], a[0, 1] = 0, 65535
    Image.fromarray(a).save(tmp_path / "g16.png")
    out = read_image(tmp_path / "g16.png")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, a)


def test_png_rgb(tmp_path: Path) -> None:
    a = RNG.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "rgb.png")
    out, spacing = read_with_spacing(tmp_path / "rgb.png")
    np.testing.assert_array_equal(out, a)
    assert spacing == (1.0, 1.0)


def test_palette_png_keeps_the_indices_not_the_colours(tmp_path: Path) -> None:
    labels = np.zeros((10, 12), np.uint8)
    labels[2:5, 3:8] = 1
    labels[6:9, 1:4] = 2
    im = Image.fromarray(labels).convert("P")
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 9))
    im.save(tmp_path / "pal.png")
    assert Image.open(tmp_path / "pal.png").mode == "P"
    mask = read_mask(tmp_path / "pal.png")
    assert mask.shape == (10, 12)
    np.testing.assert_array_equal(mask, labels)


def test_rgba_becomes_rgb(tmp_path: Path) -> None:
    rgb = RNG.integers(0, 256, (8, 10, 3), dtype=np.uint8)
    alpha = RNG.integers(0, 256, (8, 10, 1), dtype=np.uint8)
    Image.fromarray(np.concatenate([rgb, alpha], -1), mode="RGBA").save(tmp_path / "rgba.png")
    out = read_image(tmp_path / "rgba.png")
    assert out.shape == (8, 10, 3)
    np.testing.assert_array_equal(out, rgb)  # alpha dropped, colours not premultiplied


def test_gray_alpha_becomes_gray(tmp_path: Path) -> None:
    g = RNG.integers(0, 256, (8, 10), dtype=np.uint8)
    la = np.stack([g, np.full_like(g, 128)], -1)
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    out = read_image(tmp_path / "la.png")
    np.testing.assert_array_equal(out, g)


def test_tiff_gray_16_bit_and_planar_rgb(tmp_path: Path) -> None:
    g = RNG.integers(0, 65536, (12, 14), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "g.tif", g)
    np.testing.assert_array_equal(read_image(tmp_path / "g.tif"), g)

    rgb = RNG.integers(0, 256, (12, 14, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "planar.tiff", np.moveaxis(rgb, -1, 0), planarconfig="separate")
    out = read_image(tmp_path / "planar.tiff")
    assert out.shape == (12, 14, 3)  # (C, H, W) on disk -> (H, W, C)
    np.testing.assert_array_equal(out, rgb)

    tifffile.imwrite(tmp_path / "contig.tif", rgb)
    np.testing.assert_array_equal(read_image(tmp_path / "contig.tif"), rgb)


def test_tiff_mask_with_channel_axis_is_squeezed(tmp_path: Path) -> None:
    m = RNG.integers(0, 3, (6, 7, 1), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "m.tif", m, photometric="minisblack")
    out = read_mask(tmp_path / "m.tif")
    assert out.shape == (6, 7)
    np.testing.assert_array_equal(out, m[..., 0])


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_nifti_is_z_y_x_with_matching_spacing(tmp_path: Path, suffix: str) -> None:
    xyz = RNG.integers(0, 1000, (4, 5, 6)).astype(np.int16)  # nibabel order (X, Y, Z)
    path = tmp_path / f"vol{suffix}"
    nib.save(nib.Nifti1Image(xyz, np.diag([0.5, 0.7, 2.5, 1.0])), str(path))
    arr, spacing = read_with_spacing(path)
    assert arr.shape == (6, 5, 4)
    assert spacing == pytest.approx((2.5, 0.7, 0.5))  # (Z, Y, X), lined up with the array axes
    np.testing.assert_array_equal(arr, np.transpose(xyz, (2, 1, 0)))
    assert arr[3, 2, 1] == xyz[1, 2, 3]
    assert arr.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(read_mask(path), arr)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("missing.png", None),
        ("empty.png", b""),
        ("garbage.png", b"this is not an image"),
        ("garbage.tif", b"II*\x00junk"),
        ("garbage.nii.gz", b"not gzip"),
        ("missing.nii", None),
    ],
)
def test_unreadable_file_is_an_image_read_error_naming_the_file(
    tmp_path: Path, name: str, content: bytes | None
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageReadError, match=r"cannot be read as an image|image has no pixels") as err:
        read_image(path)
    assert str(path) in str(err.value)
    assert isinstance(err.value, ValueError)


def test_write_mask_round_trip_uint8(tmp_path: Path) -> None:
    labels = RNG.integers(0, 4, (15, 9)).astype(np.int64)
    path = tmp_path / "sub" / "dir" / "m.png"  # parents are created
    write_mask(path, labels)
    with Image.open(path) as im:
        assert im.mode == "L"
    out = read_mask(path)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, labels)


def test_write_mask_above_255_classes_is_16_bit(tmp_path: Path) -> None:
    labels = np.array([[0, 1, 300], [255, 256, 1000]], dtype=np.int32)
    write_mask(tmp_path / "m.png", labels)
    out = read_mask(tmp_path / "m.png")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, labels)


def test_file_stem_and_is_nifti() -> None:
    assert file_stem(Path("a/case_01.nii.gz")) == "case_01"
    assert file_stem(Path("a/case_01.NII.GZ")) == "case_01"
    assert file_stem(Path("case.v2.png")) == "case.v2"
    assert is_nifti(Path("x.nii")) and is_nifti(Path("x.Nii.Gz"))
    assert not is_nifti(Path("x.png")) and not is_nifti(Path("x.gz"))


def test_tiff_and_nifti_headers_claiming_absurd_sizes_are_refused_before_decoding(tmp_path: Path) -> None:
    tif = tmp_path / "bomb.tif"
    tifffile.imwrite(tif, shape=(30000, 30000), dtype=np.uint8)  # a sparse file: header, no pixels
    header = nib.Nifti1Header()
    header.set_data_shape((5000, 5000, 5000))
    header.set_data_dtype(np.float32)
    nii = tmp_path / "bomb.nii"
    nii.write_bytes(header.binaryblock + b"\0" * 4)  # the header alone: the data is never there
    tracemalloc.start()
    for path, shape in ((tif, "(30000, 30000)"), (nii, "(5000, 5000, 5000)")):
        with pytest.raises(ImageReadError, match=re.escape(shape) + ".*over the limit"):
            read_image(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50 * 2**20  # nothing near the claimed 900 MB / 500 GB was allocated


def test_a_large_but_plausible_tiff_still_reads(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "ok.tif", np.zeros((3, 2000, 2000), np.uint8))  # planar RGB, 4 Mpx
    assert read_image(tmp_path / "ok.tif").shape == (2000, 2000, 3)


def _blob(h: int = 40, w: int = 48) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    mask[8:30, 10:36] = 1
    return mask


def test_a_jpeg_mask_is_read_as_binary_from_half_the_8_bit_range(tmp_path: Path) -> None:
    """JPEG adds values along every edge (and colour noise in RGB): the mask it stands for is gray
    >= 128 -> 1, else 0, every other value gone."""
    ref = _blob()
    rgb = np.repeat((ref * 255)[..., None], 3, axis=-1)
    Image.fromarray(rgb).save(tmp_path / "m.jpg", quality=60)
    stored = np.asarray(Image.open(tmp_path / "m.jpg"))
    assert len(np.unique(stored)) > 2  # the compression's values along the edges
    mask = read_mask(tmp_path / "m.jpg")
    assert mask.shape == ref.shape and set(np.unique(mask).tolist()) == {0, 1}
    assert (mask != ref).mean() < 0.01
    channels, _ = read_mask_channels_first(tmp_path / "m.jpg")
    assert channels.shape == (1, *ref.shape)


def test_a_gray_mask_stored_as_rgb_is_the_gray_mask_and_a_colour_one_stays_as_stored(tmp_path: Path) -> None:
    ref = _blob() * 2
    Image.fromarray(np.repeat(ref[..., None], 3, axis=-1)).save(tmp_path / "rgb.png")
    rgba = np.concatenate(
        [np.repeat(ref[..., None], 3, axis=-1), np.full((*ref.shape, 1), 255, np.uint8)], -1
    )
    tifffile.imwrite(tmp_path / "rgba.tif", rgba, photometric="rgb")  # PNG's alpha is dropped on reading
    assert np.array_equal(read_mask(tmp_path / "rgb.png"), ref)
    assert np.array_equal(read_mask(tmp_path / "rgba.tif"), ref)
    colour = np.repeat(ref[..., None], 3, axis=-1)
    colour[..., 1] = 0  # a colour-coded mask: refused by validation, so returned as stored
    Image.fromarray(colour).save(tmp_path / "colour.png")
    assert read_mask(tmp_path / "colour.png").shape == (*ref.shape, 3)
    translucent = rgba.copy()
    translucent[..., 3] = 128
    tifffile.imwrite(tmp_path / "translucent.tif", translucent, photometric="rgb")
    assert read_mask(tmp_path / "translucent.tif").shape == (*ref.shape, 4)
