"""Broken volume files and datasets, built from the 3D phantoms, for the reader and corpus tests.

File helpers (:func:`truncate`, :func:`gzip_bomb`, :func:`edit_nifti_header`, ...) corrupt one
file the way it happens in practice (a copy cut short, a header edited by hand, a bomb); the
dataset builders (``CORPUS``) each break a copy of a good phantom set (``good_volumes``) in one way
and say which file a refusal must name and what it must say. ``docs/reliability-3d-corpus.md``
lists the same cases.
"""

from __future__ import annotations

import gzip
import io
import shutil
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

CLASSES = {"background": 0, "tube": 1, "blob": 2}


def good_volumes(dest: Path, n_cases: int = 6, seed: int = 7) -> list[str]:
    """A small valid 3D phantom set (NIfTI, ``cases.csv`` with one patient per case)."""
    from components.data.synthetic3d import generate_volumes

    return generate_volumes(dest, n_cases=n_cases, shape=(12, 16, 16), seed=seed, n_patients=n_cases)


# ------------------------------------------------------------------------------------ file helpers


def truncate(path: Path, keep: float = 0.5) -> None:
    """Keep the first ``keep`` fraction of the file (a copy or download cut short)."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _raw(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def _write(path: Path, raw: bytes) -> None:
    path.write_bytes(gzip.compress(raw, 6) if path.name.endswith(".gz") else raw)


def edit_nifti_header(path: Path, edit: Callable[[nib.Nifti1Header], None]) -> None:
    """Change header fields of a single-file NIfTI-1 in place, bytes as stored (no nibabel repair)."""
    raw = _raw(path)
    header = nib.Nifti1Header.from_fileobj(io.BytesIO(raw[:348]), check=False)
    edit(header)
    _write(path, header.binaryblock + raw[348:])


def gzip_bomb(path: Path, inflated: int = 64 << 20) -> None:
    """Keep the file's NIfTI header but follow it by ``inflated`` zero bytes, gzip-compressed (a
    file a few tens of KB on disk that inflates far beyond the voxel data its header describes)."""
    head = _raw(path)[:352]
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip container
    parts = [packer.compress(head)]
    block = bytes(1 << 20)
    for _ in range(inflated >> 20):
        parts.append(packer.compress(block))
    parts.append(packer.flush())
    path.write_bytes(b"".join(parts))


def header_only_nifti(path: Path, shape: tuple[int, ...], dtype: type = np.uint8) -> None:
    """A NIfTI file whose header claims ``shape`` (x, y, z, ...) but which holds 64 bytes of data."""
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    header["vox_offset"] = 352
    path.write_bytes(header.binaryblock + b"\0" * 4 + b"\0" * 64)


def load(path: Path) -> nib.Nifti1Image:
    """A NIfTI image with its data in memory (so the file can be replaced)."""
    image = nib.load(str(path))
    return nib.Nifti1Image(np.asarray(image.dataobj), image.affine, image.header)


def save(image: nib.Nifti1Image, path: Path, data: np.ndarray | None = None) -> None:
    """Save ``image`` (optionally with other ``data``, its dtype kept) to ``path``."""
    if data is not None:
        image = nib.Nifti1Image(data, image.affine, image.header)
        image.set_data_dtype(data.dtype)
    nib.save(image, str(path))


# ---------------------------------------------------------------------------------- the corpus


def _img(data: Path, case: str) -> Path:
    return data / "images" / f"{case}.nii.gz"


def _msk(data: Path, case: str) -> Path:
    return data / "masks" / f"{case}.nii.gz"


def _with_data(path: Path, change: Callable[[np.ndarray], np.ndarray]) -> None:
    image = load(path)
    save(image, path, change(np.asarray(image.dataobj)))


def truncated_gz(data: Path) -> None:
    truncate(_img(data, "case_001"), 0.6)


def truncated_raw(data: Path) -> None:
    src = _img(data, "case_002")
    dst = src.with_name("case_002.nii")
    dst.write_bytes(gzip.decompress(src.read_bytes()))
    src.unlink()
    truncate(dst, 0.5)


def truncated_mask(data: Path) -> None:
    truncate(_msk(data, "case_003"), 0.5)


def bomb(data: Path) -> None:
    gzip_bomb(_img(data, "case_004"))


def flipped_byte(data: Path) -> None:
    """One byte changed in transit: the gzip trailer's CRC32 no longer matches the data."""
    path = _img(data, "case_000")
    raw = bytearray(path.read_bytes())
    raw[-6] ^= 0xFF
    path.write_bytes(bytes(raw))


