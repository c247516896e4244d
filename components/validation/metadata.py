"""Per-case metadata table: the facts the validation suite checks and the manifest records.

One row per discovered pair plus one row per unpaired image or mask, so that the expectation
suite can flag those files by name. Decoding problems never raise here: the row gets
``image_readable``/``mask_readable`` = False and the reason in ``read_error``.

Columns whose value cannot be known for a row (e.g. ``labels_ok`` of a missing or unreadable
mask) are null; GX column expectations skip nulls, so each problem is reported once, by the
check that owns it (``has_mask``, ``mask_readable``, ...).

Every image is read channels first (``read_case_channels``: one file, a 4D file or one file per
channel), once: its geometry comes with the decoded voxels, so no header is read separately.
Grid columns: ``ndim`` (2 or 3), ``shape``/``mask_shape`` and ``spacing`` as comma-joined
values in array-axis order (``"35,51,35"``, ``"1.0,1.0,1.0"``; 2D files have spacing
``"1.0,1.0"``), ``size_match`` (mask shape == image shape), ``geometry_ok`` (spacing, origin and
direction of a volume mask equal its image's, and all channels share one grid) with the
mismatches in ``geometry_error``. A multi-channel case's ``image_path`` holds its files joined
by ``components.io.IMAGE_PATHS_SEP``.
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
from components.io import (
    ChannelGridError,
    ImageReadError,
    file_stem,
    is_volume,
    join_image_paths,
    read_case_channels,
    read_mask_channels_first,
    read_roi,
)
from components.validation.content import ImageThumbnail, image_thumbnail, mask_thumbnails
from components.validation.duplicate_groups import NearDuplicateOptions, add_duplicate_columns
from components.validation.geometry import (
    Grid,
    channel_problems,
    join_values,
    mask_geometry_problems,
)

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
    "ndim",
    "shape",
    "spacing",
    "depth",
    "height",
    "width",
    "channels",
    "dtype",
    "intensity_min",
    "intensity_max",
    "intensity_finite",
    "mask_shape",
    "mask_depth",
    "mask_height",
    "mask_width",
    "mask_channels",
    "size_match",
    "geometry_ok",
    "geometry_error",
    "labels_present",
    "labels_ok",
    "content_hash",
    "roi_path",
    "roi_ok",
    "roi_error",
    "split",
)


_THUMB, _MASK_THUMB = "_thumbnail", "_mask_thumbnail"  # row keys that never become columns
_COUNTS = "_value_counts"  # mask value -> voxels: labels_ok and frac_<v> once the class values are known


def frac_column(value: int) -> str:
    """Name of the column holding the pixel fraction of class ``value``."""
    return f"frac_{value}"


def frac_values(meta: pd.DataFrame) -> list[int]:
    """The class values a metadata table has ``frac_<v>`` columns for (declared, or found in the masks)."""
    prefix = frac_column(0)[:-1]
    return sorted(int(c[len(prefix) :]) for c in meta.columns if str(c).startswith(prefix))


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


def _layout(spatial: tuple[int, ...]) -> tuple[int, int, int]:
    """(depth, height, width) of a spatial shape ``(H, W)`` (depth 1) or ``(Z, Y, X)``."""
    return (spatial[0] if len(spatial) > 2 else 1), spatial[-2], spatial[-1]


def _label(value: np.generic) -> str:
    """A mask value as text; integral floats (float-typed label files) print as integers."""
    v = value.item()
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


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


def _image_facts(paths: Sequence[Path]) -> tuple[dict[str, Any], Grid]:
    arr, geometry = read_case_channels(paths)  # (C, *spatial)
    spatial = tuple(int(d) for d in arr.shape[1:])
    thumbnail = image_thumbnail(arr)  # its content box: the mask's thumbnail is cut from it too
    depth, height, width = _layout(spatial)
    facts = {
        "image_readable": True,
        "ndim": len(spatial),
        "shape": join_values(spatial),
        "spacing": join_values(geometry.spacing),
        "depth": depth,
        "height": height,
        "width": width,
        "channels": arr.shape[0],
        "dtype": str(arr.dtype),
        "intensity_min": float(arr.min()),
        "intensity_max": float(arr.max()),
        "intensity_finite": bool(np.isfinite(arr).all()) if np.issubdtype(arr.dtype, np.inexact) else True,
        "content_hash": content_hash(arr),
        _THUMB: thumbnail,
    }
    return facts, Grid(spatial, geometry, all(is_volume(p) for p in paths))


def _roi_facts(path: Path, mask_shape: str | None) -> dict[str, Any]:
    """``roi_ok`` and ``roi_error`` of a region-of-interest file (readable, single-channel, the
    mask's shape, not empty)."""
    try:
        roi = read_roi(path)
    except ImageReadError as exc:
        return {"roi_ok": False, "roi_error": f"ROI: {exc}"}
    shape = join_values(tuple(int(d) for d in roi.shape))
    if mask_shape is not None and shape != mask_shape:
        return {"roi_ok": False, "roi_error": f"ROI shape {shape} differs from the mask's {mask_shape}"}
    if not roi.any():
        return {"roi_ok": False, "roi_error": "ROI is empty (no pixel would be scored)"}
    return {"roi_ok": True, "roi_error": ""}


def _mask_facts(path: Path, image: ImageThumbnail | None) -> tuple[dict[str, Any], Grid]:
    arr, geometry = read_mask_channels_first(path)  # (C, *spatial); C > 1 is refused by the suite
    spatial = tuple(int(d) for d in arr.shape[1:])
    depth, height, width = _layout(spatial)
    values, counts = np.unique(arr, return_counts=True)
    facts: dict[str, Any] = {
        "mask_readable": True,
        "mask_shape": join_values(spatial),
        "mask_depth": depth,
        "mask_height": height,
        "mask_width": width,
        "mask_channels": arr.shape[0],
        "labels_present": ",".join(_label(v) for v in values),
        _COUNTS: dict(zip(values.tolist(), counts.tolist(), strict=True)),
    }
    if arr.shape[0] == 1:  # (multi-channel masks are refused by the suite)
        facts[_MASK_THUMB] = mask_thumbnails(arr, image)
    return facts, Grid(spatial, geometry, is_volume(path))


def _label_facts(row: dict[str, Any], allowed: set[int], class_values: list[int]) -> None:
    """Set ``labels_ok`` and the ``frac_<v>`` columns of a row whose mask was read."""
    counts: dict[Any, int] | None = row.pop(_COUNTS, None)
    if counts is None:
        return
    row["labels_ok"] = all(v in allowed for v in counts)  # 1.0 == 1; NaN is in no set
    if row["mask_channels"] == 1:  # class fractions only mean something for a class-index mask
        total = float(sum(counts.values()))
        row.update({frac_column(v): counts.get(v, 0) / total for v in class_values})


def _found_values(rows: Sequence[dict[str, Any]], ignore_label: int | None) -> list[int]:
    """The integer mask values >= 0 that the readable single-channel masks hold, but the ignore label."""
    found: set[int] = set()
    for row in rows:
        if row.get("mask_channels") == 1:
            found |= {int(v) for v in row.get(_COUNTS, {}) if float(v).is_integer() and v >= 0}
    return sorted(found - {ignore_label})


def _row(
    case_id: str,
    patient_id: str,
    images: Sequence[Path],
    mask: Path | None,
    root: Path | None,
    roi: Path | None = None,
    split: str | None = None,
) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(BASE_COLUMNS)
    image_paths = [_rel(p, root) or "" for p in images]
    row.update(
        case_id=case_id,
        patient_id=patient_id,
        image_path=join_image_paths(image_paths) if images else None,
        mask_path=_rel(mask, root),
        has_image=bool(images),
        has_mask=mask is not None,
        roi_path=_rel(roi, root),
        split=split,
    )
    errors: list[str] = []
    geometry: list[str] = []
    image_grid = mask_grid = None
    if images:
        try:
            facts, image_grid = _image_facts(images)
            row.update(facts)
        except ChannelGridError as exc:  # readable, but not one case: the geometry check owns it
            geometry += channel_problems(case_id, exc, image_paths[exc.channel])
        except ImageReadError as exc:
            row["image_readable"] = False
            errors.append(f"image: {exc}")
    if mask is not None:
        try:
            facts, mask_grid = _mask_facts(mask, row.get(_THUMB))
            row.update(facts)
        except ImageReadError as exc:
            row["mask_readable"] = False
            errors.append(f"mask: {exc}")
    row["read_error"] = "; ".join(errors)
    if image_grid is not None and mask_grid is not None:
        row["size_match"] = mask_grid.shape == image_grid.shape
        geometry += mask_geometry_problems(case_id, mask_grid, image_grid)
    if geometry or (image_grid is not None and mask_grid is not None):
        row["geometry_ok"] = not geometry
    row["geometry_error"] = "; ".join(geometry)
    if roi is not None:
        row.update(_roi_facts(roi, row.get("mask_shape")))
    return row


_DTYPES: dict[str, Literal["bool", "object", "Int64", "float64"]] = {
    **dict.fromkeys(["has_image", "has_mask"], "bool"),
    **dict.fromkeys(
        [
            "image_readable",
            "mask_readable",
            "size_match",
            "geometry_ok",
            "labels_ok",
            "intensity_finite",
            "roi_ok",
        ],
        "object",
    ),
    **dict.fromkeys(
        [
            "ndim",
            "depth",
            "height",
            "width",
            "channels",
            "mask_depth",
            "mask_height",
            "mask_width",
            "mask_channels",
        ],
        "Int64",
    ),
    **dict.fromkeys(["intensity_min", "intensity_max"], "float64"),
}


def build_metadata(
    discovery: Discovery,
    class_values: Sequence[int] | None,
    root: Path | None = None,
    ignore_label: int | None = None,
    near_duplicates: NearDuplicateOptions | None = None,
) -> pd.DataFrame:
    """Decode every discovered file and tabulate its facts.

    Args:
        discovery: Output of ``components.data.discovery.discover``.
        class_values: Declared mask pixel values (e.g. ``[0, 1, 2]``), or None: the values the
            masks hold (integers >= 0 but ``ignore_label``; :func:`frac_values` reads them back).
        root: If given, ``image_path``/``mask_path`` are relative to it (POSIX style, ``..`` allowed);
            otherwise they are the discovered paths as POSIX strings.
        ignore_label: The dataset's "not annotated" mask value (``data.ignore_label``): allowed in
            masks besides the class values.
        near_duplicates: How to search for near-duplicate images (``validate``); None = not at all.

    Returns:
        One row per pair (sorted by case id), then one per unpaired image, then one per unpaired
        mask. Columns: ``BASE_COLUMNS``, ``frac_<v>`` for every declared class value, then the
        near-duplicate columns (``duplicate_groups.DUPLICATE_COLUMNS``; paired cases only).
        Nullable flags (``image_readable``, ``mask_readable``, ``size_match``, ``geometry_ok``,
        ``labels_ok``) are True/False, or None where they do not apply (``image_readable`` is
        None when the channel files were not stacked because their grids differ).
    """
    declared = None if class_values is None else check_class_values(class_values)  # before reading
    if declared is not None and ignore_label is not None:
        check_class_values([*declared, ignore_label])
    pairs = discovery.pairs
    rows = [_row(p.case_id, p.patient_id, p.image_channels, p.mask, root, p.roi, p.split) for p in pairs]
    rows += [_row(file_stem(p), file_stem(p), (p,), None, root) for p in discovery.unpaired_images]
    rows += [_row(file_stem(p), file_stem(p), (), p, root) for p in discovery.unpaired_masks]
    values = _found_values(rows, ignore_label) if declared is None else declared
    allowed = set(values) | ({ignore_label} if ignore_label is not None else set())
    for row in rows:
        _label_facts(row, allowed, values)
    n_pairs = len(pairs)
    thumbs = {r["case_id"]: r[_THUMB] for r in rows[:n_pairs] if _THUMB in r}
    mask_thumbs = {r["case_id"]: r[_MASK_THUMB] for r in rows[:n_pairs] if _MASK_THUMB in r}
    columns = [*BASE_COLUMNS, *(frac_column(v) for v in values)]
    meta = pd.DataFrame(rows, columns=columns)
    for col, dtype in _DTYPES.items():
        meta[col] = meta[col].astype(dtype)
    for col in (frac_column(v) for v in values):
        meta[col] = meta[col].astype("float64")
    for col in (c for c in BASE_COLUMNS if c not in _DTYPES):  # plain object columns: what GX's
        meta[col] = meta[col].astype(object)  # pandas backend expects
    options = near_duplicates or NearDuplicateOptions(mode="ignore")
    for line in absent_class_warnings(meta, values):
        print(line)
    return add_duplicate_columns(meta, thumbs, mask_thumbs, options)


def absent_class_warnings(meta: pd.DataFrame, class_values: Sequence[int]) -> list[str]:
    """One warning per declared foreground class value that no readable mask contains.

    Not an error: training still runs (the class is never a target, its Dice is undefined).
    """
    readable = meta[meta["mask_readable"].fillna(False).astype(bool)]
    if readable.empty:
        return []
    return [
        f"warning: data.classes declares mask value {v}, but none of the {len(readable)} masks "
        "contains it; training still runs, but that class is never learned and its metrics are "
        "undefined; remove it from data.classes, or check the masks"
        for v in class_values
        if v != 0 and not (readable[frac_column(v)].fillna(0) > 0).any()
    ]
