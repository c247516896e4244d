"""The one volume reader refuses data that does not end where the header says, on real files.

Truncated, overlong and bomb streams for NIfTI (gzip and raw), NRRD (attached and detached, gzip,
bzip2 and raw) and MetaImage (zlib and raw, attached and detached); headers claiming more than
RAM; NaN/Inf voxels that SimpleITK's NIfTI reader turns into 0 come back as stored.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from components.io import VolumeReadError, read_volume
from components.io.volume_headers import data_stream
from components.io.volume_streams import physical_memory
from tests.data.broken3d import gzip_bomb, header_only_nifti, truncate

ARR = np.random.default_rng(0).integers(0, 1000, (7, 9, 11)).astype(np.int16)  # (Z, Y, X)
NBYTES = ARR.size * 2


def _write(path: Path, compress: bool = True, arr: np.ndarray = ARR) -> Path:
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(path), useCompression=compress)
    return path


FORMATS = [
    ("v.nii.gz", True),
    ("v.nii", False),
    ("v.nrrd", True),
    ("v.nrrd", False),
    ("v.mha", True),
    ("v.mha", False),
]


@pytest.mark.parametrize(("name", "compress"), FORMATS)
def test_an_intact_file_reads_and_its_stream_is_located(tmp_path: Path, name: str, compress: bool) -> None:
    path = _write(tmp_path / name, compress)
    arr, _ = read_volume(path)
    np.testing.assert_array_equal(arr, ARR)
    stream = data_stream(path)
    assert stream is not None and stream.size == NBYTES
    assert stream.encoding == ("gzip" if compress else "raw")


@pytest.mark.parametrize(("name", "compress"), FORMATS)
def test_a_file_cut_in_half_is_refused_as_truncated(tmp_path: Path, name: str, compress: bool) -> None:
    """SimpleITK read a cut .nii.gz/.nii with zeros in the missing half; MHA said 'No such file'."""
    path = _write(tmp_path / name, compress)
    truncate(path, 0.5)
    with pytest.raises(VolumeReadError) as info:
        read_volume(path)
    message = str(info.value)
    assert message.startswith(f"{path}: truncated: expected {NBYTES:,} bytes of voxel data")
    assert "copy the file again from its source" in message


@pytest.mark.parametrize(("name", "compress"), FORMATS)
def test_bytes_after_the_data_are_refused(tmp_path: Path, name: str, compress: bool) -> None:
    path = _write(tmp_path / name, compress)
    path.write_bytes(path.read_bytes() + b"\0" * 100)
    want = "bytes follow the end of its compressed voxel data" if compress else "holds 1,486 after its header"
    with pytest.raises(VolumeReadError, match=want):
        read_volume(path)


def test_a_gzip_bomb_is_stopped_at_the_headers_size(tmp_path: Path) -> None:
    """64 MiB of zeros behind the header of a 1.4 KB volume: refused, decoded no further than the
    header's size plus one byte."""
    from components.io.volume_streams import StreamError, _Inflater, _NonFinite, _read_chunks

    path = _write(tmp_path / "v.nii.gz")
    gzip_bomb(path, 64 << 20)
    assert path.stat().st_size < 200_000
    with pytest.raises(VolumeReadError, match=r"inflates beyond the 1,386 bytes .* decompression bomb"):
        read_volume(path)
    stream = data_stream(path)
    assert stream is not None
    inflater = _Inflater(stream, path, _NonFinite(None))
    with pytest.raises(StreamError):
        for block in _read_chunks(path, stream.offset):
            inflater.feed(block)
    assert inflater.got == stream.skip + stream.size + 1


def test_concatenated_gzip_members_are_one_stream(tmp_path: Path) -> None:
    """bgzf / `cat a.gz b.gz` files are legal gzip: members are read in turn."""
    path = _write(tmp_path / "v.nii.gz")
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]))
    np.testing.assert_array_equal(read_volume(path)[0], ARR)