def trailing_bytes(data: Path) -> None:
    path = _img(data, "case_005")
    path.write_bytes(path.read_bytes() + np.random.default_rng(0).bytes(4096))


def beyond_memory(data: Path) -> None:
    _img(data, "case_001").unlink()
    header_only_nifti(data / "images" / "case_001.nii", (1024, 1024, 1000, 4096), np.float64)


def beyond_voxel_limit(data: Path) -> None:
    _img(data, "case_002").unlink()
    header_only_nifti(data / "images" / "case_002.nii", (4000, 4000, 4000))


def nan_inf(data: Path) -> None:
    for case, bad in (("case_001", np.nan), ("case_002", np.inf)):

        def change(a: np.ndarray, bad: float = bad) -> np.ndarray:
            out = a.astype(np.float32)
            out.flat[:: max(1, out.size // 100)] = bad  # about 1 % of the voxels
            return out

        _with_data(_img(data, case), change)


def _csv_add(data: Path, line: str) -> None:
    path = data / "cases.csv"
    path.write_text(path.read_text(encoding="utf-8").rstrip("\n") + "\n" + line + "\n", encoding="utf-8")


def ghost_row(data: Path) -> None:
    _csv_add(data, "ghost_case,patient_ghost")


def ghost_split_row(data: Path) -> None:
    """Windows line endings, a BOM and the words datasets use; one test case lost its files."""
    rows = ["case_id,patient_id,split"]
    for i, path in enumerate(sorted((data / "masks").iterdir())):
        case = path.name.removesuffix(".nii.gz")
        rows.append(f"{case},p{i},{('training', 'validation', 'testing')[i % 3]}")
    rows.append("ghost_test,p99,testing")
    (data / "cases.csv").write_bytes(b"\xef\xbb\xbf" + "\r\n".join(rows).encode() + b"\r\n")


def split_words_as_written(data: Path) -> None:
    """Not broken: the split column as datasets write it (a positive control)."""
    rows = ["case_id,patient_id,split"]
    for i, path in enumerate(sorted((data / "masks").iterdir())):
        case = path.name.removesuffix(".nii.gz")
        rows.append(f"{case},p{i},{('Training', 'val', 'TEST')[i % 3]}")
    (data / "cases.csv").write_bytes(b"\xef\xbb\xbf" + "\r\n".join(rows).encode() + b"\r\n")


def unknown_split_word(data: Path) -> None:
    rows = (data / "cases.csv").read_text().splitlines()
    out = [rows[0] + ",split"] + [
        f"{r},{'holdout' if i == 2 else 'train' if i % 2 else 'test'}" for i, r in enumerate(rows[1:])
    ]
    (data / "cases.csv").write_text("\n".join(out) + "\n")


def ghost_roi(data: Path) -> None:
    for mask in sorted((data / "masks").iterdir()):
        roi = data / "rois" / mask.name
        roi.parent.mkdir(exist_ok=True)
        shutil.copy(mask, roi)
        _with_data(roi, lambda a: np.ones_like(a))
    shutil.copy(data / "rois" / "case_000.nii.gz", data / "rois" / "gone_case.nii.gz")


def wrong_dtype_labels(data: Path) -> None:
    def change(a: np.ndarray) -> np.ndarray:
        out = a.astype(np.int32)
        out[out == 2] = 258  # 258 wraps to 2 as uint8: must be refused, never wrapped
        return out

    _with_data(_msk(data, "case_002"), change)


def float_labels(data: Path) -> None:
    def change(a: np.ndarray) -> np.ndarray:
        out = a.astype(np.float32)
        out[out == 1] = 0.5
        return out

    _with_data(_msk(data, "case_003"), change)


def undeclared_label(data: Path) -> None:
    def change(a: np.ndarray) -> np.ndarray:
        out = a.copy()
        out[0, 0, :3] = 7
        return out

    _with_data(_msk(data, "case_004"), change)


def image_as_mask(data: Path) -> None:
    shutil.copy(_img(data, "case_005"), _msk(data, "case_005"))


def channels_on_two_grids(data: Path) -> None:
    """Two channels per case (nnU-Net naming); case_001's second channel has another spacing."""
    for image in sorted((data / "images").iterdir()):
        case = image.name.removesuffix(".nii.gz")
        shutil.copy(image, image.with_name(f"{case}_0001.nii.gz"))
        image.rename(image.with_name(f"{case}_0000.nii.gz"))
    other = data / "images" / "case_001_0001.nii.gz"
    edit_nifti_header(other, _scale_z(2.0))


def _scale_z(factor: float) -> Callable[[nib.Nifti1Header], None]:
    def edit(h: nib.Nifti1Header) -> None:
        h["pixdim"][3] *= factor
        h["srow_x"][2] *= factor
        h["srow_y"][2] *= factor
        h["srow_z"][2] *= factor

    return edit


def _pixdim(axis: int, value: float) -> Callable[[nib.Nifti1Header], None]:
    def edit(h: nib.Nifti1Header) -> None:
        h["pixdim"][axis] = value

    return edit


def nan_spacing(data: Path) -> None:
    edit_nifti_header(_img(data, "case_002"), _pixdim(1, float("nan")))


def zero_spacing(data: Path) -> None:
    edit_nifti_header(_msk(data, "case_003"), _pixdim(3, 0.0))


def negative_spacing(data: Path) -> None:
    edit_nifti_header(_img(data, "case_004"), _pixdim(2, -0.8))


def qform_sform_disagree(data: Path) -> None:
    def edit(h: nib.Nifti1Header) -> None:
        h["srow_x"][3] += 10.0  # the sform moves the volume 10 mm; the qform does not

    edit_nifti_header(_img(data, "case_001"), edit)


def sheared(data: Path) -> None:
    def edit(h: nib.Nifti1Header) -> None:
        h["srow_x"][1] += 0.4  # y axis leans into x: a sheared sform beside a rigid qform

    edit_nifti_header(_img(data, "case_002"), edit)


def one_voxel_thin(data: Path) -> None:
    for path in (_img(data, "case_005"), _msk(data, "case_005")):
        _with_data(path, lambda a: np.ascontiguousarray(a[:, :, 5:6]))  # nibabel order (x, y, z)


def mask_shifted(data: Path) -> None:
    image = load(_msk(data, "case_001"))
    affine = image.affine.copy()
    affine[:3, 3] += affine[:3, :3] @ np.array([0.0, 0.0, 10.0 / image.header.get_zooms()[2]])  # 10 mm
    save(nib.Nifti1Image(np.asarray(image.dataobj), affine, image.header), _msk(data, "case_001"))


def mask_slice_short(data: Path) -> None:
    _with_data(_msk(data, "case_002"), lambda a: np.ascontiguousarray(a[:, :, :-1]))


def png_among_nifti(data: Path) -> None:
    from PIL import Image

    for path, out in ((_img(data, "case_003"), "images"), (_msk(data, "case_003"), "masks")):
        arr = np.asarray(nib.load(str(path)).dataobj)
        slice_ = arr[:, :, arr.shape[2] // 2].T
        Image.fromarray(np.clip(slice_, 0, 255).astype(np.uint8)).save(data / out / "case_003.png")
        path.unlink()


def renamed_png(data: Path) -> None:
    """A PNG slice saved under a NIfTI name (SimpleITK read it as a 2D image by its content)."""
    from PIL import Image

    path = _img(data, "case_004")
    slice_ = np.asarray(nib.load(str(path)).dataobj)[:, :, 3].T
    buffer = io.BytesIO()
    Image.fromarray(np.clip(slice_, 0, 255).astype(np.uint8)).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())


def empty_mask(data: Path) -> None:
    _msk(data, "case_005").write_bytes(b"")


def mask_4d(data: Path) -> None:
    _with_data(_msk(data, "case_004"), lambda a: np.stack([a == 1, a == 2], axis=-1).astype(np.uint8))


def all_empty(data: Path) -> None:
    for path in sorted((data / "masks").iterdir()):
        _with_data(path, np.zeros_like)


def nrrd_detached_truncated(data: Path) -> None:
    """case_001 as NRRD with its gzip data in a detached file, cut short."""
    import SimpleITK as sitk

    src = _img(data, "case_001")
    sitk.WriteImage(sitk.ReadImage(str(src)), str(data / "images" / "case_001.nhdr"), useCompression=True)
    (data / "images" / "case_001.nhdr").rename(data / "images" / "case_001.nrrd")
    src.unlink()
    truncate(data / "images" / "case_001.raw.gz", 0.5)


def mha_missing_data(data: Path) -> None:
    """case_002 as MetaImage whose detached data file is gone; case_003 as MHA cut short."""
    import SimpleITK as sitk

    for case in ("case_002", "case_003"):
        src = _img(data, case)
        name = f"{case}.mhd" if case == "case_002" else f"{case}.mha"
        sitk.WriteImage(sitk.ReadImage(str(src)), str(data / "images" / name), useCompression=True)
        src.unlink()
    (data / "images" / "case_002.mhd").rename(data / "images" / "case_002.mha")
    (data / "images" / "case_002.zraw").unlink()
    truncate(data / "images" / "case_003.mha", 0.7)


@dataclass(frozen=True)
class Broken:
    """One broken dataset: how to break a good copy, what it means, what the refusal must say.

    Attributes:
        build: Breaks the dataset folder in place.
        what: What is broken, in words (the docs' list).
        expect: Fragments the message must hold: the offending file and what was expected.
        absent: Fragments it must not hold (hints for the wrong kind of file).
        passes: A positive control: the stages must succeed.
        channels: ``data.channels`` for the dataset.
    """

    build: Callable[[Path], None]
    what: str
    expect: tuple[str, ...] = ()
    absent: tuple[str, ...] = ("re-export the image as PNG/TIFF", "RGB")
    passes: bool = False
    channels: int = 1


CORPUS: dict[str, Broken] = {
    "truncated_nii_gz": Broken(
        truncated_gz,
        "an image .nii.gz cut at 60 % (half a gzip stream)",
        ("images/case_001.nii.gz", "truncated: expected", "bytes of voxel data", "copy the volume again"),
    ),
    "truncated_raw_nii": Broken(
        truncated_raw,
        "an uncompressed image .nii cut in half",
        ("images/case_002.nii", "truncated: expected", "the file ends after"),
    ),
    "truncated_mask": Broken(
        truncated_mask,
        "a mask .nii.gz cut in half",
        ("masks/case_003.nii.gz", "truncated: expected", "mask file can be decoded"),
    ),
    "gzip_bomb": Broken(
        bomb,
        "an image whose gzip stream inflates to 64 MiB where its header describes 5.6 KB of voxels",
        ("images/case_004.nii.gz", "inflates beyond", "decompression bomb"),
    ),
    "gzip_checksum_mismatch": Broken(
        flipped_byte,
        "one byte of an image's gzip trailer changed (its CRC no longer matches)",
        ("images/case_000.nii.gz", "corrupt compressed data: its checksum (CRC) does not match"),
    ),
    "bytes_after_the_stream": Broken(
        trailing_bytes,
        "4 KB of junk after an image's gzip stream (two files joined)",
        ("images/case_005.nii.gz", "bytes follow the end of its compressed voxel data"),
    ),
    "header_beyond_memory": Broken(
        beyond_memory,
        "a 416-byte .nii whose header claims 1024 x 1024 x 1000 x 4096 float64 voxels",
        ("images/case_001.nii", "more than this machine's memory"),
    ),
    "header_beyond_voxel_limit": Broken(
        beyond_voxel_limit,
        "a 416-byte .nii whose header claims 4000³ voxels",
        ("images/case_002.nii", "voxels, over the limit"),
    ),
    "nan_and_inf_voxels": Broken(
        nan_inf,
        "float32 images with 1 % NaN (case_001) and +Inf (case_002) voxels",
        ("images/case_001.nii.gz", "images/case_002.nii.gz", "NaN/Inf", "finite numbers"),
    ),
    "cases_csv_ghost_case": Broken(
        ghost_row,
        "cases.csv names ghost_case, which has no image or mask",
        ("cases.csv", "ghost_case", "listed without an image or mask file", "restore the files"),
    ),
    "official_split_ghost_case": Broken(
        ghost_split_row,
        "cases.csv (BOM, CRLF, split words training/validation/testing) names a test case without files",
        ("cases.csv", "ghost_test (test)", "listed without an image or mask file"),
    ),
    "unknown_split_word": Broken(
        unknown_split_word,
        "the split column holds 'holdout'",
        ("cases.csv", "split 'holdout'", "train or test"),
    ),
    "roi_without_case": Broken(
        ghost_roi,
        "rois/ holds gone_case.nii.gz, a case without image or mask",
        ("rois", "gone_case.nii.gz", "cases with no image and no mask"),
    ),
    "wrong_dtype_labels": Broken(
        wrong_dtype_labels,
        "an int32 mask holding 258 (2 once wrapped to uint8)",
        ("masks/case_002.nii.gz", "258", "declared class values"),
    ),
    "float_labels": Broken(
        float_labels,
        "a float32 mask holding 0.5",
        ("masks/case_003.nii.gz", "0.5", "declared class values"),
    ),
    "undeclared_label": Broken(
        undeclared_label,
        "a mask holding label 7 (classes 0, 1, 2)",
        ("masks/case_004.nii.gz", "values 0,1,2,7", "declared class values"),
    ),
    "mask_with_the_image_intensities": Broken(
        image_as_mask,
        "the image copied into masks/",
        ("masks/case_005.nii.gz", "distinct values", "a class-index mask holds a few"),
    ),
    "channels_on_two_grids": Broken(
        channels_on_two_grids,
        "two channels per case; case_001's second channel has twice the z spacing",
        ("images/case_001_0001.nii.gz", "channel 1 (images/case_001_0001.nii.gz) spacing", "resample"),
        channels=2,
    ),
    "nan_spacing": Broken(
        nan_spacing,
        "an image header with pixdim NaN",
        ("images/case_002.nii.gz", "voxel size (pixdim) (nan", "expected positive voxel sizes"),
    ),
    "zero_spacing": Broken(
        zero_spacing,
        "a mask header with pixdim 0 along z",
        ("masks/case_003.nii.gz", "voxel size (pixdim)", "expected positive voxel sizes"),
    ),
    "negative_spacing": Broken(
        negative_spacing,
        "an image header with pixdim -0.8 along y",
        ("images/case_004.nii.gz", "-0.8", "expected positive voxel sizes"),
    ),
    "qform_sform_disagree": Broken(
        qform_sform_disagree,
        "an image whose sform is 10 mm away from its qform",
        ("images/case_001.nii.gz", "place the volume differently", "make them agree"),
    ),
    "sheared_affine": Broken(
        sheared,
        "an image whose sform is sheared (the qform is not)",
        ("images/case_002.nii.gz", "is sheared", "orthogonal grid"),
    ),
    "one_voxel_thin": Broken(
        one_voxel_thin,
        "a case (image and mask) one slice thick",
        ("images/case_005.nii.gz", "1 voxel along z", "single slice"),
    ),
    "mask_shifted_10mm": Broken(
        mask_shifted,
        "a mask whose origin is 10 mm off its image's",
        ("masks/case_001.nii.gz", "mask origin", "!= image origin"),
    ),
    "mask_one_slice_short": Broken(
        mask_slice_short,
        "a mask one slice shorter than its image",
        ("masks/case_002.nii.gz", "same shape", "mask shape"),
    ),
    "png_among_nifti": Broken(
        png_among_nifti,
        "one case as PNG (a middle slice) among NIfTI volumes",
        ("images/case_003.png", "3 spatial axes", "2D images and 3D volumes cannot be mixed"),
        absent=(),
    ),
    "png_named_nii_gz": Broken(
        renamed_png,
        "a PNG slice saved as images/case_004.nii.gz",
        ("images/case_004.nii.gz", "not a NIfTI file: it holds a PNG image", "expected a NIfTI volume"),
    ),
    "empty_mask_file": Broken(
        empty_mask,
        "masks/case_005.nii.gz is 0 bytes",
        ("masks/case_005.nii.gz", "the file is empty (0 bytes)", "copy it again"),
    ),
    "mask_4d": Broken(
        mask_4d,
        "a one-hot 4D mask (2 channels)",
        ("masks/case_004.nii.gz", "2 channels", "not 4D or vector volumes"),
    ),
    "all_masks_empty": Broken(
        all_empty, "every mask is background only", ("background only", "data.classes")
    ),
    "nrrd_detached_data_truncated": Broken(
        nrrd_detached_truncated,
        "an NRRD image whose detached gzip data file (case_001.raw.gz) is cut in half",
        ("images/case_001.nrrd", "truncated: expected", "the compressed stream ends after"),
    ),
    "mha_data_missing_or_cut": Broken(
        mha_missing_data,
        "a MetaImage whose detached data file is gone (case_002), another cut at 70 % (case_003)",
        ("images/case_002.mha", "does not exist", "images/case_003.mha", "truncated: expected"),
    ),
    "split_words_as_datasets_write_them": Broken(
        split_words_as_written,
        "not broken: cases.csv with a BOM, CRLF and split words Training/val/TEST",
        passes=True,
    ),
}
