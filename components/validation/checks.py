"""The dataset checks: each one GX expectation over the metadata table, with a user-facing fix.

Every check names the path column(s) that identify an offending row, so that a failure can
list the files, and an ``observe`` function that says what was found in one offending row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from components.validation.fix_hints import file_kinds, fix_hint
from components.validation.geometry import shape_problem, split_shape
from components.validation.metadata import frac_column
from components.validation.near_duplicates import MASK_AGREEMENT

if TYPE_CHECKING:
    from great_expectations.expectations import Expectation

Row = dict[str, Any]


@dataclass(frozen=True)
class Check:
    """One named dataset rule.

    Attributes:
        name: Stable short name, stored in the expectation's ``meta['check']``.
        column: Metadata column the expectation reads ("" for table-level checks).
        description: What must hold, in words (also shown in Data Docs).
        fix: How the user repairs the data.
        path_columns: Columns naming the offending files (``image_path`` and/or ``mask_path``).
        observe: What one offending row shows (e.g. ``"labels 0,1,7"``).
        expectation: The GX expectation implementing the rule.
    """

    name: str
    column: str
    description: str
    fix: str
    path_columns: tuple[str, ...]
    observe: Callable[[Row], str]
    expectation: Expectation


def majority(meta: pd.DataFrame, column: str) -> int | None:
    """Most common value of an integer column among non-null rows (ties -> the smaller), or None."""
    counts = meta[column].dropna().value_counts()
    if counts.empty:
        return None
    top = counts[counts == counts.max()].index
    return int(min(top))


def _shape_note(row: Row) -> str:
    """What a ``size_match`` failure shows (worded like the geometry messages)."""
    mask, image = split_shape(row.get("mask_shape")), split_shape(row.get("shape"))
    if mask is None or image is None:
        return ""
    return shape_problem(str(row.get("case_id")), mask, image)


def _values_note(labels: object, shown: int = 12) -> str:
    """``"values 0,1,7"``; at most ``shown`` of them, and how many (a mask holding an image's
    intensities has thousands)."""
    values = str(labels or "").split(",")
    if len(values) <= shown:
        return f"values {','.join(values)}"
    return f"{len(values)} distinct values {','.join(values[:shown])},... (a class-index mask holds a few)"


def _duplicate_checks(near_duplicates: str) -> list[Check]:
    """Near-duplicate images: an error in ``fail`` mode, else a report (``mostly=0`` never fails
    but lists the cases in the Data Docs); disagreeing masks of near-duplicates: a report."""
    import great_expectations.expectations as gxe

    fail = near_duplicates == "fail"
    desc = (
        "No near-duplicate images (flipped, rotated, re-encoded or slightly cropped copies)"
        if fail
        else "Near-duplicate images (reported; the splits keep each group together)"
    )
    agree = f"Near-duplicate images have agreeing masks (mask agreement >= {MASK_AGREEMENT}; reported)"
    return [
        Check(
            "no_near_duplicates",
            "dup_group",
            desc,
            "remove the copies, or give each group one patient_id in cases.csv and set "
            "validate.near_duplicates: group (the splits then keep the copies together)",
            ("image_path",),
            lambda r: f"near-duplicate group {r.get('dup_group')}: {r.get('dup_partners')}",
            gxe.ExpectColumnValuesToBeNull(
                column="dup_group",
                mostly=1.0 if fail else 0.0,
                description=desc,
                meta={"check": "no_near_duplicates"},
            ),
        ),
        Check(
            "near_duplicate_masks_agree",
            "dup_mask_agreement",
            agree,
            "check the masks of the listed near-duplicates: one of them is labelled differently",
            ("mask_path",),
            lambda r: f"mask agreement {r.get('dup_mask_agreement')} with {r.get('dup_partners')}",
            gxe.ExpectColumnValuesToBeBetween(
                column="dup_mask_agreement",
                min_value=MASK_AGREEMENT,
                mostly=0.0,
                description=agree,
                meta={"check": "near_duplicate_masks_agree"},
            ),
        ),
    ]


def _all_background(meta: pd.DataFrame, background: str) -> bool:
    """True when masks were read and every one holds the background value only."""
    if background not in meta.columns:
        return False
    fractions = meta[background].dropna()
    return not fractions.empty and bool((fractions >= 1.0).all())


def _flat_volume_checks(meta: pd.DataFrame) -> list[Check]:
    """Volumes one voxel thick along an axis (a single slice saved as a volume: a cut-short export);
    listed only when some volume is that thin, so other suites are unchanged."""
    import great_expectations.expectations as gxe

    volumes = meta[meta["ndim"].eq(3).fillna(False).astype(bool)]
    for column, axis in (("depth", "z"), ("height", "y"), ("width", "x")):
        if not (volumes[column].dropna() < 2).any():
            continue
        desc = "Every volume is more than one voxel thick along each axis"

        def observe(r: Row, axis: str = axis) -> str:
            return f"shape {r.get('shape')} (array order z,y,x): 1 voxel along {axis}"

        return [
            Check(
                "volume_not_flat",
                column,
                desc,
                "a volume one voxel thick is a single slice, not a 3D scan (an export cut short?): export "
                "the whole volume, or save 2D data as PNG/TIFF images (a 2D dataset)",
                ("image_path",),
                observe,
                gxe.ExpectColumnValuesToBeBetween(
                    column=column,
                    min_value=2,
                    row_condition="ndim==3",
                    condition_parser="pandas",
                    description=desc,
                    meta={"check": "volume_not_flat"},
                ),
            )
        ]
    return []


def build_checks(
    meta: pd.DataFrame,
    class_values: Sequence[int],
    expected_channels: int | None = None,
    near_duplicates: str = "group",
) -> list[Check]:
    """Build the dataset checks for one metadata table.

    Args:
        meta: Output of ``build_metadata`` (used only to pick the majority channel count and
            number of spatial axes).
        class_values: Declared mask pixel values (with the ignore label, if any).
        expected_channels: Required image channel count; None = all images like the majority.
        near_duplicates: ``validate.near_duplicates``: ``fail`` makes near-duplicates an error.
    """
    import great_expectations.expectations as gxe

    allowed = ",".join(str(v) for v in class_values)
    kinds = file_kinds(meta)

    def in_set(name: str, column: str, values: list[Any], description: str) -> Expectation:
        return gxe.ExpectColumnValuesToBeInSet(
            column=column, value_set=values, description=description, meta={"check": name}
        )

    specs: list[tuple[str, str, str, str, tuple[str, ...], Callable[[Row], str], Any]] = [
        (
            "has_mask",
            "has_mask",
            "Every image has a mask with the same file stem",
            fix_hint(kinds, "has_mask"),
            ("image_path",),
            lambda r: "no mask",
            [True],
        ),
        (
            "has_image",
            "has_image",
            "Every mask has an image with the same file stem",
            "add the image images/<stem>.<ext> or remove the mask",
            ("mask_path",),
            lambda r: "no image",
            [True],
        ),
        (
            "image_readable",
            "image_readable",
            "Every image file can be decoded",
            fix_hint(kinds, "image_readable"),
            ("image_path",),
            lambda r: str(r.get("read_error") or "unreadable"),
            [True],
        ),
        (
            "image_finite",
            "intensity_finite",
            "Every image's pixels are finite numbers (no NaN or Inf)",
            "replace the NaN/Inf pixels (e.g. by the background value) or remove the case: "
            "non-finite inputs turn the network's weights into NaN",
            ("image_path",),
            lambda r: f"NaN/Inf pixels (min {r.get('intensity_min')}, max {r.get('intensity_max')})",
            [True],
        ),
        (
            "mask_readable",
            "mask_readable",
            "Every mask file can be decoded",
            fix_hint(kinds, "mask_readable"),
            ("mask_path",),
            lambda r: str(r.get("read_error") or "unreadable"),
            [True],
        ),
        (
            "size_match",
            "size_match",
            "Image and mask have the same shape (height and width, and depth for volumes)",
            "save the mask at the image's size (resize masks only with nearest-neighbour)",
            ("image_path", "mask_path"),
            _shape_note,
            [True],
        ),
        (
            "geometry_match",
            "geometry_ok",
            "Image and mask volumes (and all channels of an image) lie on one voxel grid: equal "
            "spacing (relative tolerance 1e-3), origin (1e-3 mm) and direction (1e-4)",
            "resample the mask (nearest-neighbour) or the channel onto the image's grid, or copy the "
            "image's header geometry when the voxels already correspond",
            ("image_path", "mask_path"),
            lambda r: str(r.get("geometry_error") or "grid mismatch"),
            [True],
        ),
        (
            "mask_single_channel",
            "mask_channels",
            "Masks are single-channel class-index images",
            fix_hint(kinds, "mask_single_channel"),
            ("mask_path",),
            lambda r: f"{r.get('mask_channels')} channels",
            [1],
        ),
        (
            "roi_valid",
            "roi_ok",
            "Every region-of-interest file (rois/) is readable, has its mask's shape and is not empty",
            "save rois/<case_id> as a single-channel image of the mask's size, non-zero inside the region",
            ("mask_path", "roi_path"),
            lambda r: str(r.get("roi_error") or "bad ROI"),
            [True],
        ),
        (
            "mask_labels_declared",
            "labels_ok",
            f"Mask values are among the declared class values {{{allowed}}}",
            f"fix the mask or declare the value in the class values (now {allowed})",
            ("mask_path",),
            lambda r: _values_note(r.get("labels_present")),
            [True],
        ),
    ]
    checks = [Check(n, c, d, f, p, o, in_set(n, c, v, d)) for n, c, d, f, p, o, v in specs]

    target = expected_channels if expected_channels is not None else majority(meta, "channels")
    if target is not None:
        how = "as configured" if expected_channels is not None else "as the majority of images"
        desc = f"All images have {target} channel(s) ({how})"
        fix = f"convert the images to {target} channel(s)" + (
            "" if expected_channels is not None else " or set the expected channel count"
        )
        checks.append(
            Check(
                "channels_consistent",
                "channels",
                desc,
                fix,
                ("image_path",),
                lambda r: f"{r.get('channels')} channels",
                in_set("channels_consistent", "channels", [target], desc),
            )
        )
    ndim = majority(meta, "ndim")
    if ndim is not None:
        desc = f"All images have {ndim} spatial axes (as the majority of images)"
        checks.append(
            Check(
                "ndim_consistent",
                "ndim",
                desc,
                f"keep only {ndim}D images in the dataset (2D images and 3D volumes cannot be mixed)",
                ("image_path",),
                lambda r: f"{r.get('ndim')}D",
                in_set("ndim_consistent", "ndim", [ndim], desc),
            )
        )

    desc = "No duplicate images (pixel content hash is unique)"
    checks.append(
        Check(
            "no_duplicate_images",
            "content_hash",
            desc,
            "remove the duplicated cases; a duplicate can land in both train and test and inflate scores",
            ("image_path",),
            lambda r: f"sha256 {str(r.get('content_hash'))[:12]}",
            gxe.ExpectColumnValuesToBeUnique(
                column="content_hash", description=desc, meta={"check": "no_duplicate_images"}
            ),
        )
    )
    if near_duplicates != "ignore":
        checks += _duplicate_checks(near_duplicates)
    background = frac_column(0)
    if _all_background(meta, background):  # listed only then, so a labelled set's suite is unchanged
        desc = "Some mask holds a foreground class (not every mask is background only)"
        checks.append(
            Check(
                "masks_not_all_background",
                background,
                desc,
                "every mask in masks/ is 0 everywhere: export the label masks (not empty ones) and "
                "declare their values in data.classes",
                (),
                lambda r: "",
                gxe.ExpectColumnMinToBeBetween(
                    column=background,
                    min_value=0,
                    max_value=1,
                    strict_max=True,
                    description=desc,
                    meta={"check": "masks_not_all_background"},
                ),
            )
        )
    checks += _flat_volume_checks(meta)
    desc = "The dataset is not empty"
    checks.append(
        Check(
            "dataset_not_empty",
            "",
            desc,
            "put images in images/ and masks in masks/, paired by file stem",
            (),
            lambda r: "",
            gxe.ExpectTableRowCountToBeBetween(
                min_value=1, description=desc, meta={"check": "dataset_not_empty"}
            ),
        )
    )
    return checks
