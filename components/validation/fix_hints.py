"""Fix hints that fit the dataset's files: 2D images (PNG/TIFF) or volumes (NIfTI/NRRD/MHA).

A check's fix is one sentence for the user; telling someone with NIfTI volumes to "re-export the
image as PNG/TIFF" or that their 4D mask is "not an RGB colour mask" sends them the wrong way. The
checks whose fix depends on the file kind take it from :data:`HINTS`; a dataset holding both kinds
gets both hints, each labelled.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from components.io import is_volume, split_image_paths

# check name -> (fix for 2D images, fix for volumes)
HINTS: dict[str, tuple[str, str]] = {
    "has_mask": (
        "add masks/<stem>.png (same stem as the image) or remove the image",
        "add masks/<stem>.nii.gz (or .nrrd/.mha; same stem as the image) or remove the image",
    ),
    "image_readable": (
        "re-export the image as PNG/TIFF (or remove the case); the file may be truncated or not an image",
        "copy the volume again from its source, or re-export it as NIfTI/NRRD/MHA with a header that "
        "matches its voxels (or remove the case); each file's line says what does not match",
    ),
    "mask_readable": (
        "re-export the mask as a single-channel PNG (or remove the case)",
        "copy the mask again from its source, or re-export it as a 3D class-index NIfTI/NRRD/MHA volume "
        "on its image's grid (or remove the case)",
    ),
    "mask_single_channel": (
        "save masks as one-channel class-index images (PIL mode L or P), not RGB colour masks",
        "save masks as 3D class-index volumes (one class value per voxel), not 4D or vector volumes "
        "(one channel per class: store the argmax)",
    ),
}


def file_kinds(meta: pd.DataFrame) -> set[str]:
    """``"volume"`` and/or ``"2d"``: the kinds of file the table's image and mask paths name."""
    kinds: set[str] = set()
    for column in ("image_path", "mask_path"):
        if column not in meta.columns:
            continue
        for field in meta[column].dropna():
            kinds.update("volume" if is_volume(Path(p)) else "2d" for p in split_image_paths(str(field)))
    return kinds


def fix_hint(kinds: set[str], check: str) -> str:
    """The fix of ``check`` for the dataset's file kinds (2D hint when no file was seen)."""
    flat, volume = HINTS[check]
    if kinds == {"volume"}:
        return volume
    if "volume" in kinds:
        return f"2D images: {flat}; volumes: {volume}"
    return flat