def test_a_header_claiming_more_than_memory_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "v.nii"
    header_only_nifti(path, (1024, 1024, 1000, 4096), np.float64)
    assert physical_memory() is not None
    with pytest.raises(
        VolumeReadError, match=r"float64 voxels = 32,000\.0 GiB, more than this machine's memory"
    ):
        read_volume(path)


def test_a_small_file_claiming_a_large_volume_is_truncated(tmp_path: Path) -> None:
    path = tmp_path / "v.nii"
    header_only_nifti(path, (512, 512, 300), np.int16)
    with pytest.raises(
        VolumeReadError, match=r"truncated: expected 157,286,400 bytes .* ends after 64 \(0\.0 %\)"
    ):
        read_volume(path)


def _nrrd_detached(tmp_path: Path, encoding: str) -> tuple[Path, Path]:
    raw = ARR.astype("<i2").tobytes()
    data = tmp_path / {"raw": "v.raw", "gzip": "v.raw.gz"}[encoding]
    data.write_bytes({"raw": raw, "gzip": gzip.compress(raw)}[encoding])
    header = tmp_path / "v.nrrd"
    header.write_text(
        "NRRD0004\ntype: short\ndimension: 3\nsizes: 11 9 7\nendian: little\n"
        f"encoding: {encoding}\ndata file: {data.name}\n"
    )  # a detached header may end without its blank line
    return header, data


@pytest.mark.parametrize("encoding", ["raw", "gzip"])
def test_nrrd_detached_data_is_checked_in_its_own_file(tmp_path: Path, encoding: str) -> None:
    header, data = _nrrd_detached(tmp_path, encoding)
    np.testing.assert_array_equal(read_volume(header)[0], ARR)
    truncate(data, 0.5)
    with pytest.raises(VolumeReadError, match=rf"^{header}: truncated: expected 1,386 bytes"):
        read_volume(header)
    data.unlink()
    with pytest.raises(VolumeReadError, match=rf"its data file {data} does not exist"):
        read_volume(header)


def test_metaimage_detached_data_is_checked(tmp_path: Path) -> None:
    _write(tmp_path / "v.mhd", compress=True)  # v.mhd + v.zraw
    header = tmp_path / "v.mha"
    (tmp_path / "v.mhd").rename(header)
    np.testing.assert_array_equal(read_volume(header)[0], ARR)
    truncate(tmp_path / "v.zraw", 0.5)
    with pytest.raises(VolumeReadError, match="truncated: expected 1,386 bytes of voxel data"):
        read_volume(header)


