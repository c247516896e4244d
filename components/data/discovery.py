"""Dataset discovery: pair ``images/`` with ``masks/`` by file stem, attach patient ids.

A dataset folder looks like::

    data_dir/
      images/<case_id>.<png|jpg|jpeg|tif|tiff|nii|nii.gz>
      masks/<case_id>.<png|tif|tiff|nii|nii.gz>
      cases.csv            # optional: columns case_id, patient_id

Discovery only lists files; it never decodes them (the validation stage does). Files that
cannot be paired are returned, not raised, so that validation can report every problem at once.
Only structural ambiguities that make pairing impossible (missing folders, two images with the
same stem, a malformed ``cases.csv``) raise ``DiscoveryError``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from components.errors import UserError
from components.io import IMAGE_SUFFIXES, MASK_SUFFIXES, file_stem

CASES_CSV = "cases.csv"
CASES_COLUMNS = ("case_id", "patient_id")


class DiscoveryError(UserError, ValueError):
    """The dataset folder cannot be paired unambiguously (message names the file and the fix)."""


@dataclass(frozen=True)
class CasePair:
    """One image and its mask, sharing the file stem ``case_id``."""

    case_id: str
    image: Path
    mask: Path
    patient_id: str


@dataclass(frozen=True)
class Discovery:
    """Result of scanning a dataset folder.

    Attributes:
        pairs: Image/mask pairs sorted by ``case_id``.
        unpaired_images: Images without a mask of the same stem (sorted).
        unpaired_masks: Masks without an image of the same stem (sorted).
        ignored: Hidden files, sub-folders and files whose suffix is not an image/mask suffix.
    """

    pairs: list[CasePair]
    unpaired_images: list[Path]
    unpaired_masks: list[Path]
    ignored: list[Path]


def _has_suffix(path: Path, suffixes: tuple[str, ...]) -> bool:
    return path.name.lower().endswith(suffixes)


def _scan(folder: Path, suffixes: tuple[str, ...], kind: str) -> tuple[dict[str, Path], list[Path]]:
    """Map stem -> file for one folder; return (files by stem, ignored entries)."""
    if not folder.is_dir():
        raise DiscoveryError(
            f"{folder}: {kind} folder not found; a dataset needs images/ and masks/ sub-folders "
            "whose files are paired by file stem"
        )
    by_stem: dict[str, Path] = {}
    ignored: list[Path] = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file() or not _has_suffix(path, suffixes):
            ignored.append(path)
            continue
        stem = file_stem(path)
        if stem in by_stem:
            raise DiscoveryError(
                f"{by_stem[stem]} and {path}: two {kind} files share the stem {stem!r}, so the pairing "
                f"is ambiguous; keep one of them (accepted suffixes: {', '.join(suffixes)})"
            )
        by_stem[stem] = path
    return by_stem, ignored


def read_cases_csv(path: Path) -> dict[str, str]:
    """Read ``cases.csv`` into ``{case_id: patient_id}``.

    Raises:
        DiscoveryError: Missing ``case_id``/``patient_id`` columns, empty values or duplicate case ids.
    """
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in CASES_COLUMNS if c not in columns]
        if missing:
            raise DiscoveryError(
                f"{path}: expected columns {', '.join(CASES_COLUMNS)} but found {columns or 'no header'} "
                f"(missing: {', '.join(missing)}); the header line must be 'case_id,patient_id'"
            )
        mapping: dict[str, str] = {}
        for line_no, row in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
            case_id, patient_id = row["case_id"], row["patient_id"]
            if not case_id or not patient_id:
                raise DiscoveryError(f"{path}, line {line_no}: case_id and patient_id must both be set")
            if case_id in mapping:
                raise DiscoveryError(f"{path}, line {line_no}: case_id {case_id!r} is listed twice")
            mapping[case_id] = patient_id
    return mapping


def discover(data_dir: Path) -> Discovery:
    """Pair ``data_dir/images`` with ``data_dir/masks`` by file stem.

    Args:
        data_dir: Dataset folder with ``images/``, ``masks/`` and optionally ``cases.csv``.

    Returns:
        The pairs (sorted by case id) plus unpaired and ignored files. ``patient_id`` comes from
        ``cases.csv`` when present, else it is the case id itself (one patient per case).

    Raises:
        DiscoveryError: A folder is missing, two files in one folder share a stem, or
            ``cases.csv`` is malformed or lacks a row for a paired case.
    """
    data_dir = Path(data_dir)
    images, ignored_images = _scan(data_dir / "images", IMAGE_SUFFIXES, "image")
    masks, ignored_masks = _scan(data_dir / "masks", MASK_SUFFIXES, "mask")
    paired = sorted(images.keys() & masks.keys())

    patients: dict[str, str] = {}
    cases_csv = data_dir / CASES_CSV
    if cases_csv.is_file():
        patients = read_cases_csv(cases_csv)
        absent = [c for c in paired if c not in patients]
        if absent:
            shown = ", ".join(absent[:10]) + (" ..." if len(absent) > 10 else "")
            raise DiscoveryError(
                f"{cases_csv}: no patient_id for {len(absent)} case(s): {shown}; add one row per case "
                "(case_id = the file stem) so that splits can keep each patient's cases together"
            )

    pairs = [CasePair(c, images[c], masks[c], patients.get(c, c)) for c in paired]
    return Discovery(
        pairs=pairs,
        unpaired_images=[images[s] for s in sorted(images.keys() - masks.keys())],
        unpaired_masks=[masks[s] for s in sorted(masks.keys() - images.keys())],
        ignored=sorted(ignored_images + ignored_masks),
    )
