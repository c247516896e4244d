"""Readers and writers for 2D images (PNG/JPG/TIFF) and 3D volumes (NIfTI).

Arrays come back as numpy in their stored dtype: 2D grayscale ``(H, W)``, 2D RGB ``(H, W, 3)``,
3D NIfTI ``(Z, Y, X)`` (axis order chosen so spacing lines up with array axes, as medpy expects).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from components.errors import UserError

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".nii", ".nii.gz")
MASK_SUFFIXES: tuple[str, ...] = (".png", ".tif", ".tiff", ".nii", ".nii.gz")


class ImageReadError(UserError, ValueError):
    """A file could not be decoded as an image."""


# Decoding limits, checked on the header before any pixel is read (a few-byte file can claim a
# size that takes gigabytes to decode): 2D as PIL's decompression-bomb limit (2 x
# Image.MAX_IMAGE_PIXELS, about 179 Mpx), volumes up to 2**30 voxels (a 512 x 512 x 4096 CT).
MAX_PIXELS_2D = 2 * (Image.MAX_IMAGE_PIXELS or 89_478_485)
MAX_VOXELS_3D = 2**30


def _check_claimed_shape(path: Path, shape: tuple[int, ...], volume: bool) -> None:
    """Refuse a header whose shape is absurd, before the data is decoded.

    2D: every stored element counts except one colour axis of 3 or 4 (first or last); volumes:
    the three spatial axes (a 4D file's channels are not voxels).
    """
    dims = [int(d) for d in shape]
    if volume:
        n, limit, kind = float(np.prod(dims[:3], dtype=np.float64)), MAX_VOXELS_3D, "voxels"
    else:
        colour = len(dims) == 3 and (dims[-1] in (3, 4) or dims[0] in (3, 4))
        channels = (dims[-1] if dims[-1] in (3, 4) else dims[0]) if colour else 1
        n, limit, kind = float(np.prod(dims, dtype=np.float64)) / channels, MAX_PIXELS_2D, "pixels"
    if n > limit:
        raise ImageReadError(
            f"{path}: header claims shape {tuple(dims)} = {n:,.0f} {kind}, over the limit of "
            f"{limit:,}; refusing to decode it (a corrupt or malicious header?)"
        )


def file_stem(path: Path) -> str:
    """Stem without any image suffix (handles the double suffix ``.nii.gz``)."""
    name = path.name
    return name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else path.stem


def is_nifti(path: Path) -> bool:
    """True for ``.nii`` / ``.nii.gz`` files."""
    return path.name.lower().endswith((".nii", ".nii.gz"))


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    with tifffile.TiffFile(path) as tf:
        _check_claimed_shape(path, tuple(tf.series[0].shape), volume=False)
        arr = np.asarray(tf.asarray())
    if arr.ndim == 3 and arr.shape[0] in (3, 4) and arr.shape[-1] not in (3, 4):
        arr = np.moveaxis(arr, 0, -1)  # planar (C, H, W) -> (H, W, C)
    return arr


def _read_pil(path: Path) -> np.ndarray:
    with Image.open(path) as opened:
        im: Image.Image = opened
        if im.mode == "P":  # palette PNG: the indices are the data (class-index masks)
            return np.asarray(im)
        if im.mode in ("I;16", "I;16B", "I;16L"):
            return np.asarray(im).astype(np.uint16)
        if im.mode in ("RGBA", "LA"):
            im = im.convert("RGB" if im.mode == "RGBA" else "L")
        return np.asarray(im)


def read_with_spacing(path: str | Path) -> tuple[np.ndarray, tuple[float, ...]]:
    """Read an image or volume and its pixel/voxel spacing (array-axis order).

    2D formats return spacing ``(1.0, 1.0)``. NIfTI returns the header zooms reordered to
    ``(Z, Y, X)`` to match the array.

    Raises:
        ImageReadError: The file is missing, empty or not a decodable image.
    """
    p = Path(path)
    try:
        if is_nifti(p):
            import nibabel as nib

            img = nib.load(str(p))
            assert isinstance(img, nib.spatialimages.SpatialImage)  # .nii / .nii.gz: a NIfTI image
            _check_claimed_shape(p, tuple(img.header.get_data_shape()), volume=True)
            arr = np.asarray(img.dataobj)
            zooms = tuple(float(z) for z in img.header.get_zooms()[: arr.ndim])
            if arr.ndim == 3:  # nibabel gives (X, Y, Z); use (Z, Y, X)
                return np.ascontiguousarray(np.transpose(arr, (2, 1, 0))), zooms[::-1]
            return arr, zooms
        arr = _read_tiff(p) if p.suffix.lower() in (".tif", ".tiff") else _read_pil(p)
    except ImageReadError:
        raise
    except Exception as exc:  # decoding libraries raise many unrelated types
        raise ImageReadError(f"{p}: cannot be read as an image ({type(exc).__name__}: {exc})") from exc
    if arr.size == 0:
        raise ImageReadError(f"{p}: image has no pixels")
    return arr, (1.0,) * min(arr.ndim, 2)


def read_image(path: str | Path) -> np.ndarray:
    """Read an image as stored: ``(H, W)``, ``(H, W, C)`` or ``(Z, Y, X)`` for NIfTI."""
    return read_with_spacing(path)[0]


def read_mask(path: str | Path) -> np.ndarray:
    """Read a class-index mask. Single-channel masks come back 2D (or 3D for NIfTI).

    Multi-channel masks are returned unchanged so that callers (validation) can reject them.
    """
    arr = read_image(path)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    return arr


def write_mask(path: str | Path, mask: np.ndarray) -> None:
    """Write a class-index mask as a single-channel PNG (uint8, or uint16 above 255 classes)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    arr = np.asarray(mask)
    dtype = np.uint8 if arr.max(initial=0) < 256 else np.uint16
    Image.fromarray(arr.astype(dtype)).save(p)
