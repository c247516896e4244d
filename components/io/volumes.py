"""Medical volumes (NIfTI, NRRD, MHA) with their geometry, read and written through SimpleITK.

Arrays use the array-axis order ``(Z, Y, X)`` (SimpleITK's ``GetArrayFromImage``), and
:class:`Geometry` gives the spacing in that same order, so ``spacing[i]`` is the voxel size
along ``array.shape[i]``. Origin and direction stay in ITK's physical order (x, y, z), exactly
as read, so that a prediction written with the input's geometry has the input's affine.

A case's image is one file or one file per channel (nnU-Net's ``<case>_0000``, ``<case>_0001``,
...); the manifest stores the channel files in one ``image_path`` field joined by
:data:`IMAGE_PATHS_SEP`. :func:`read_case_image` reads them channels first and refuses channels
that do not share one voxel grid: stacking them would pair voxels from different places.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from components.core.errors import UserError
from components.io.file_kinds import content_problem
from components.io.grids import GridMismatch, grid_mismatches, grid_problems
from components.io.nifti_geometry import is_nifti_name, nifti_geometry_problems, write_with_header
from components.io.text_headers import meta_header_problems
from components.io.volume_headers import HeaderError, data_stream
from components.io.volume_streams import StreamError, StreamFacts, check_stream, restore_nonfinite

VOLUME_SUFFIXES: tuple[str, ...] = (".nii", ".nii.gz", ".nrrd", ".mha")
IMAGE_PATHS_SEP = ";"

# Volumes up to 2**30 voxels (a 512 x 512 x 4096 CT), checked on the header before any voxel is
# decoded: a few-byte file can claim a size that takes gigabytes to decode.
MAX_VOXELS_3D = 2**30


class VolumeReadError(UserError, ValueError):
    """A file could not be read as a medical volume (the message names it and why)."""


def size_limit_message(path: Path, shape: Sequence[int], n: float, limit: int, kind: str) -> str:
    """The refusal of a header that claims more than ``limit`` pixels/voxels (shared wording)."""
    return (
        f"{path}: header claims shape {tuple(int(d) for d in shape)} = {n:,.0f} {kind}, over the limit "
        f"of {limit:,}; refusing to decode it (a corrupt or malicious header?)"
    )


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

    def __post_init__(self) -> None:
        # -0.0 (a cosine of an axis flip, as headers store it) reads as 0.0: equal either way, but a
        # message naming a direction must not show "-0.0"
        for name in ("origin", "direction"):
            object.__setattr__(self, name, tuple(float(v) + 0.0 for v in getattr(self, name)))

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
    """Shape (array order, channels first for 4D) and geometry, from the header only.

    Raises:
        VolumeReadError: An unreadable header, a MetaImage header whose fields disagree with its
            ``NDims`` (SimpleITK would abort the process), or a ``<name>.nii.gz`` with a
            ``<name>.nii`` beside it: SimpleITK (nifti_io) then reads the ``.nii`` instead.
    """
    import SimpleITK as sitk

    shadow = Path(path).with_suffix("") if Path(path).name.lower().endswith(".nii.gz") else None
    if shadow is not None and shadow.is_file():
        raise VolumeReadError(
            f"{path}: {shadow.name} lies beside it, and SimpleITK reads that file when asked for this "
            "one; expected one file per volume: remove or rename one of them"
        )
    kind = content_problem(Path(path))  # SimpleITK reads a renamed PNG as one, without a word
    if kind is not None:
        raise VolumeReadError(f"{path}: {kind}")
    if Path(path).name.lower().endswith(".mha"):  # SimpleITK aborts the process on some of these
        problems = meta_header_problems(Path(path))
        if problems:
            raise VolumeReadError(f"{path}: " + "; ".join(problems))
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:  # what ITK refuses (a sheared sform, a missing data file) is named
        problems = _header_problems(path) or [f"cannot be read as a volume ({_itk_reason(exc)})"]
        raise VolumeReadError(f"{path}: " + "; ".join(problems)) from None
    size = tuple(int(s) for s in reader.GetSize())[::-1]
    comps = int(reader.GetNumberOfComponents())
    shape = ((comps,) if comps > 1 else ()) + size
    return shape, _sub_geometry(reader.GetSpacing(), reader.GetOrigin(), reader.GetDirection())


def _nifti_problems(path: Path) -> list[str]:
    return nifti_geometry_problems(path) if is_nifti_name(path) else []


def _header_problems(path: Path) -> list[str]:
    """Why a header ITK refused is wrong, in this module's words (a NIfTI grid, the data stream)."""
    problems = _nifti_problems(path)
    if problems:
        return problems
    try:
        stream = data_stream(path)
        if stream is not None:
            check_stream(stream, path)
    except (StreamError, HeaderError) as exc:
        return [str(exc).removeprefix(f"{path}: ")]
    return []


