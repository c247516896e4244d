"""Medical volumes (NIfTI, NRRD, MHA) with their geometry, read and written through SimpleITK.

Arrays use the array-axis order ``(Z, Y, X)`` (SimpleITK's ``GetArrayFromImage``), and
:class:`Geometry` gives the spacing in that same order, so ``spacing[i]`` is the voxel size
along ``array.shape[i]``. Origin and direction stay in ITK's physical order (x, y, z), exactly
as read, so that a prediction written with the input's geometry has the input's affine.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from components.errors import UserError

VOLUME_SUFFIXES: tuple[str, ...] = (".nii", ".nii.gz", ".nrrd", ".mha")


class VolumeReadError(UserError, ValueError):
    """A file could not be read as a medical volume (the message names it and why)."""


@dataclass(frozen=True)
class Geometry:
    """Where a voxel grid lies in physical space.

    Attributes:
        spacing: Voxel size per array axis (``(Z, Y, X)`` for volumes, ``(H, W)`` for 2D), mm.
        origin: Physical position of the first voxel, ITK order (x, y, z).
        direction: Direction cosines, ITK order, flattened row by row (9 values in 3D).
    """

    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]

    @classmethod
    def identity(cls, ndim: int, spacing: Sequence[float] | None = None) -> Geometry:
        """Unit (or given) spacing at the origin with identity direction (2D files have no more)."""
        eye = np.eye(ndim).ravel()
        sp = tuple(float(s) for s in spacing) if spacing is not None else (1.0,) * ndim
        return cls(sp, (0.0,) * ndim, tuple(float(v) for v in eye))

    @property
    def ndim(self) -> int:
        """Number of spatial axes."""
        return len(self.spacing)

    def to_json(self) -> dict[str, list[float]]:
        """Plain lists (JSON)."""
        return {"spacing": list(self.spacing), "origin": list(self.origin), "direction": list(self.direction)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Geometry:
        """Inverse of :meth:`to_json`."""
        return cls(
            tuple(float(v) for v in d["spacing"]),
            tuple(float(v) for v in d["origin"]),
            tuple(float(v) for v in d["direction"]),
        )


def is_volume(path: Path) -> bool:
    """True for the volume formats read here (NIfTI, NRRD, MHA)."""
    return path.name.lower().endswith(VOLUME_SUFFIXES)


def _sub_geometry(spacing: Sequence[float], origin: Sequence[float], direction: Sequence[float]) -> Geometry:
    """The spatial (first three ITK axes) part of an image's geometry, spacing in array order."""
    n = len(spacing)
    k = min(n, 3)
    d = np.asarray(direction, dtype=np.float64).reshape(n, n)[:k, :k]
    return Geometry(
        tuple(float(s) for s in spacing[:k][::-1]),
        tuple(float(o) for o in origin[:k]),
        tuple(float(v) for v in d.ravel()),
    )


def read_volume_header(path: Path) -> tuple[tuple[int, ...], Geometry]:
    """Shape (array order, channels first for 4D) and geometry, from the header only."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise VolumeReadError(f"{path}: cannot be read as a volume ({_itk_reason(exc)})") from None
    size = tuple(int(s) for s in reader.GetSize())[::-1]
    comps = int(reader.GetNumberOfComponents())
    shape = ((comps,) if comps > 1 else ()) + size
    return shape, _sub_geometry(reader.GetSpacing(), reader.GetOrigin(), reader.GetDirection())


def _itk_reason(exc: RuntimeError) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[-1] if lines else type(exc).__name__


def read_volume(path: str | Path) -> tuple[np.ndarray, Geometry]:
    """Read a volume in its stored dtype: ``(Z, Y, X)``, or ``(C, Z, Y, X)`` for a 4D/vector file.

    Raises:
        VolumeReadError: Missing, empty or undecodable file.
    """
    import SimpleITK as sitk

    p = Path(path)
    if not p.is_file():
        raise VolumeReadError(f"{p}: no such file")
    try:
        img = sitk.ReadImage(str(p))
    except RuntimeError as exc:
        raise VolumeReadError(f"{p}: cannot be read as a volume ({_itk_reason(exc)})") from None
    arr = sitk.GetArrayFromImage(img)
    if img.GetNumberOfComponentsPerPixel() > 1:  # vector voxels (Z, Y, X, C) -> (C, Z, Y, X)
        arr = np.moveaxis(arr, -1, 0)
    if arr.size == 0:
        raise VolumeReadError(f"{p}: volume has no voxels")
    return np.ascontiguousarray(arr), _sub_geometry(img.GetSpacing(), img.GetOrigin(), img.GetDirection())


def write_volume(path: str | Path, array: np.ndarray, geometry: Geometry) -> None:
    """Write a scalar volume ``(Z, Y, X)`` (or a 2D ``(H, W)`` grid) with ``geometry``, atomically.

    The format follows the suffix (``.nii.gz``, ``.nii``, ``.nrrd``, ``.mha``).
    """
    import SimpleITK as sitk

    p = Path(path)
    arr = np.asarray(array)
    if arr.ndim != geometry.ndim:
        raise ValueError(f"{p}: array has {arr.ndim} axes but the geometry {geometry.ndim}")
    if arr.dtype == np.bool_ or arr.dtype == np.int64:
        arr = arr.astype(np.uint8 if arr.max(initial=0) < 256 and arr.min(initial=0) >= 0 else np.int32)
    img = sitk.GetImageFromArray(np.ascontiguousarray(arr))
    img.SetSpacing(tuple(float(s) for s in geometry.spacing[::-1]))
    img.SetOrigin(tuple(float(o) for o in geometry.origin))
    img.SetDirection(tuple(float(v) for v in geometry.direction))
    p.parent.mkdir(parents=True, exist_ok=True)
    suffix = ".nii.gz" if p.name.lower().endswith(".nii.gz") else p.suffix
    tmp = p.with_name(f".{p.name}.tmp{suffix}")
    try:
        sitk.WriteImage(img, str(tmp), useCompression=True)
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)
