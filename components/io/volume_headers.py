"""Where a volume file keeps its voxel data, and how many bytes that data must be, from its header.

SimpleITK decodes volumes, but it does not check that the data ends where the header says: a
NIfTI file cut in half is read with the missing half as zeros, a compressed stream may inflate
far beyond the header's size, and NIfTI's NaN/Inf voxels come back as 0. So before decoding,
:mod:`components.io.volume_streams` walks the data itself; this module tells it where to look.

Each format's header is parsed only as far as that needs (the geometry stays SimpleITK's):

- NIfTI-1 (``.nii``, ``.nii.gz``): ``dim``, ``bitpix``, ``vox_offset``; the whole file is one
  gzip stream when it starts with the gzip magic (whatever its suffix), else raw. (SimpleITK
  reads no NIfTI-2: :mod:`components.io.nifti_geometry` says so and how to convert.)
- NRRD (``.nrrd``): ``sizes``, ``type``, ``encoding`` (raw, gzip), ``data file`` (attached or
  one detached file), ``line skip`` and ``byte skip``.
- MetaImage (``.mha``): ``DimSize``, ``ElementType``, ``ElementNumberOfChannels``,
  ``CompressedData`` (zlib), ``ElementDataFile`` (``LOCAL`` or one detached file), ``HeaderSize``.

Variants whose data cannot be walked as one stream (NIfTI pairs, NRRD text/hex encodings, file
lists and patterns, MetaImage ASCII data) give None: SimpleITK's own checks are all they get
(NRRD's bzip2 encoding SimpleITK cannot read at all, and says so).
"""

from __future__ import annotations

import gzip
import math
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from components.io.text_headers import meta_fields, text_header

GZIP_MAGIC = b"\x1f\x8b"


class HeaderError(ValueError):
    """The header contradicts itself (e.g. a data file outside any sensible place); names the field."""


@dataclass(frozen=True)
class DataStream:
    """The voxel data a header describes.

    Attributes:
        path: The file holding the data (the header's own file, or a detached data file).
        offset: Where the data (its compressed stream, when encoded) begins in ``path``; -1 for
            raw data stored at the file's end.
        skip: Decoded bytes that precede the voxels (NIfTI-in-gzip: the header; NRRD byte skip).
        size: Bytes of voxel data the header's shape and type need.
        encoding: ``raw`` or ``gzip`` (a gzip or zlib stream).
        dims: The header's shape, in the file's own axis order (for messages).
        type_name: The header's voxel type, as the header names it (for messages).
        float_dtype: Voxel dtype (with byte order) when the format's reader replaces NaN/Inf
            voxels (NIfTI floats), so that they must be counted here; else None.
        array_dtype: Set when the stored voxels are exactly the array SimpleITK would return (a
            2D/3D scalar NIfTI without intensity scaling): the dtype with its byte order, so the
            walked data can be kept as the array instead of being decoded twice; else None.
    """

    path: Path
    offset: int
    skip: int
    size: int
    encoding: str
    dims: tuple[int, ...]
    type_name: str
    float_dtype: np.dtype | None = None
    array_dtype: np.dtype | None = None

    def describe(self) -> str:
        """E.g. ``"48 x 48 x 20 int16 voxels"`` (the header's shape in its own axis order)."""
        return f"{' x '.join(str(d) for d in self.dims)} {self.type_name} voxels"


def data_stream(path: Path) -> DataStream | None:
    """The voxel data of the volume file ``path``, or None for variants not walked here.

    Raises:
        HeaderError: The header names a data file that is a folder or the header itself.
    """
    with path.open("rb") as fh:
        head = fh.read(16)
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return _nifti(path, head.startswith(GZIP_MAGIC))
    if name.endswith(".nrrd") and head.startswith(b"NRRD"):
        return _nrrd(path)
    if name.endswith(".mha"):
        return _meta(path)
    return None


# ------------------------------------------------------------------------------------------ NIfTI

