"""Per-case metadata table: the facts the validation suite checks and the manifest records.

One row per discovered pair plus one row per unpaired image or mask, so that the expectation
suite can flag those files by name. Decoding problems never raise here: the row gets
``image_readable``/``mask_readable`` = False and the reason in ``read_error``.

Columns whose value cannot be known for a row (e.g. ``labels_ok`` of a missing or unreadable
mask) are null; GX column expectations skip nulls, so each problem is reported once, by the
check that owns it (``has_mask``, ``mask_readable``, ...).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from components.data.discovery import Discovery
from components.io import ImageReadError, file_stem, is_nifti, read_image, read_mask

BASE_COLUMNS: tuple[str, ...] = (
    "case_id",
    "patient_id",
    "image_path",
    "mask_path",
    "has_image",
    "has_mask",
    "image_readable",
    "mask_readable",
    "read_error",
    "depth",
    "height",
    "width",
    "channels",
    "dtype",
    "intensity_min",
    "intensity_max",
    "intensity_finite",
    "mask_depth",
    "mask_height",
    "mask_width",
    "mask_channels",
    "size_match",
    "labels_present",
    "labels_ok",
    "content_hash",
)


def frac_column(value: int) -> str:
    """Name of the column holding the pixel fraction of class ``value``."""
    return f"frac_{value}"


def check_class_values(class_values: Sequence[int]) -> list[int]:
    """Return the class values as a sorted list of ints.

    Raises:
        ValueError: Empty, duplicated, negative or non-integer values.
    """
    values = list(class_values)
    if not values or len(set(values)) != len(values):
        raise ValueError(f"class_values must be non-empty and unique, got {values}")
    if any(isinstance(v, bool) or int(v) != v or v < 0 for v in values):
        raise ValueError(f"class_values must be non-negative integers (mask pixel values), got {values}")
    return sorted(int(v) for v in values)


def _layout(arr: np.ndarray, nifti: bool) -> tuple[int, int, int, int]:
    """(depth, height, width, channels) of a 2D image ``(H, W[, C])`` or a NIfTI volume ``(Z, Y, X[, C])``."""
    if nifti and arr.ndim >= 3:
        return arr.shape[0], arr.shape[1], arr.shape[2], arr.shape[3] if arr.ndim > 3 else 1
    return 1, arr.shape[0], arr.shape[1], arr.shape[2] if arr.ndim > 2 else 1


def content_hash(arr: np.ndarray) -> str:
    """sha256 over pixel bytes, shape and dtype: equal for identical images in any file format.

    Shape: any array.
    """
    h = hashlib.sha256()
    h.update(f"{arr.dtype.str}|{arr.shape}|".encode())
    h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def _rel(path: Path | None, root: Path | None) -> str | None:
    if path is None:
        return None
    if root is None:
        return path.as_posix()
    return Path(os.path.relpath(path.absolute(), Path(root).absolute())).as_posix()


def _image_facts(path: Path) -> dict[str, Any]:
    arr = read_image(path)
    depth, height, width, channels = _layout(arr, is_nifti(path))
    return {
        "image_readable": True,
        "depth": depth,
        "height": height,
        "width": width,
        "channels": channels,
        "dtype": str(arr.dtype),
        "intensity_min": float(arr.min()),
        "intensity_max": float(arr.max()),
        "intensity_finite": bool(np.isfinite(arr).all()) if np.issubdtype(arr.dtype, np.inexact) else True,
        "content_hash": content_hash(arr),
    }


def _mask_facts(path: Path, class_values: list[int]) -> dict[str, Any]:
    arr = read_mask(path)
    depth, height, width, channels = _layout(arr, is_nifti(path))
    values, counts = np.unique(arr, return_counts=True)
    facts: dict[str, Any] = {
        "mask_readable": True,
        "mask_depth": depth,
        "mask_height": height,
        "mask_width": width,
        "mask_channels": channels,
        "labels_present": ",".join(str(v.item()) for v in values),
        "labels_ok": bool(np.isin(values, class_values).all()),
    }
    if channels == 1:  # class fractions only mean something for a class-index mask
        total = float(arr.size)
        lookup = dict(zip(values.tolist(), counts.tolist(), strict=True))
        facts.update({frac_column(v): lookup.get(v, 0) / total for v in class_values})
    return facts


def _row(
    case_id: str,
    patient_id: str,
    image: Path | None,
    mask: Path | None,
    class_values: list[int],
    root: Path | None,
) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(BASE_COLUMNS)
    row.update(
        case_id=case_id,
        patient_id=patient_id,
        image_path=_rel(image, root),
        mask_path=_rel(mask, root),
        has_image=image is not None,
        has_mask=mask is not None,
        read_error="",
    )
    errors: list[str] = []
    if image is not None:
        try:
            row.update(_image_facts(image))
        except ImageReadError as exc:
            row["image_readable"] = False
            errors.append(f"image: {exc}")
    if mask is not None:
        try:
            row.update(_mask_facts(mask, class_values))
        except ImageReadError as exc:
            row["mask_readable"] = False
            errors.append(f"mask: {exc}")
    row["read_error"] = "; ".join(errors)
    if row["image_readable"] and row["mask_readable"]:
        row["size_match"] = (row["depth"], row["height"], row["width"]) == (
            row["mask_depth"],
            row["mask_height"],
            row["mask_width"],
        )
    return row


_DTYPES: dict[str, Literal["bool", "object", "Int64", "float64"]] = {
    **dict.fromkeys(["has_image", "has_mask"], "bool"),
    **dict.fromkeys(
        ["image_readable", "mask_readable", "size_match", "labels_ok", "intensity_finite"], "object"
    ),
    **dict.fromkeys(
        ["depth", "height", "width", "channels", "mask_depth", "mask_height", "mask_width", "mask_channels"],
        "Int64",
    ),
    **dict.fromkeys(["intensity_min", "intensity_max"], "float64"),
}


def build_metadata(
    discovery: Discovery, class_values: Sequence[int], root: Path | None = None
) -> pd.DataFrame:
    """Decode every discovered file and tabulate its facts.

    Args:
        discovery: Output of ``components.data.discovery.discover``.
        class_values: Declared mask pixel values (e.g. ``[0, 1, 2]``).
        root: If given, ``image_path``/``mask_path`` are relative to it (POSIX style, ``..`` allowed);
            otherwise they are the discovered paths as POSIX strings.

    Returns:
        One row per pair (sorted by case id), then one per unpaired image, then one per unpaired
        mask. Columns: ``BASE_COLUMNS`` plus ``frac_<v>`` for every declared class value.
        Nullable flags (``image_readable``, ``mask_readable``, ``size_match``, ``labels_ok``) are
        True/False, or None where they do not apply.
    """
    values = check_class_values(class_values)
    rows = [_row(p.case_id, p.patient_id, p.image, p.mask, values, root) for p in discovery.pairs]
    rows += [_row(file_stem(p), file_stem(p), p, None, values, root) for p in discovery.unpaired_images]
    rows += [_row(file_stem(p), file_stem(p), None, p, values, root) for p in discovery.unpaired_masks]
    columns = [*BASE_COLUMNS, *(frac_column(v) for v in values)]
    meta = pd.DataFrame(rows, columns=columns)
    for col, dtype in _DTYPES.items():
        meta[col] = meta[col].astype(dtype)
    for col in (frac_column(v) for v in values):
        meta[col] = meta[col].astype("float64")
    text = ("case_id", "patient_id", "image_path", "mask_path", "read_error", "dtype", "labels_present")
    for col in (*text, "content_hash"):  # plain object columns: what GX's pandas backend expects
        meta[col] = meta[col].astype(object)
    return meta
