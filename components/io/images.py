"""Readers and writers for 2D images (PNG/JPG/TIFF) and 3D volumes (NIfTI, NRRD, MHA).

Arrays come back as numpy in their stored dtype: 2D grayscale ``(H, W)``, 2D RGB ``(H, W, 3)``,
volumes ``(Z, Y, X)`` or ``(C, Z, Y, X)`` for 4D files (axis order chosen so spacing lines up
with array axes, as medpy expects). Every volume goes through the one SimpleITK reader of
:mod:`components.io.volumes` (``read_volume``, which checks the header's size before decoding).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from components.core.errors import UserError
from components.io.volumes import (
    VOLUME_SUFFIXES,
    Geometry,
    VolumeReadError,
    is_volume,
    read_volume,
    size_limit_message,
    stack_channels,
)

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff", *VOLUME_SUFFIXES)
# JPEG masks are lossy (compression adds values along every edge): read as binary, the foreground
# from LOSSY_FOREGROUND up (half the 8-bit range), as photograph datasets ship them (0 / 255)
LOSSY_MASK_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg")
LOSSY_FOREGROUND = 128
MASK_SUFFIXES: tuple[str, ...] = (".png", ".tif", ".tiff", *LOSSY_MASK_SUFFIXES, *VOLUME_SUFFIXES)


class ImageReadError(UserError, ValueError):
    """A file could not be decoded as an image."""


# 2D decoding limit, checked on the header before any pixel is read (a few-byte file can claim a
# size that takes gigabytes to decode): PIL's decompression-bomb limit (2 x Image.MAX_IMAGE_PIXELS,
# about 179 Mpx). Volumes have theirs in ``read_volume`` (``MAX_VOXELS_3D``).
MAX_PIXELS_2D = 2 * (Image.MAX_IMAGE_PIXELS or 89_478_485)


def _check_claimed_shape(path: Path, shape: tuple[int, ...]) -> None:
    """Refuse a 2D header whose shape is absurd, before the data is decoded.

    Every stored element counts except one colour axis of 3 or 4 (first or last).
    """
    dims = [int(d) for d in shape]
    colour = len(dims) == 3 and (dims[-1] in (3, 4) or dims[0] in (3, 4))
    channels = (dims[-1] if dims[-1] in (3, 4) else dims[0]) if colour else 1
    n = float(np.prod(dims, dtype=np.float64)) / channels
    if n > MAX_PIXELS_2D:
        raise ImageReadError(size_limit_message(path, dims, n, MAX_PIXELS_2D, "pixels"))


def file_stem(path: Path) -> str:
    """File name without its image suffix (handles double suffixes such as ``.nii.gz``)."""
    name = path.name
    lower = name.lower()
    for suffix in sorted(VOLUME_SUFFIXES, key=len, reverse=True):
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def is_nifti(path: Path) -> bool:
    """True for ``.nii`` / ``.nii.gz`` files."""
    return path.name.lower().endswith((".nii", ".nii.gz"))


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    with tifffile.TiffFile(path) as tf:
        _check_claimed_shape(path, tuple(tf.series[0].shape))
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


def read_with_geometry(path: str | Path) -> tuple[np.ndarray, Geometry]:
    """Read an image or volume and its geometry.

    Shape: 2D ``(H, W)`` or ``(H, W, C)``; volumes ``(Z, Y, X)`` or ``(C, Z, Y, X)`` (4D files).

    2D formats carry no geometry: unit spacing at the origin (``Geometry.identity(2)``). Volumes
    give spacing in array-axis order and origin/direction as stored (see ``read_volume``).

    Raises:
        ImageReadError: The file is missing, empty, claims an absurd size or cannot be decoded.
    """
    p = Path(path)
    try:
        if is_volume(p):
            return read_volume(p)
        arr = _read_tiff(p) if p.suffix.lower() in (".tif", ".tiff") else _read_pil(p)
    except ImageReadError:
        raise
    except VolumeReadError as exc:
        reason = str(exc).removeprefix(f"{p}: ")
        raise ImageReadError(f"{p}: cannot be read as an image ({reason})") from exc
    except Exception as exc:  # decoding libraries raise many unrelated types
        raise ImageReadError(f"{p}: cannot be read as an image ({type(exc).__name__}: {exc})") from exc
    if arr.size == 0:
        raise ImageReadError(f"{p}: image has no pixels")
    return arr, Geometry.identity(2)


def read_with_spacing(path: str | Path) -> tuple[np.ndarray, tuple[float, ...]]:
    """Read an image or volume and its pixel/voxel spacing (array-axis order).

    2D formats return spacing ``(1.0, 1.0)``; volumes their header spacing as ``(Z, Y, X)``.

    Raises:
        ImageReadError: The file is missing, empty or not a decodable image.
    """
    arr, geometry = read_with_geometry(path)
    return arr, geometry.spacing


def _channel_axis(path: Path) -> int:
    """Where a multi-channel array keeps its channels: first for volumes, last for 2D images."""
    return 0 if is_volume(path) else -1


def read_channels_first(path: str | Path) -> tuple[np.ndarray, Geometry]:
    """Read an image or volume with an explicit leading channel axis.

    Shape: ``(C, H, W)`` for 2D files, ``(C, Z, Y, X)`` for volumes (C = 1 for scalar files).

    Raises:
        ImageReadError: As ``read_with_geometry``, or the array has an unexpected number of axes.
    """
    p = Path(path)
    arr, geometry = read_with_geometry(p)
    if arr.ndim == geometry.ndim:
        return arr[np.newaxis], geometry
    if arr.ndim != geometry.ndim + 1:
        raise ImageReadError(
            f"{p}: array of shape {arr.shape} is neither a {geometry.ndim}D image nor one with channels"
        )
    return np.ascontiguousarray(np.moveaxis(arr, _channel_axis(p), 0)), geometry


def read_case_channels(paths: Sequence[Path]) -> tuple[np.ndarray, Geometry]:
    """Read a case's image channels first from its file(s), in any supported format.

    The 2D counterpart of ``read_case_image`` too: gray or RGB files, one or one per channel.

    Shape: ``(C, H, W)`` for 2D files, ``(C, Z, Y, X)`` for volumes.

    Raises:
        ImageReadError: A file cannot be read.
        ChannelGridError: The files are not on one grid (a ``VolumeReadError``, not an
            ``ImageReadError``: the files are readable, the case is not).
    """
    return stack_channels(paths, read_channels_first)


def read_image(path: str | Path) -> np.ndarray:
    """Read an image as stored: ``(H, W)``, ``(H, W, C)``, ``(Z, Y, X)`` or ``(C, Z, Y, X)``."""
    return read_with_geometry(path)[0]


def is_lossy_mask(path: str | Path) -> bool:
    """Whether a mask file is JPEG (read as binary: :data:`LOSSY_FOREGROUND`)."""
    return Path(path).suffix.lower() in LOSSY_MASK_SUFFIXES


def _gray_in_color(arr: np.ndarray) -> bool:
    """Whether a ``(3|4, H, W)`` array is a gray picture stored as RGB(A): equal colour channels, and
    an alpha channel (if any) fully opaque."""
    rgb_equal = bool(np.array_equal(arr[1], arr[0]) and np.array_equal(arr[2], arr[0]))
    opaque = arr.shape[0] == 3 or bool(
        (arr[3] == (np.iinfo(arr.dtype).max if arr.dtype.kind in "ui" else 1)).all()
    )
    return rgb_equal and opaque


def read_mask_channels_first(path: str | Path) -> tuple[np.ndarray, Geometry]:
    """Read a mask with an explicit channel axis, as the class-index map it stands for.

    A JPEG mask becomes binary (gray value >= :data:`LOSSY_FOREGROUND`: 1, else 0; colour channels
    averaged first); a 2D RGB(A) file whose colour channels are equal (and alpha opaque) is the gray
    mask it holds. Other multi-channel masks come back as stored, for validation to refuse.

    Shape: ``(C, H, W)`` for 2D files, ``(C, Z, Y, X)`` for volumes.

    Raises:
        ImageReadError: As :func:`read_channels_first`.
    """
    p = Path(path)
    arr, geometry = read_channels_first(p)
    if is_lossy_mask(p):
        gray = arr[:3].mean(axis=0) if arr.shape[0] >= 3 else arr[0]
        return (gray >= LOSSY_FOREGROUND).astype(np.uint8)[np.newaxis], geometry
    if geometry.ndim == 2 and arr.shape[0] in (3, 4) and _gray_in_color(arr):
        return arr[:1], geometry
    return arr, geometry


def read_mask(path: str | Path) -> np.ndarray:
    """Read a class-index mask (:func:`read_mask_channels_first`): 2D ``(H, W)`` or 3D ``(Z, Y, X)``.

    Multi-channel masks are returned as stored (channels last in 2D, first in volumes) so that
    callers (validation) can reject them.
    """
    p = Path(path)
    arr, _ = read_mask_channels_first(p)
    return arr[0] if arr.shape[0] == 1 else np.moveaxis(arr, 0, _channel_axis(p))


def read_roi(path: str | Path) -> np.ndarray:
    """Read a region-of-interest file (2D image or volume) as a boolean map (non-zero = inside;
    see ``components.data.regions``).

    Shape:
        -> (*S) bool.
    """
    return np.asarray(read_mask(path)) != 0


def read_case_roi(data_dir: str | Path, roi_field: object) -> np.ndarray | None:
    """The ROI named by a manifest row's ``roi_path`` (relative to ``data_dir``), or None when the
    case has none (a missing column, NaN/None or an empty string).

    Shape:
        -> (*S) bool or None.
    """
    if not isinstance(roi_field, str) or not roi_field:
        return None
    return read_roi(Path(data_dir) / roi_field)


def write_mask(path: str | Path, mask: np.ndarray) -> None:
    """Write a class-index mask as a single-channel PNG (uint8, or uint16 above 255 classes)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    arr = np.asarray(mask)
    dtype = np.uint8 if arr.max(initial=0) < 256 else np.uint16
    Image.fromarray(arr.astype(dtype)).save(p)