_NIFTI_FLOATS = {16: "f4", 64: "f8"}  # datatype codes whose NaN/Inf nifti_io turns into 0
# scalar datatypes SimpleITK returns as stored (no scaling): code -> numpy kind
_NIFTI_DIRECT = {2: "u1", 4: "i2", 8: "i4", 16: "f4", 64: "f8", 256: "i1", 512: "u2", 768: "u4"}
_NIFTI_TYPES = {
    2: "uint8",
    4: "int16",
    8: "int32",
    16: "float32",
    32: "complex64",
    64: "float64",
    128: "rgb24",
    256: "int8",
    512: "uint16",
    768: "uint32",
    1024: "int64",
    1280: "uint64",
    1536: "float128",
    1792: "complex128",
    2048: "complex256",
    2304: "rgba32",
}


def _nifti(path: Path, compressed: bool) -> DataStream | None:
    with gzip.open(path, "rb") if compressed else path.open("rb") as fh:
        try:
            hdr = fh.read(352)
        except (OSError, EOFError, zlib.error):
            return None  # not even a header: SimpleITK's header read names the problem
    if len(hdr) < 352 or hdr[344:347] != b"n+1":
        return None  # no single-file NIfTI-1 (a .hdr/.img pair; NIfTI-2, which SimpleITK cannot read)
    end = "<" if struct.unpack("<i", hdr[:4])[0] == 348 else ">"
    dims = struct.unpack(end + "8h", hdr[40:56])
    datatype, bitpix = struct.unpack(end + "2h", hdr[70:74])
    vox, slope, inter = struct.unpack(end + "3f", hdr[108:120])
    n = int(dims[0])
    shape = tuple(int(d) for d in dims[1 : n + 1])
    if not 1 <= n <= 7 or min(shape) < 1 or bitpix < 8 or bitpix % 8 or not np.isfinite(vox):
        return None  # SimpleITK refuses such headers itself
    # an invalid vox_offset (below 352, e.g. 0): nifti_io and nibabel read right after the 348
    # header bytes, extender or not; so does this check
    offset = int(vox) if vox >= 352 else 348
    kind = _NIFTI_FLOATS.get(int(datatype))
    # nifti_io scales by scl_slope/scl_inter unless the slope is 0 or not finite, or 1 with no offset
    unscaled = (slope in (0.0, 1.0) or not np.isfinite(slope)) and (inter == 0.0 or not np.isfinite(inter))
    direct = _NIFTI_DIRECT.get(int(datatype)) if n in (2, 3) and unscaled else None
    if direct and np.dtype(direct).itemsize * 8 != bitpix:  # a bitpix that contradicts the datatype
        direct = None
    return DataStream(
        path=path,
        offset=0 if compressed else offset,
        skip=offset if compressed else 0,
        size=math.prod(shape) * (bitpix // 8),  # Python ints: no overflow
        encoding="gzip" if compressed else "raw",
        dims=shape,
        type_name=_NIFTI_TYPES.get(int(datatype), f"datatype {datatype}"),
        float_dtype=np.dtype(end + kind) if kind else None,
        array_dtype=np.dtype(end + direct) if direct else None,
    )


def _detached(header: Path, name: str) -> Path:
    if "\0" in name:
        raise HeaderError(f"{header}: its data file name {name!r} holds a NUL byte; expected a file name")
    data = (header.parent / name).resolve()
    if data == header.resolve() or data.is_dir():
        raise HeaderError(f"{header}: its data file {name!r} is {'itself' if data.is_file() else 'a folder'}")
    return data


# ------------------------------------------------------------------------------------------- NRRD

_NRRD_TYPES: dict[int, tuple[str, ...]] = {  # the NRRD spec's type names, by bytes per value
    1: ("signed char", "int8", "int8_t", "uchar", "unsigned char", "uint8", "uint8_t"),
    2: (
        "short",
        "short int",
        "signed short",
        "signed short int",
        "int16",
        "int16_t",
        "ushort",
        "unsigned short",
        "unsigned short int",
        "uint16",
        "uint16_t",
    ),
    4: ("int", "signed int", "int32", "int32_t", "uint", "unsigned int", "uint32", "uint32_t", "float"),
    8: (
        "longlong",
        "long long",
        "long long int",
        "signed long long",
        "signed long long int",
        "int64",
        "int64_t",
        "ulonglong",
        "unsigned long long",
        "unsigned long long int",
        "uint64",
        "uint64_t",
        "double",
    ),
}
_NRRD_TYPE_SIZE = {name: size for size, names in _NRRD_TYPES.items() for name in names}
_NRRD_ENCODINGS = {"raw": "raw", "gz": "gzip", "gzip": "gzip"}  # bzip2: SimpleITK's NrrdIO lacks it


def _nrrd(path: Path) -> DataStream | None:
    found = text_header(path, re.compile(r"^\s*$"), to_end=True)
    if found is None:
        return None
    lines, end = found
    fields: dict[str, str] = {}
    for line in lines[1:]:
        if line.startswith("#") or ":=" in line or ": " not in line:
            continue
        key, value = line.split(": ", 1)
        fields[key.strip().lower().replace(" ", "")] = value.strip()
    size = _NRRD_TYPE_SIZE.get(" ".join(fields.get("type", "").lower().split()))
    encoding = _NRRD_ENCODINGS.get(fields.get("encoding", "").lower())
    try:
        dims = tuple(int(v) for v in fields.get("sizes", "").split())
        line_skip = int(fields.get("lineskip", "0"))
        byte_skip = int(fields.get("byteskip", "0"))
    except ValueError:
        return None
    data_file = fields.get("datafile")
    if size is None or encoding is None or not dims or min(dims) < 1 or line_skip or byte_skip < -1:
        return None  # block types, text/hex data, line skips: left to SimpleITK (teem)
    if data_file is not None and (data_file.startswith("LIST") or " " in data_file or "%" in data_file):
        return None  # a list of files or a numbered pattern
    target = path if data_file is None else _detached(path, data_file)
    raw = encoding == "raw"
    base = end if data_file is None else 0
    return DataStream(
        path=target,
        offset=-1 if (raw and byte_skip == -1) else base + (byte_skip if raw else 0),
        skip=0 if raw else max(byte_skip, 0),
        size=math.prod(dims) * size,
        encoding=encoding,
        dims=dims,
        type_name=fields.get("type", "?"),
    )


# -------------------------------------------------------------------------------------- MetaImage

_MET_SIZES = {
    "MET_CHAR": 1,
    "MET_UCHAR": 1,
    "MET_SHORT": 2,
    "MET_USHORT": 2,
    "MET_INT": 4,
    "MET_UINT": 4,
    "MET_LONG": 4,
    "MET_ULONG": 4,
    "MET_LONG_LONG": 8,
    "MET_ULONG_LONG": 8,
    "MET_FLOAT": 4,
    "MET_DOUBLE": 8,
}


def _meta(path: Path) -> DataStream | None:
    found = meta_fields(path)
    if found is None:
        return None
    fields, end = found
    size = _MET_SIZES.get(fields.get("elementtype", "").upper())
    try:
        dims = tuple(int(v) for v in fields.get("dimsize", "").split())
        channels = int(fields.get("elementnumberofchannels", "1"))
        header_size = int(fields.get("headersize", "0"))
    except ValueError:
        return None
    data_file = fields.get("elementdatafile", "")
    binary = fields.get("binarydata", "true").lower() in ("true", "1")
    if size is None or not dims or min(dims) < 1 or channels < 1 or not binary:
        return None
    if data_file.upper().startswith("LIST") or "%" in data_file or " " in data_file or not data_file:
        return None  # a list of slice files or a numbered pattern
    local = data_file.upper() == "LOCAL"
    compressed = fields.get("compresseddata", "false").lower() in ("true", "1")
    target = path if local else _detached(path, data_file)
    base = end if local else 0
    return DataStream(
        path=target,
        offset=-1 if (header_size == -1 and not compressed) else base + max(header_size, 0),
        skip=0,
        size=math.prod(dims) * channels * size,
        encoding="gzip" if compressed else "raw",
        dims=dims + ((channels,) if channels > 1 else ()),
        type_name=fields.get("elementtype", "?"),
    )
