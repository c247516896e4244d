"""NIfTI headers whose voxel grid readers would guess at: refused with the field named.

A NIfTI file says where its voxels lie three ways (``pixdim``, the qform, the sform), and
SimpleITK resolves contradictions between them without a word: a NaN or zero ``pixdim`` becomes
1 mm, a negative one flips the axis, a sheared sform is swapped for the qform, an sform whose
scales differ from ``pixdim`` keeps ``pixdim``'s, and when qform and sform disagree the sform wins
(other tools take the qform). A segmentation whose voxel sizes or position were guessed is wrong
where it matters (volumes in mm³, distances in mm, resampling), so each of these is refused:

- ``pixdim`` of every spatial axis must be finite and positive;
- a qform in use (``qform_code`` > 0) must be finite; an sform in use must be finite, have
  orthogonal axes (no shear) and scales equal to ``pixdim``;
- when both are in use they must place every corner of the volume within
  :data:`AGREEMENT_VOXELS` of a voxel of each other.

The header is read with nibabel; nothing but the header is decoded. A NIfTI-2 file (which
SimpleITK cannot read) is named as such, with how to convert it.
"""

from __future__ import annotations

import io
import itertools
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from components.io.volume_headers import GZIP_MAGIC

AGREEMENT_VOXELS = 0.05  # qform and sform may differ by this fraction of the smallest voxel size
SCALE_RTOL = 1e-3  # sform column norms vs pixdim (relative; float32 headers), as grids.SPACING_RTOL
ORTHOGONAL_ATOL = 1e-3  # |cos| between two sform axes: more is a shear
_XFORM = {0: "unknown", 1: "scanner", 2: "aligned", 3: "talairach", 4: "mni", 5: "template"}


def _code(value: object) -> str:
    code = int(np.asarray(value))
    return f"{code} ({_XFORM.get(code, 'unknown')})"


_QFORM_FIELDS = ("quatern_b", "quatern_c", "quatern_d", "qoffset_x", "qoffset_y", "qoffset_z")


def _raw_header(path: Path) -> Any:
    """The file's NIfTI-1/-2 header as stored (nibabel's ``check=False``: ``nib.load`` would quietly
    repair zero or negative ``pixdim`` first); None when the file holds no single-file NIfTI header."""
    import gzip

    import nibabel as nib

    with path.open("rb") as fh:
        compressed = fh.read(2) == GZIP_MAGIC
    try:
        with gzip.open(path, "rb") if compressed else path.open("rb") as fh:
            block = fh.read(540)
    except (OSError, EOFError, zlib.error):
        return None
    for cls in (nib.Nifti1Header, nib.Nifti2Header):
        size = cls.sizeof_hdr
        if len(block) >= size and size in (
            int.from_bytes(block[:4], "little"),
            int.from_bytes(block[:4], "big"),
        ):
            try:
                header = cls.from_fileobj(io.BytesIO(block[:size]), check=False)
            except Exception:  # a header nibabel cannot parse: SimpleITK names the problem
                return None
            return header if bytes(header["magic"])[:2] == b"n+" else None
    return None


def _corners(shape: tuple[int, ...]) -> np.ndarray:
    """Homogeneous voxel coordinates of the volume's corners, ``(4, 2**3)``."""
    ends = [(0, max(n - 1, 0)) for n in (*shape[:3], 1, 1, 1)[:3]]
    pts = np.array(list(itertools.product(*ends)), dtype=np.float64).T
    return np.vstack([pts, np.ones((1, pts.shape[1]))])


def nifti_geometry_problems(path: Path) -> list[str]:
    """What is wrong with the voxel grid a NIfTI header describes (empty when nothing is).

    Args:
        path: A ``.nii`` or ``.nii.gz`` file (single-file NIfTI-1; a NIfTI-2 one is named as such).

    Returns:
        One message per problem, each naming the header fields, the values and the fix.
    """
    import nibabel as nib

    header = _raw_header(path)
    if header is None:
        return []
    if isinstance(header, nib.Nifti2Header):
        return [
            "a NIfTI-2 file, which SimpleITK (segflow's reader) cannot read; expected NIfTI-1: convert it "
            "(e.g. nibabel: nib.save(nib.Nifti1Image.from_image(nib.load(path)), 'case.nii.gz'))"
        ]
    try:
        shape = tuple(int(d) for d in header.get_data_shape())
    except Exception:  # a dim[0] outside 1..7: SimpleITK names the header unreadable
        return []
    axes = min(len(shape), 3)
    if axes < 1:
        return []
    pixdim = np.asarray(header["pixdim"][1 : axes + 1], dtype=np.float64)
    problems: list[str] = []
    if not (np.isfinite(pixdim).all() and (pixdim > 0).all()):
        problems.append(
            f"voxel size (pixdim) {tuple(round(float(v), 6) for v in pixdim)} is not a positive finite size "
            "in mm along every axis (readers would take 1 mm, or flip the axis); expected positive voxel "
            "sizes: fix the header (e.g. nibabel: img.header.set_zooms(...)) or re-export the volume"
        )
    qcode, scode = int(header["qform_code"]), int(header["sform_code"])
    qform = sform = None
    if qcode > 0:
        fields = [
            header[k] for k in ("quatern_b", "quatern_c", "quatern_d", "qoffset_x", "qoffset_y", "qoffset_z")
        ]
        if np.isfinite(np.asarray(fields, dtype=np.float64)).all() and not problems:
            try:
                qform = np.asarray(header.get_qform(), dtype=np.float64)
            except Exception as exc:  # nibabel: |(b, c, d)| > 1, a qfac (pixdim[0]) not +-1, ...
                problems.append(
                    f"qform (code {_code(qcode)}) is no rotation and voxel size ({exc}); expected a unit "
                    "quaternion |(b, c, d)| <= 1 and qfac (pixdim[0]) 1 or -1"
                )
        elif not problems:
            problems.append(
                f"qform (code {_code(qcode)}) holds NaN/Inf; expected finite quaternion and offsets"
            )
    if scode > 0:
        rows = np.asarray([header["srow_x"], header["srow_y"], header["srow_z"]], dtype=np.float64)
        if not np.isfinite(rows).all():
            problems.append(
                f"sform (code {_code(scode)}) holds NaN/Inf; expected a finite affine (srow_x/y/z)"
            )
        else:
            sform = np.vstack([rows, [0.0, 0.0, 0.0, 1.0]])
            problems += _sform_problems(sform[:3, :axes], pixdim, scode)
    if qform is not None and sform is not None and not problems:
        problems += _agreement(qform, sform, shape, pixdim, qcode, scode)
    return problems