@pytest.mark.parametrize("name", ["v.nii.gz", "v.nii"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nifti_nan_and_inf_voxels_are_read_as_stored(tmp_path: Path, name: str, dtype: type) -> None:
    """SimpleITK's NIfTI reader returns NaN/Inf voxels as 0; the reader puts them back."""
    arr = ARR.astype(dtype)
    arr[0, 0, :3] = np.nan
    arr[1, 2, 3] = np.inf
    arr[2, 3, 4] = -np.inf
    path = _write(tmp_path / name, name.endswith(".gz"), arr)
    assert np.isfinite(sitk.GetArrayFromImage(sitk.ReadImage(str(path)))).all()  # what ITK does
    back, _ = read_volume(path)
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, arr)  # NaN == NaN for assert_array_equal


def test_big_endian_nifti_floats_are_counted_in_their_byte_order(tmp_path: Path) -> None:
    arr = np.ones((5, 4, 3), dtype=np.float32)  # nibabel order (x, y, z)
    arr[1, 1, 1] = np.nan
    path = tmp_path / "be.nii"
    image = nib.Nifti1Image(arr, np.eye(4), nib.Nifti1Header(endianness=">"))
    nib.save(image, str(path))
    assert nib.load(str(path)).header.endianness == ">"
    back, _ = read_volume(path)
    assert back.shape == (3, 4, 5) and int(np.isnan(back).sum()) == 1 and np.isnan(back[1, 1, 1])


def test_a_zero_vox_offset_means_the_data_follows_the_header(tmp_path: Path) -> None:
    """An invalid vox_offset 0: nifti_io (SimpleITK) and nibabel read from byte 348; so does the check."""
    path = tmp_path / "v.nii"
    header = nib.Nifti1Header()
    header.set_data_shape(ARR.shape[::-1])
    header.set_data_dtype(np.int16)
    raw = bytearray(header.binaryblock)
    raw[108:112] = np.float32(0).tobytes()
    path.write_bytes(bytes(raw) + ARR.astype("<i2").tobytes())
    stream = data_stream(path)
    assert stream is not None and stream.offset == 348
    np.testing.assert_array_equal(read_volume(path)[0], ARR)
    path.write_bytes(path.read_bytes()[:-2])
    with pytest.raises(VolumeReadError, match="truncated: expected 1,386 bytes"):
        read_volume(path)


def test_nifti2_is_named_with_how_to_convert_it(tmp_path: Path) -> None:
    """SimpleITK reads no NIfTI-2 ("Unable to determine ImageIO reader"): the message says what it is."""
    path = tmp_path / "v2.nii"
    nib.save(nib.Nifti2Image(np.transpose(ARR, (2, 1, 0)), np.eye(4)), str(path))
    with pytest.raises(
        VolumeReadError, match=r"a NIfTI-2 file, which SimpleITK .* expected NIfTI-1: convert"
    ):
        read_volume(path)


def _plain(path: Path) -> tuple[np.ndarray, tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    image = sitk.ReadImage(str(path))
    arr = sitk.GetArrayFromImage(image)
    return arr, image.GetSpacing()[::-1], image.GetOrigin(), image.GetDirection()


def _assert_as_simpleitk_reads(path: Path) -> None:
    arr, geometry = read_volume(path)
    want, spacing, origin, direction = _plain(path)
    assert arr.dtype == want.dtype and arr.shape == want.shape and arr.flags.c_contiguous
    np.testing.assert_array_equal(arr, want)
    assert (geometry.spacing, geometry.origin, geometry.direction) == (spacing, origin, direction)


@pytest.mark.parametrize("dtype", ["u1", "i1", "<i2", ">i2", "u2", "i4", "u4", "<f4", ">f8"])
@pytest.mark.parametrize("name", ["v.nii.gz", "v.nii"])
def test_a_nifti_decoded_once_is_what_simpleitk_reads(tmp_path: Path, dtype: str, name: str) -> None:
    """Scalar NIfTI without scaling: the walked bytes are kept as the array (one decode)."""
    data = (np.arange(6 * 5 * 4) % 50).astype(dtype).reshape(6, 5, 4)  # nibabel order (x, y, z)
    affine = np.diag([0.7, 0.8, 2.5, 1.0])
    affine[:3, 3] = (4.0, -3.0, 9.0)
    header = nib.Nifti1Header(endianness=">" if dtype.startswith(">") else "<")
    path = tmp_path / name
    nib.save(nib.Nifti1Image(data, affine, header), str(path))
    stream = data_stream(path)
    assert stream is not None and stream.array_dtype is not None
    _assert_as_simpleitk_reads(path)


def test_a_scaled_nifti_is_left_to_simpleitk(tmp_path: Path) -> None:
    """scl_slope 2: SimpleITK returns rescaled floats; the reader lets it decode and checks the stream."""
    path = tmp_path / "scaled.nii.gz"
    image = nib.Nifti1Image(np.arange(60, dtype=np.int16).reshape(5, 4, 3), np.eye(4))
    image.header.set_slope_inter(2.0, 10.0)
    nib.save(image, str(path))
    stream = data_stream(path)
    assert stream is not None and stream.array_dtype is None
    _assert_as_simpleitk_reads(path)
    truncate(path, 0.8)
    with pytest.raises(VolumeReadError, match="truncated"):
        read_volume(path)


def test_the_msd_hippocampus_files_read_as_simpleitk_reads_them() -> None:
    """Real data (uint8 and float32 NIfTI): same arrays, dtypes and grids as SimpleITK's own read."""
    files = sorted(Path("/work/shared/datasets/msd_hippocampus").glob("*/*.nii.gz"))
    if not files:
        pytest.skip("MSD hippocampus not on this machine")
    for path in files[::5]:
        _assert_as_simpleitk_reads(path)


def test_a_nii_beside_a_nii_gz_of_the_same_name_is_refused(tmp_path: Path) -> None:
    """Asked for a.nii.gz, SimpleITK returns a.nii's voxels when that file exists."""
    _write(tmp_path / "a.nii.gz")
    _write(tmp_path / "a.nii", arr=np.ones_like(ARR))
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "a.nii.gz"))).max() == 1  # what ITK does
    with pytest.raises(
        VolumeReadError, match=r"a\.nii\.gz: a\.nii lies beside it, and SimpleITK reads that file"
    ):
        read_volume(tmp_path / "a.nii.gz")
    np.testing.assert_array_equal(read_volume(tmp_path / "a.nii")[0], np.ones_like(ARR))


