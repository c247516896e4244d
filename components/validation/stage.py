"""What the validate stage does, in plain Python: list the dataset's files, read what it says about
itself (``dataset.json``), tabulate every case, run the suite, check ``dataset.json`` against the
files, resolve the classes and channels, and only then write the fingerprint, the dataset report,
the near-duplicate report and the manifest.

Nothing but the suite's own report (``result.json`` and the Data Docs, which show the failures) is
written before every check has passed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from components.core import layout
from components.data.dataset_json import read_dataset_json
from components.data.discovery import discover
from components.data.raw_layout import dataset_folders
from components.validation.dataset_description import (
    check_against_files,
    declared_classes,
    resolve_labels,
    suite_values,
)
from components.validation.dataset_report import dataset_report, write_dataset_report
from components.validation.duplicate_groups import NearDuplicateOptions
from components.validation.duplicate_report import (
    near_duplicate_report,
    report_lines,
    write_near_duplicate_report,
)
from components.validation.fingerprint import compute_fingerprint, write_fingerprint
from components.validation.manifest import write_manifest
from components.validation.mask_recoding import read_foreground_as_one
from components.validation.metadata import build_metadata
from components.validation.report import DatasetValidationError
from components.validation.suite import validate_metadata


def validate_dataset(
    data_dir: Path,
    classes: Mapping[str, int] | str,
    channels: int | str,
    ignore_label: int | None = None,
    near_duplicates: NearDuplicateOptions | None = None,
) -> Path:
    """Validate ``data_dir`` and write the validate stage's outputs (paths of :mod:`components.core.layout`,
    relative to the working directory).

    Args:
        data_dir: The dataset folder: ``images/`` + ``masks/`` or an MSD / nnU-Net folder
            (``imagesTr/`` + ``labelsTr/``), optional ``rois/``, ``cases.csv``, ``dataset.json``.
        classes: ``data.classes``: name -> mask value, or ``"auto"`` (``dataset.json``'s labels,
            else the mask values found).
        channels: ``data.channels``: the channel count every image must have, or ``"auto"``
            (``dataset.json``'s, else whatever count the images share).
        ignore_label: ``data.ignore_label``.
        near_duplicates: The near-duplicate search (``validate``); None: group with the defaults.

    Returns:
        The manifest's path.

    Raises:
        FileNotFoundError: ``data_dir`` is not a folder.
        DiscoveryError: The folder cannot be paired (see ``discover``).
        DatasetJsonError: ``dataset.json`` is not a dataset description.
        DatasetDescriptionError: ``dataset.json`` disagrees with the files, or the classes cannot be
            told from the masks.
        DatasetValidationError: The suite failed (the message lists every failed check).
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(
            f"data.dir '{data_dir}' is not a folder; it must hold images/ and masks/ (or an MSD / nnU-Net "
            "folder's imagesTr/ and labelsTr/)"
        )
    options = near_duplicates or NearDuplicateOptions()
    found = discover(root)
    description = read_dataset_json(root)
    declared, source = declared_classes(classes, description, ignore_label)
    values = sorted(declared.values()) if declared is not None else None
    notes = list(found.notes)
    for note in notes:
        print(note)
    meta = build_metadata(found, values, root=root, ignore_label=ignore_label, near_duplicates=options)
    duplicates = near_duplicate_report(meta, options.threshold)
    for line in report_lines(duplicates):
        print(line)
    allowed = suite_values(declared, meta) + ([ignore_label] if ignore_label is not None else [])
    expected = channels if isinstance(channels, int) else None  # auto: every image like the majority
    outcome = validate_metadata(
        meta, allowed, layout.VALIDATION_REPORTS, expected_channels=expected, near_duplicates=options.mode
    )
    if not outcome.success:
        raise DatasetValidationError(outcome.failures, outcome.result_path)
    # after the suite: a file-level problem (a missing mask, say) is named by its own check first
    check_against_files(description, found, meta, ignore_label)
    labels = resolve_labels(declared, source, description, meta, ignore_label)
    for note in labels.notes:
        print(note)
    if labels.mask_foreground is not None:  # binary 0 / v masks: the later stages read v as class 1
        meta = read_foreground_as_one(meta, labels.mask_foreground)
    fingerprint = compute_fingerprint(
        meta,
        root,
        labels.class_names,
        ignore_label=ignore_label,
        class_source=labels.class_source,
        channel_names=labels.channel_names,
    )
    report = dataset_report(
        root,
        dataset_folders(root),
        description,
        labels,
        fingerprint["channels"],
        [*notes, *labels.notes],
        rois=(sum(p.roi is not None for p in found.pairs), len(found.pairs)),
    )
    write_fingerprint(fingerprint, layout.FINGERPRINT)
    write_dataset_report(report, layout.DATASET_REPORT)
    write_near_duplicate_report(duplicates, layout.NEAR_DUPLICATES)
    write_manifest(meta, layout.MANIFEST)
    return layout.MANIFEST