def _itk_reason(exc: RuntimeError) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[-1] if lines else type(exc).__name__


def read_volume(path: str | Path) -> tuple[np.ndarray, Geometry]:
    """Read a volume in its stored dtype: ``(Z, Y, X)``, or ``(C, Z, Y, X)`` for a 4D/vector file.

    Before any voxel is decoded: the header is read, a volume claiming more than
    ``MAX_VOXELS_3D`` voxels (or more bytes than this machine's memory) is refused, and the voxel
    data is walked to check that it ends exactly where the header says
    (:mod:`components.io.volume_streams`): a truncated file, a compressed stream that inflates
    past the header's size (a decompression bomb) or bytes after it are refused, never decoded as
    zeros. NaN/Inf voxels that the NIfTI reader replaces with 0 are put back, so that callers see
    the stored values. A scalar NIfTI without intensity scaling (the usual case) is decoded once:
    the walk keeps the voxels, which are exactly SimpleITK's array, and the header gives the grid.

    Raises:
        VolumeReadError: Missing, empty, oversized, truncated, overlong or undecodable file, or a
            header whose spacing or direction is not a voxel grid.
    """
    import SimpleITK as sitk

    p = Path(path)
    if not p.is_file():
        raise VolumeReadError(f"{p}: no such file")
    shape, header_geometry = read_volume_header(p)
    voxels = float(np.prod(shape[-3:], dtype=np.float64))  # spatial axes: channels are not voxels
    if voxels > MAX_VOXELS_3D:
        raise VolumeReadError(size_limit_message(p, shape, voxels, MAX_VOXELS_3D, "voxels"))
    try:
        stream = data_stream(p)
        # the stored voxels are SimpleITK's array (scalar NIfTI, no scaling): keep what the walk
        # decoded instead of decoding the file twice
        direct = stream is not None and stream.array_dtype is not None and shape == stream.dims[::-1]
        facts = check_stream(stream, p, keep=direct) if stream is not None else StreamFacts()
    except (StreamError, HeaderError) as exc:
        raise VolumeReadError(str(exc)) from None
    problems = _nifti_problems(p) or grid_problems(header_geometry)
    if problems:
        raise VolumeReadError(f"{p}: " + "; ".join(problems))
    if stream is not None and stream.array_dtype is not None and facts.data is not None:
        arr = np.frombuffer(facts.data, dtype=stream.array_dtype).reshape(shape)
        return arr.astype(arr.dtype.newbyteorder("="), copy=False), header_geometry
    try:
        img = sitk.ReadImage(str(p))
    except RuntimeError as exc:
        raise VolumeReadError(f"{p}: cannot be read as a volume ({_itk_reason(exc)})") from None
    arr = sitk.GetArrayFromImage(img)
    if img.GetNumberOfComponentsPerPixel() > 1:  # vector voxels (Z, Y, X, C) -> (C, Z, Y, X)
        arr = np.moveaxis(arr, -1, 0)
    if arr.size == 0:
        raise VolumeReadError(f"{p}: volume has no voxels")
    arr = np.ascontiguousarray(arr)
    if facts.nonfinite and stream is not None:
        try:
            arr = restore_nonfinite(arr, stream, facts.nonfinite, p)
        except StreamError as exc:
            raise VolumeReadError(str(exc)) from None
    return arr, _sub_geometry(img.GetSpacing(), img.GetOrigin(), img.GetDirection())