@pytest.mark.parametrize("kind", ["4d", "scaled"])
def test_nan_voxels_simpleitk_decodes_are_put_back_in_place(tmp_path: Path, kind: str) -> None:
    """Files SimpleITK must decode (4D, or scaled by scl_slope): its zeros become NaN/Inf again."""
    xyz = np.arange(5 * 4 * 3 * (2 if kind == "4d" else 1), dtype=np.float32).reshape(5, 4, 3, -1)
    xyz = xyz if kind == "4d" else xyz[..., 0]
    xyz[1, 2, 0, ...] = np.nan
    xyz[4, 3, 2, ...] = np.inf
    image = nib.Nifti1Image(xyz, np.eye(4))
    if kind == "scaled":
        image.header.set_slope_inter(2.0, 0.0)
    path = tmp_path / "v.nii.gz"
    nib.save(image, str(path))
    stream = data_stream(path)
    assert stream is not None and stream.array_dtype is None  # not the one-decode path
    arr, _ = read_volume(path)
    want = np.transpose(xyz, tuple(reversed(range(xyz.ndim))))  # (x, y, z[, t]) -> ([t,] z, y, x)
    assert arr.shape == want.shape
    np.testing.assert_array_equal(np.isnan(arr), np.isnan(want))
    np.testing.assert_array_equal(np.isposinf(arr), np.isposinf(want))


def test_a_bitpix_that_contradicts_the_datatype_is_not_read_directly(tmp_path: Path) -> None:
    path = _write(tmp_path / "v.nii")
    raw = bytearray(path.read_bytes())
    raw[72:74] = np.int16(32).tobytes()  # bitpix 32 for datatype 4 (int16)
    path.write_bytes(bytes(raw))
    stream = data_stream(path)
    assert stream is not None and stream.array_dtype is None
    with pytest.raises(VolumeReadError, match=rf"{path}: "):  # the data is half what bitpix 32 needs
        read_volume(path)


@pytest.mark.parametrize(("name", "compress"), FORMATS)
def test_a_corrupted_file_is_read_or_refused_never_a_traceback(
    tmp_path: Path, name: str, compress: bool
) -> None:
    """80 seeded corruptions per format (bytes flipped in the header or the data, cuts, junk
    appended): each read returns the volume or raises VolumeReadError naming the file, nothing else."""
    good = _write(tmp_path / name, compress).read_bytes()
    rng = np.random.default_rng(sum(map(ord, name)) + compress)
    path = tmp_path / f"bad_{name}"
    outcomes = {"read": 0, "refused": 0}
    for _ in range(80):
        data = bytearray(good)
        kind = rng.integers(4)
        if kind == 0:  # header bytes
            for i in rng.integers(0, min(len(data), 400), rng.integers(1, 6)):
                data[i] = int(rng.integers(256))
        elif kind == 1:  # anywhere
            for i in rng.integers(0, len(data), rng.integers(1, 6)):
                data[i] = int(rng.integers(256))
        elif kind == 2:
            data = data[: int(rng.integers(0, len(data)))]
        else:
            data += bytes(rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8))
        path.write_bytes(bytes(data))
        try:
            read_volume(path)
            outcomes["read"] += 1
        except VolumeReadError as exc:
            assert str(exc).startswith(str(path)), exc
            outcomes["refused"] += 1
    assert outcomes["refused"] > 0