def _sform_problems(matrix: np.ndarray, pixdim: np.ndarray, scode: int) -> list[str]:
    """Shear, zero axes and scales that differ from pixdim, in the sform's voxel axes ``(3, axes)``."""
    norms = np.linalg.norm(matrix, axis=0)
    if (norms <= 0).any():
        return [f"sform (code {_code(scode)}) has a zero axis; expected a voxel size on every axis"]
    unit = matrix / norms
    cos = np.abs(unit.T @ unit - np.eye(unit.shape[1]))
    if cos.max() > ORTHOGONAL_ATOL:
        return [
            f"sform (code {_code(scode)}) is sheared (axes at up to {float(cos.max()):.3f} cosine from "
            "orthogonal); expected a rotation times voxel sizes: resample the volume onto an orthogonal "
            "grid, or set sform_code 0 when the qform is the right geometry"
        ]
    usable = np.isfinite(pixdim).all() and (pixdim > 0).all()  # else pixdim's own problem is named
    if usable and not np.allclose(norms, pixdim, rtol=SCALE_RTOL, atol=0.0):
        return [
            f"sform (code {_code(scode)}) voxel sizes {tuple(round(float(v), 6) for v in norms)} differ from "
            f"pixdim {tuple(round(float(v), 6) for v in pixdim)}; expected one voxel size: make them agree "
            "(e.g. nibabel: img.set_sform(img.affine) after fixing the affine, then save)"
        ]
    return []


def _agreement(
    qform: np.ndarray, sform: np.ndarray, shape: tuple[int, ...], pixdim: np.ndarray, qcode: int, scode: int
) -> list[str]:
    corners = _corners(shape)
    apart = float(np.linalg.norm((qform - sform) @ corners, axis=0).max())
    if apart <= AGREEMENT_VOXELS * float(pixdim.min()):
        return []
    return [
        f"qform (code {_code(qcode)}) and sform (code {_code(scode)}) place the volume differently "
        f"(corners up to {apart:.3g} mm apart); tools disagree on which to use (ITK and nibabel take "
        "the sform, others the qform): make them agree (e.g. nibabel: img.set_qform(img.get_sform())) "
        "or set the wrong one's code to 0"
    ]


def is_nifti_name(path: Path) -> bool:
    """``.nii`` / ``.nii.gz`` by name."""
    return path.name.lower().endswith((".nii", ".nii.gz"))


def write_with_header(path: Path, array: np.ndarray, reference: Path) -> bool:
    """Write ``array`` as NIfTI with the header of the NIfTI ``reference`` (its input), if it fits.

    SimpleITK writes its own header (qform and sform codes 1, units mm): a prediction of an image
    whose header said qform code 0 and sform code 2 (aligned), or micrometres, would come back with
    other codes. Here the reference's header is kept whole: qform and sform with their codes,
    ``pixdim`` and units, orientation, description; only what describes the data changes
    (shape, type, scaling and display range).

    Shape:
        array ``(Z, Y, X)`` (array order; NIfTI stores x fastest, so the file holds ``array.T``).

    Returns:
        False (nothing written) when ``reference`` is no readable NIfTI or its spatial shape is not
        the array's; the caller then writes with SimpleITK.
    """
    import nibabel as nib

    try:
        ref = nib.load(str(reference))
    except Exception:
        return False
    header = ref.header
    if not isinstance(header, nib.Nifti1Header) or tuple(header.get_data_shape()[:3]) != array.shape[::-1]:
        return False
    header = header.copy()
    header.set_data_shape(array.shape[::-1])
    header.set_data_dtype(array.dtype)
    header.set_slope_inter(1.0, 0.0)
    header["cal_min"], header["cal_max"] = 0.0, 0.0
    header["intent_code"] = 0
    cls = nib.Nifti2Image if isinstance(header, nib.Nifti2Header) else nib.Nifti1Image
    image = cls(np.ascontiguousarray(array.T), None, header=header)
    nib.save(image, str(path))
    return True
