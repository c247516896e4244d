"""Dataset discovery: pair ``images/`` with ``masks/`` by file stem, attach patient ids.

A dataset folder looks like::

    data_dir/
      images/<case_id>.<png|jpg|jpeg|tif|tiff|nii|nii.gz|nrrd|mha>
      masks/<case_id>.<png|tif|tiff|nii|nii.gz|nrrd|mha>
      rois/<case_id>.<...>  # optional: region of interest (non-zero = scored), same stems
      cases.csv            # optional: columns case_id, patient_id (+ split: train | test)

``cases.csv`` (read by :mod:`components.data.case_table`) and ``rois/`` are reconciled with the
files: a row or ROI file naming a case that has no image and no mask (a file lost on the way)
stops discovery with the names listed, as does a paired case without a row.

Multi-channel cases follow nnU-Net's convention: ``images/<case_id>_0000.nii.gz``,
``images/<case_id>_0001.nii.gz``, ... pair with ``masks/<case_id>.nii.gz``. An image whose stem
ends in ``_dddd`` is a channel when no mask has its exact stem but a mask named without the
suffix exists; the channels of a case must be numbered 0..n-1 without gaps. (A single 4D file
is a multi-channel case too; that is only seen when it is read.)

Discovery only lists files; it never decodes them (the validation stage does). Files that
cannot be paired are returned, not raised, so that validation can report every problem at once.
Only structural ambiguities that make pairing impossible (missing folders, two images with the
same stem, a malformed ``cases.csv``) raise ``DiscoveryError``.

A Medical Segmentation Decathlon / nnU-Net raw folder (``imagesTr/``, ``labelsTr/``, optional
``imagesTs/`` and ``dataset.json``) is read the same way, with ``imagesTr/`` and ``labelsTr/`` in
place of ``images/`` and ``masks/`` (:mod:`components.data.raw_layout`).
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from components.data.case_table import CASES_CSV, CaseTable, DiscoveryError, read_cases_csv
from components.data.mask_names import mask_suffix
from components.data.raw_layout import dataset_folders, unlabelled_note
from components.data.regions import ROIS_DIR
from components.io import IMAGE_PATHS_SEP, IMAGE_SUFFIXES, MASK_SUFFIXES, file_stem
from components.io.images import LOSSY_FOREGROUND, is_lossy_mask

CHANNEL_STEM = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


@dataclass(frozen=True)
class CasePair:
    """One case: its image file(s) and its mask, sharing the stem ``case_id``.

    Attributes:
        case_id: The mask's file stem.
        image: The (first channel's) image file.
        mask: The mask file.
        patient_id: From ``cases.csv``, else the case id.
        image_channels: Every image file in channel order; ``(image,)`` for a single-file case
            (the default when omitted).
        roi: The case's region-of-interest file (``rois/``), or None.
        split: ``"train"``/``"test"`` from the ``split`` column of ``cases.csv``, or None.
    """

    case_id: str
    image: Path
    mask: Path
    patient_id: str
    image_channels: tuple[Path, ...] = field(default=())
    roi: Path | None = None
    split: str | None = None

    def __post_init__(self) -> None:
        if not self.image_channels:
            object.__setattr__(self, "image_channels", (self.image,))
        elif self.image_channels[0] != self.image:
            raise ValueError(f"{self.case_id}: image {self.image} is not the first channel file")


@dataclass(frozen=True)
class Discovery:
    """Result of scanning a dataset folder.

    Attributes:
        pairs: Image/mask pairs sorted by ``case_id``.
        unpaired_images: Images without a mask of the same stem (sorted).
        unpaired_masks: Masks without an image of the same stem (sorted).
        ignored: Hidden files, sub-folders and files whose suffix is not an image/mask suffix.
        notes: What discovery read differently from the files as written, for the user to see
            (e.g. ``validation`` rows joining the training pool).
        skipped_masks: The note on files of the masks folder not read as masks ("" if none): why an
            image whose mask is such a file (a BMP, say) has none.
    """

    pairs: list[CasePair]
    unpaired_images: list[Path]
    unpaired_masks: list[Path]
    ignored: list[Path]
    notes: list[str] = field(default_factory=list)
    skipped_masks: str = ""


def _group_channels(images: dict[str, Path], masks: dict[str, Path]) -> dict[str, tuple[Path, ...]]:
    """Case id -> image files in channel order, for every stem-paired or channel-grouped case.

    Raises:
        DiscoveryError: A case has both a plain image and channel files, or a channel is missing.
    """
    cases: dict[str, tuple[Path, ...]] = {s: (images[s],) for s in images.keys() & masks.keys()}
    channels: dict[str, dict[int, Path]] = defaultdict(dict)
    for stem, path in images.items():
        match = CHANNEL_STEM.match(stem)
        if match and stem not in masks and match["case"] in masks:
            channels[match["case"]][int(match["channel"])] = path
    for case_id, by_index in sorted(channels.items()):
        if case_id in cases:
            raise DiscoveryError(
                f"{cases[case_id][0]} and {by_index[min(by_index)]}: case {case_id!r} has both a "
                f"single image and channel files <case>_dddd; keep one form"
            )
        missing = sorted(set(range(max(by_index) + 1)) - by_index.keys())
        if missing:
            shown = ", ".join(f"{case_id}_{k:04d}" for k in missing)
            found = ", ".join(by_index[k].name for k in sorted(by_index))
            raise DiscoveryError(
                f"case {case_id!r}: channel {shown} is missing (found {found}); a case's channel "
                "files must be numbered _0000, _0001, ... without gaps"
            )
        cases[case_id] = tuple(by_index[k] for k in sorted(by_index))
    return cases


def _has_suffix(path: Path, suffixes: tuple[str, ...]) -> bool:
    return path.name.lower().endswith(suffixes)


def _scan(folder: Path, suffixes: tuple[str, ...], kind: str) -> tuple[dict[str, Path], list[Path]]:
    """Map stem -> file for one folder; return (files by stem, ignored entries)."""
    if not folder.is_dir():
        raise DiscoveryError(
            f"{folder}: {kind} folder not found; a dataset needs images/ and masks/ sub-folders (an MSD / "
            "nnU-Net folder: imagesTr/ and labelsTr/) whose files are paired by file stem"
        )
    by_stem: dict[str, Path] = {}
    ignored: list[Path] = []
    for path in sorted(folder.iterdir()):
        if path.is_symlink() and not path.exists() and _has_suffix(path, suffixes):
            # a link whose target is gone (e.g. a shared data store that moved) would silently drop
            # the case; links to existing files are read (and hashed by DVC) through their content
            raise DiscoveryError(
                f"{path}: a symbolic link to {os.readlink(path)}, which does not exist; expected an "
                f"{kind} file: restore the link's target, copy the file in, or remove the link"
            )
        if path.name.startswith(".") or not path.is_file() or not _has_suffix(path, suffixes):
            ignored.append(path)
            continue
        if IMAGE_PATHS_SEP in path.name:
            raise DiscoveryError(
                f"{path}: file names must not contain {IMAGE_PATHS_SEP!r} (the manifest joins a "
                "case's channel files with it); rename the file"
            )
        stem = file_stem(path)
        if stem in by_stem:
            raise DiscoveryError(
                f"{by_stem[stem]} and {path}: two {kind} files share the stem {stem!r}, so the pairing "
                f"is ambiguous; keep one of them (accepted suffixes: {', '.join(suffixes)})"
            )
        by_stem[stem] = path
    return by_stem, ignored


def _listing(ids: list[str]) -> str:
    """The first ten ids, comma-joined (``...`` when there are more)."""
    return ", ".join(ids[:10]) + (" ..." if len(ids) > 10 else "")


def _rois(folder: Path, case_ids: list[str], known: set[str]) -> dict[str, Path]:
    """Case id -> ROI file; {} without a ``rois/`` folder.

    Raises:
        DiscoveryError: ``rois/`` exists but lacks a file for some case, or holds a file for a
            case with no image and no mask (``known``: every image, mask and case stem).
    """
    if not folder.is_dir():
        return {}
    by_stem, _ = _scan(folder, MASK_SUFFIXES, "ROI")
    absent = [c for c in case_ids if c not in by_stem]
    if absent:
        raise DiscoveryError(
            f"{folder}: no region-of-interest file for {len(absent)} case(s): {_listing(absent)}; "
            "with a rois/ folder every case needs rois/<case_id>.<png|tif|nii.gz|...> "
            "(non-zero = scored pixels)"
        )
    ghosts = sorted(by_stem.keys() - known)
    if ghosts:
        shown = _listing([by_stem[g].name for g in ghosts])
        raise DiscoveryError(
            f"{folder}: {len(ghosts)} region-of-interest file(s) for cases with no image and no mask: "
            f"{shown}; expected rois/<case_id> only for the cases in images/ and masks/: restore the "
            "cases' files, or remove these ROI files"
        )
    return {c: by_stem[c] for c in case_ids}


def _ghost_rows(cases_csv: Path, table: CaseTable, known: set[str]) -> None:
    """Refuse ``cases.csv`` rows (and official splits) naming a case that has no file at all.

    Raises:
        DiscoveryError: Listing the case ids (and their split, when the table has one).
    """
    ghosts = sorted(c for c in table.patients if c not in known)
    if not ghosts:
        return
    splits = table.splits or {}
    shown = _listing([f"{c} ({splits[c]})" if c in splits else c for c in ghosts])
    raise DiscoveryError(
        f"{cases_csv}: {len(ghosts)} case(s) listed without an image or mask file: {shown}; expected "
        "images/<case_id>.<ext> and masks/<case_id>.<ext> for every row (a file lost on the way?): "
        "restore the files, or delete the rows"
    )


def _skipped_notes(
    data_dir: Path, folder: str, ignored: list[Path], accepted: tuple[str, ...], kind: str
) -> list[str]:
    """One note naming the files of ``folder`` that are not ``kind`` of an accepted suffix (hidden
    files aside)."""
    skipped = [p for p in ignored if not p.name.startswith(".")]
    if not skipped:
        return []
    return [
        f"{len(skipped)} entr(ies) in {folder}/ are not {kind} of an accepted kind and are skipped: "
        f"{_files(data_dir, skipped)} (accepted: {', '.join(accepted)})"
    ]


def _files(data_dir: Path, paths: list[Path]) -> str:
    shown = ", ".join(p.relative_to(data_dir).as_posix() for p in paths[:8])
    return shown + (f" and {len(paths) - 8} more" if len(paths) > 8 else "")


def _lossy_masks_note(data_dir: Path, folder: str, masks: list[Path]) -> list[str]:
    """A note for JPEG masks, read as binary (:data:`components.io.images.LOSSY_FOREGROUND`)."""
    lossy = [p for p in masks if is_lossy_mask(p)]
    if not lossy:
        return []
    return [
        f"{len(lossy)} mask(s) in {folder}/ are JPEG ({_files(data_dir, lossy)}) and are read as binary "
        f"masks: lossy compression adds values along every edge, so a pixel is foreground (1) where its "
        f"gray value is >= {LOSSY_FOREGROUND} and background (0) below; save masks losslessly (PNG, TIFF) "
        "to keep more than two classes"
    ]


def discover(data_dir: Path) -> Discovery:
    """Pair ``data_dir/images`` with ``data_dir/masks`` by file stem.

    Args:
        data_dir: Dataset folder with ``images/``, ``masks/`` (or an MSD / nnU-Net folder's
            ``imagesTr/``, ``labelsTr/``) and optionally ``cases.csv``.

    Returns:
        The pairs (sorted by case id; multi-channel cases grouped) plus unpaired and ignored
        files. ``patient_id`` comes from ``cases.csv`` when present, else it is the case id
        itself (one patient per case); ``split`` from its ``split`` column; ``roi`` from ``rois/``.

    Raises:
        DiscoveryError: A folder is missing, both layouts are present, two files in one folder
            share a stem, a file name contains ``;``, a file is a symbolic link to nothing, a
            case's channel files have a gap, ``cases.csv`` is malformed, has a path as a case id, lacks a
            row for a paired case or has a row for a case without any file, or ``rois/`` lacks a
            file for a case or holds one for a case without any file.
    """
    data_dir = Path(data_dir)
    folders = dataset_folders(data_dir)  # images/ + masks/, or an MSD / nnU-Net imagesTr/ + labelsTr/
    images, ignored_images = _scan(data_dir / folders.images, IMAGE_SUFFIXES, "image")
    masks, ignored_masks = _scan(data_dir / folders.masks, MASK_SUFFIXES, "mask")
    suffix = mask_suffix(set(images), sorted(masks))
    if suffix is not None:  # <image stem><suffix>: pair by the stem before the suffix
        masks = {stem[: -len(suffix)]: path for stem, path in masks.items()}
    cases = _group_channels(images, masks)
    paired = sorted(cases)
    used = {p for files in cases.values() for p in files}

    # every stem a row or ROI file may name: pairs, channel-grouped cases, unpaired files
    known = set(cases) | set(images) | set(masks)
    known |= {m["case"] for m in map(CHANNEL_STEM.match, images) if m}
    table = CaseTable({})
    notes = [n for n in (unlabelled_note(data_dir),) if n]  # an MSD / nnU-Net imagesTs/: not cases
    if suffix is not None:
        example = next(iter(sorted(masks.items())))
        notes.append(
            f"{folders.masks}/ names each mask after its image with {suffix!r} added (e.g. "
            f"{example[1].relative_to(data_dir).as_posix()} for the image {example[0]}): paired by the "
            f"stem before {suffix!r}"
        )
    cases_csv = data_dir / CASES_CSV
    if cases_csv.is_file():
        table = read_cases_csv(cases_csv)
        patients = table.patients
        absent = [c for c in paired if c not in patients]
        if absent:
            stems = set(images) | set(masks)
            unknown = sorted(c for c in patients if c not in stems)
            extra = (
                f" (its case_ids {_listing(unknown)} match no file: case_id is the file stem, without "
                "folder or suffix)"
                if unknown
                else ""
            )
            raise DiscoveryError(
                f"{cases_csv}: no patient_id for {len(absent)} case(s): {_listing(absent)}{extra}; add one "
                "row per case (case_id = the file stem) so that splits can keep each patient's cases together"
            )
        _ghost_rows(cases_csv, table, known)
        if table.validation:
            notes.append(
                f"{cases_csv}: {table.validation} case(s) marked as validation join the train cases "
                "(the k folds validate on every train case in turn; the test cases stay apart)"
            )

    # not silent: a file of another kind among the images or masks is named, never just dropped
    notes += _skipped_notes(data_dir, folders.images, ignored_images, IMAGE_SUFFIXES, "images")
    skipped_masks = _skipped_notes(data_dir, folders.masks, ignored_masks, MASK_SUFFIXES, "masks")
    notes += skipped_masks
    notes += _lossy_masks_note(data_dir, folders.masks, sorted(masks.values()))
    rois = _rois(data_dir / ROIS_DIR, paired, known)
    splits = table.splits or {}
    pairs = [
        CasePair(c, cases[c][0], masks[c], table.patients.get(c, c), cases[c], rois.get(c), splits.get(c))
        for c in paired
    ]
    return Discovery(
        pairs=pairs,
        unpaired_images=[images[s] for s in sorted(images) if images[s] not in used],
        unpaired_masks=[masks[s] for s in sorted(masks.keys() - cases.keys())],
        ignored=sorted(ignored_images + ignored_masks),
        notes=notes,
        skipped_masks="".join(skipped_masks),
    )