def _edit_mha(good: bytes, old: bytes, new: bytes) -> bytes:
    assert old in good
    return good.replace(old, new, 1)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (b"NDims = 3", b"NDims =83", r"NDims '83'; expected a number of dimensions"),  # SimpleITK: SIGABRT
        (
            b"NDims = 3",
            b"NDims =-3",
            r"NDims '-3'; expected a number of dimensions",
        ),  # with the next: SIGSEGV
        (
            b"DimSize = 11 9 7",
            b"DimSize = 11 9",
            r"dimsize '11 9' does not hold 3 numbers for NDims 3",
        ),  # SimpleITK: an error
    ],
)
def test_a_metaimage_header_that_would_crash_simpleitk_is_refused(
    tmp_path: Path, old: bytes, new: bytes, message: str
) -> None:
    """Found by corrupting files at random: SimpleITK's MetaImage reader aborts the process on
    these. The read runs in a child process, so a regression fails this test, not the test run."""
    import subprocess
    import sys

    good = _write(tmp_path / "v.mha").read_bytes()
    data = _edit_mha(good, old, new)
    if new == b"NDims =-3":
        data = _edit_mha(data, b"ElementDataFile", b"ElementDataFi\xb7e")  # the end line corrupted too
    path = tmp_path / "bad.mha"
    path.write_bytes(data)
    code = (
        "import sys; from components.io import read_volume, VolumeReadError\n"
        f"try:\n    read_volume({str(path)!r})\nexcept VolumeReadError as exc:\n    print(exc); sys.exit(3)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, (proc.returncode, proc.stderr[-2000:])
    assert proc.stdout.startswith(f"{path}: MetaImage header: ")
    assert re.search(message, proc.stdout), proc.stdout


def test_what_a_file_holds_is_named_when_its_suffix_lies(tmp_path: Path) -> None:
    """SimpleITK read a PNG named .nii.gz as a 2D image, and called an empty file unreadable."""
    from PIL import Image

    png = tmp_path / "renamed.nii.gz"
    Image.fromarray(np.zeros((4, 5), np.uint8)).save(tmp_path / "x.png")
    png.write_bytes((tmp_path / "x.png").read_bytes())
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(png))).shape == (4, 5)  # what ITK does
    with pytest.raises(VolumeReadError, match=r"renamed\.nii\.gz: not a NIfTI file: it holds a PNG image"):
        read_volume(png)
    empty = tmp_path / "empty.nrrd"
    empty.write_bytes(b"")
    with pytest.raises(VolumeReadError, match=r"empty\.nrrd: the file is empty \(0 bytes\)"):
        read_volume(empty)
    html = tmp_path / "page.mha"
    html.write_text("<html><body>404 Not Found</body></html>")
    with pytest.raises(VolumeReadError, match=r"not a MetaImage file: it holds an HTML or XML page"):
        read_volume(html)


def test_a_checksum_failure_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path / "v.nii.gz")
    data = bytearray(path.read_bytes())
    data[-6] ^= 0xFF  # the gzip trailer's CRC32
    path.write_bytes(bytes(data))
    with pytest.raises(
        VolumeReadError, match=r"corrupt compressed data: its checksum \(CRC\) does not match"
    ):
        read_volume(path)