def write_volume(
    path: str | Path, array: np.ndarray, geometry: Geometry, reference: Path | None = None
) -> None:
    """Write a scalar volume ``(Z, Y, X)`` (or a 2D ``(H, W)`` grid) with ``geometry``, atomically.

    The format follows the suffix (``.nii.gz``, ``.nii``, ``.nrrd``, ``.mha``). With a NIfTI
    ``reference`` on the same grid (the image a prediction was made from), a NIfTI output keeps
    that file's header whole: qform/sform and their codes, voxel sizes and units, not only the
    affine (:func:`components.io.nifti_geometry.write_with_header`).
    """
    import SimpleITK as sitk

    p = Path(path)
    arr = np.asarray(array)
    if arr.ndim != geometry.ndim:
        raise ValueError(f"{p}: array has {arr.ndim} axes but the geometry {geometry.ndim}")
    if arr.dtype == np.bool_ or arr.dtype == np.int64:
        arr = arr.astype(np.uint8 if arr.max(initial=0) < 256 and arr.min(initial=0) >= 0 else np.int32)
    p.parent.mkdir(parents=True, exist_ok=True)
    suffix = ".nii.gz" if p.name.lower().endswith(".nii.gz") else p.suffix
    tmp = p.with_name(f".{p.name}.tmp{suffix}")
    try:
        like = reference is not None and is_nifti_name(p) and is_nifti_name(Path(reference))
        if not (like and reference is not None and write_with_header(tmp, arr, Path(reference))):
            img = sitk.GetImageFromArray(np.ascontiguousarray(arr))
            img.SetSpacing(tuple(float(s) for s in geometry.spacing[::-1]))
            img.SetOrigin(tuple(float(o) for o in geometry.origin))
            img.SetDirection(tuple(float(v) for v in geometry.direction))
            sitk.WriteImage(img, str(tmp), useCompression=True)
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)


class ChannelGridError(VolumeReadError):
    """A case's channel files are not on one voxel grid (the message names the file and the fields).

    Attributes:
        path: The offending channel file.
        channel: Its index among the case's files.
        reference: The first channel's file, whose grid the others must match.
        mismatches: How its grid differs from the first channel's.
    """

    def __init__(self, path: Path, channel: int, reference: Path, mismatches: list[GridMismatch]) -> None:
        self.path, self.channel, self.reference, self.mismatches = path, channel, reference, mismatches
        found = "; ".join(m.describe(f"channel {channel}", "channel 0") for m in mismatches)
        super().__init__(
            f"{path}: not on the voxel grid of the case's first channel {reference} ({found}); "
            "resample every channel of a case onto one grid"
        )


def join_image_paths(paths: Sequence[str]) -> str:
    """One manifest ``image_path`` field for a case's channel files (inverse of ``split_image_paths``)."""
    bad = [p for p in paths if IMAGE_PATHS_SEP in p]
    if bad:
        raise ValueError(f"image paths must not contain {IMAGE_PATHS_SEP!r}: {bad}")
    return IMAGE_PATHS_SEP.join(paths)


def split_image_paths(field: str) -> list[str]:
    """The channel files of a manifest ``image_path`` field, in channel order."""
    return field.split(IMAGE_PATHS_SEP)


ChannelReader = Callable[[Path], tuple[np.ndarray, Geometry]]


def stack_channels(paths: Sequence[Path], read: ChannelReader) -> tuple[np.ndarray, Geometry]:
    """Read each file channels first with ``read`` and concatenate them along the channel axis.

    Shape: ``(C, *S)``; each file contributes its own channels (a 4D file several, a 3D one).

    Raises:
        ChannelGridError: A file's spatial shape, spacing, origin or direction differs from the
            first file's (tolerances of ``grid_mismatches``); checked before the next is read.
        ValueError: ``paths`` is empty.
    """
    if not paths:
        raise ValueError("a case needs at least one image file")
    first, geometry = read(Path(paths[0]))
    arrays = [first]
    for k, path in enumerate(paths[1:], start=1):
        arr, geom = read(Path(path))
        mismatches = grid_mismatches(arr.shape[1:], geom, first.shape[1:], geometry)
        if mismatches:
            raise ChannelGridError(Path(path), k, Path(paths[0]), mismatches)
        arrays.append(arr)
    return (first if len(arrays) == 1 else np.concatenate(arrays, axis=0)), geometry


def _volume_channels_first(path: Path) -> tuple[np.ndarray, Geometry]:
    if not is_volume(path):
        raise VolumeReadError(f"{path}: not a volume file (expected one of {', '.join(VOLUME_SUFFIXES)})")
    arr, geometry = read_volume(path)
    return (arr if arr.ndim == geometry.ndim + 1 else arr[np.newaxis]), geometry


def read_case_image(paths: Sequence[Path]) -> tuple[np.ndarray, Geometry]:
    """Read a volume case's image channels first: one 3D file, one 4D file, or one file per channel.

    Shape: ``(C, Z, Y, X)``.

    Args:
        paths: The case's image files in channel order (see ``split_image_paths``).

    Returns:
        The channels and their common geometry.

    Raises:
        VolumeReadError: A file is not a readable volume.
        ChannelGridError: The channel files are not on one grid (names the offending file).
    """
    return stack_channels(paths, _volume_channels_first)
