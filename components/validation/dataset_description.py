"""Classes and channels that describe themselves, and a ``dataset.json`` checked against the files.

Where the run's classes come from, first that applies:

1. ``data.classes`` in params.yaml (a name -> value mapping): the user's word wins;
2. ``dataset.json``'s ``labels`` (MSD or nnU-Net v2, :mod:`components.data.dataset_json`);
3. the mask values found: ``background`` for 0, then ``class_1``, ``class_2``, ...; they must be
   ``0..K-1`` without gaps (``data.ignore_label`` aside), else the user is asked to declare them.
   One exception: masks that hold exactly two values ``0 / v`` with ``v > 1`` are binary masks
   written as photograph datasets write them (``0 / 255``): ``v`` is read as ``class_1`` by every
   reader (:mod:`components.io.case_masks`), with a note, and the files stay as they are.

Channel names come from ``dataset.json`` (``channel_names`` or ``modality``), else none; the channel
count is the images' own (``data.channels: auto``) and the suite checks that every case agrees.

A ``dataset.json`` that disagrees with the files stops validate with every disagreement listed,
each naming the key and both values: a mask value its ``labels`` do not declare, a channel count
other than its ``channel_names``, a ``numTraining`` other than the cases paired, a file whose name
does not end in ``file_ending``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from components.core.errors import UserError
from components.data.dataset_json import IGNORE_NAME, DatasetJson
from components.data.discovery import Discovery
from components.io.case_masks import binary_foreground
from components.params.config import MAX_CLASSES
from components.validation.metadata import frac_column, frac_values

SOURCE_PARAMS = "data.classes (params.yaml)"
SOURCE_JSON = "dataset.json labels"
SOURCE_FOUND = "the label values found (class_1, ...)"
_SHOWN = 5  # files or cases named per problem


class DatasetDescriptionError(UserError, ValueError):
    """``dataset.json`` disagrees with the files, or the classes cannot be told from the masks."""


@dataclass(frozen=True)
class DatasetLabels:
    """What the run's classes and channels are, and where that came from.

    Attributes:
        classes: Class name -> mask value (``0..K-1``).
        class_source: One of ``SOURCE_PARAMS``, ``SOURCE_JSON``, ``SOURCE_FOUND``.
        channel_names: One name per channel from ``dataset.json``, or None.
        notes: What the user should know (printed, and kept in the validation report).
        mask_foreground: The stored value read as class 1 in binary ``0 / v`` masks, or None (the
            masks hold the class values themselves).
    """

    classes: dict[str, int]
    class_source: str
    channel_names: tuple[str, ...] | None = None
    notes: tuple[str, ...] = field(default=())
    mask_foreground: int | None = None

    @property
    def class_names(self) -> list[str]:
        """Class names ordered by mask value."""
        return [n for n, _ in sorted(self.classes.items(), key=lambda kv: kv[1])]


def _listing(items: list[str]) -> str:
    return ", ".join(items[:_SHOWN]) + (f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")


def _shown(classes: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {v}" for n, v in sorted(classes.items(), key=lambda kv: kv[1]))


def declared_classes(
    classes: Mapping[str, int] | str, description: DatasetJson | None, ignore_label: int | None
) -> tuple[dict[str, int] | None, str]:
    """The classes known before any mask is read, and their source; None: find them in the masks.

    Args:
        classes: ``data.classes`` (a mapping, or ``"auto"``).
        description: The dataset's ``dataset.json``, or None.
        ignore_label: ``data.ignore_label``.

    Raises:
        DatasetDescriptionError: ``dataset.json`` has an ``ignore`` label other than
            ``data.ignore_label``, or (used for the classes) labels that are not ``0..K-1``.
    """
    if description is not None and description.ignore_label not in (None, ignore_label):
        raise DatasetDescriptionError(
            f"{description.path}: labels declare {IGNORE_NAME!r} -> {description.ignore_label} (nnU-Net's "
            f"unannotated voxels), but data.ignore_label is {ignore_label}; set data.ignore_label: "
            f"{description.ignore_label} in params.yaml so those voxels count in no loss and no metric"
        )
    if isinstance(classes, Mapping):
        return dict(classes), SOURCE_PARAMS
    if description is None or description.labels is None:
        return None, SOURCE_FOUND
    labels = description.labels
    values = sorted(labels.values())
    if len(values) < 2 or values != list(range(len(values))):
        raise DatasetDescriptionError(
            f"{description.path}: labels {_shown(labels)}; the classes must be the mask values 0..K-1 "
            "without gaps, background (0) and at least one more: fix labels, or declare data.classes in "
            "params.yaml"
        )
    return dict(labels), SOURCE_JSON


def _value_cases(meta: pd.DataFrame) -> dict[str, list[str]]:
    """Mask value (as text) -> the cases whose readable mask holds it."""
    rows = meta[meta["mask_readable"].fillna(False).astype(bool)]
    cases: dict[str, list[str]] = defaultdict(list)
    for case_id, labels in zip(rows["case_id"], rows["labels_present"], strict=True):
        for value in str(labels or "").split(","):
            if value:
                cases[value].append(str(case_id))
    return cases


def _label_problems(description: DatasetJson, meta: pd.DataFrame, ignore_label: int | None) -> list[str]:
    if description.labels is None:
        return []
    declared = {str(v) for v in description.labels.values()}
    declared |= {str(v) for v in (description.ignore_label, ignore_label) if v is not None}
    extra = {v: c for v, c in _value_cases(meta).items() if v not in declared}
    return [
        f"labels declare the mask values {_shown(description.labels)}, but masks hold {value} "
        f"({len(cases)} case(s): {_listing(cases)}); add the value to labels or fix those masks"
        for value, cases in sorted(extra.items())
    ]


def _channel_problems(description: DatasetJson, meta: pd.DataFrame) -> list[str]:
    names = description.channel_names
    if names is None:
        return []
    rows = meta[meta["channels"].notna()]
    off = rows[rows["channels"] != len(names)]
    if off.empty:
        return []
    counts = off["channels"].astype(int).value_counts().sort_index()
    found = ", ".join(f"{n} in {k} case(s)" for n, k in zip(counts.index, counts.tolist(), strict=True))
    return [
        f"{description.channel_key} names {len(names)} channel(s) ({', '.join(names)}), but the images "
        f"have {found} ({_listing([str(c) for c in off['case_id']])}); fix {description.channel_key} or "
        "the images"
    ]


def _count_problems(description: DatasetJson, found: Discovery) -> list[str]:
    if description.num_training is None or description.num_training == len(found.pairs):
        return []
    unpaired = len(found.unpaired_images) + len(found.unpaired_masks)
    extra = f", and {unpaired} file(s) have no partner" if unpaired else ""
    fix = (
        "restore the missing files"
        if description.num_training > len(found.pairs)
        else "remove the extra cases"
    )
    return [
        f"numTraining is {description.num_training}, but the folder pairs {len(found.pairs)} case(s) "
        f"(an image and its mask){extra}; fix numTraining or {fix}"
    ]


def _ending_problems(description: DatasetJson, found: Discovery) -> list[str]:
    ending = description.file_ending
    if ending is None:
        return []
    files = [f for p in found.pairs for f in (*p.image_channels, p.mask)]
    off = [f"{f.parent.name}/{f.name}" for f in files if not f.name.endswith(ending)]
    if not off:
        return []
    return [
        f"file_ending is {ending!r}, but {len(off)} of the {len(files)} image and mask files end "
        f"otherwise ({_listing(off)}); fix file_ending or convert the files"
    ]


def check_against_files(
    description: DatasetJson | None, found: Discovery, meta: pd.DataFrame, ignore_label: int | None = None
) -> None:
    """Refuse a ``dataset.json`` that disagrees with the images and masks.

    Args:
        description: The dataset's ``dataset.json`` (None: nothing to check).
        found: The discovered cases.
        meta: Their metadata table (``build_metadata``).
        ignore_label: ``data.ignore_label``: a mask value its labels need not declare.

    Raises:
        DatasetDescriptionError: One line per disagreement (labels, channel count, numTraining,
            file_ending), each naming the key and both values.
    """
    if description is None:
        return
    problems = _label_problems(description, meta, ignore_label) + _channel_problems(description, meta)
    problems += _count_problems(description, found) + _ending_problems(description, found)
    if problems:
        raise DatasetDescriptionError(
            f"{description.path} disagrees with the files:\n" + "\n".join(f"  - {p}" for p in problems)
        )


def suite_values(declared: Mapping[str, int] | None, meta: pd.DataFrame) -> list[int]:
    """The mask values the suite accepts (``data.ignore_label`` aside): the declared classes' values, or
    the values found (their gaps are :func:`resolve_labels`' to refuse, once the suite passed)."""
    if declared is not None:
        return sorted(declared.values())
    return frac_values(meta) or [0]  # no mask could be read: the suite says why


def _found_classes(meta: pd.DataFrame, ignore_label: int | None) -> dict[str, int]:
    """Classes named after the mask values found (``background``, ``class_1``, ...).

    Raises:
        DatasetDescriptionError: The values are not ``0..K-1`` without gaps, or only background.
    """
    values = frac_values(meta)
    if len(values) >= 2 and values == list(range(len(values))) and len(values) <= MAX_CLASSES:
        return {("background" if v == 0 else f"class_{v}"): v for v in values}
    shown = ", ".join(map(str, values[:20])) + (f", ... ({len(values)} values)" if len(values) > 20 else "")
    missing = sorted(set(range(max(values, default=0) + 1)) - set(values))
    if len(values) < 2:
        why = f"only {shown or 'no value'}; a segmentation needs background (0) and a foreground class"
    elif missing:
        odd = [v for v in values if v >= len(values)]
        holders = [
            f"{v} in {_listing(meta.loc[meta[frac_column(v)].fillna(0) > 0, 'case_id'].astype(str).tolist())}"
            for v in odd[:_SHOWN]
        ]
        why = (
            f"not 0..{len(values) - 1} without gaps (missing {', '.join(map(str, missing[:10]))}"
            f"{' ...' if len(missing) > 10 else ''}; {'; '.join(holders)})"
        )
    else:
        why = f"more than {MAX_CLASSES} classes (a class-index mask holds a few values)"
    fix = (
        "Declare data.classes in params.yaml (name: value for every value 0..K-1; a class no mask holds "
        "only warns), set data.ignore_label to the value that marks unannotated pixels (e.g. 255), or fix "
        "the masks"
    )
    ignore = f" (data.ignore_label {ignore_label} aside)" if ignore_label is not None else ""
    raise DatasetDescriptionError(
        f"data.classes is auto and no dataset.json names the labels, so the classes are the mask values "
        f"found{ignore}: {shown}, {why}. {fix}"
    )


def resolve_labels(
    declared: Mapping[str, int] | None,
    source: str,
    description: DatasetJson | None,
    meta: pd.DataFrame,
    ignore_label: int | None,
) -> DatasetLabels:
    """The run's classes and channel names (see the module docstring), with notes for the user.

    Args:
        declared: :func:`declared_classes`' classes (None: from the masks).
        source: Its source.
        description: The dataset's ``dataset.json``, or None.
        meta: The metadata table, built with the declared values (or None: the values found).
        ignore_label: ``data.ignore_label``.

    Raises:
        DatasetDescriptionError: Classes found in the masks that are not ``0..K-1``.
    """
    notes: list[str] = []
    foreground = binary_foreground(frac_values(meta)) if declared is None else None
    if foreground is not None:
        classes = {"background": 0, "class_1": 1}
        notes.append(
            f"binary masks written as 0 / {foreground}: {foreground} is read as class_1 and 0 as background "
            f"(data.classes is auto and no dataset.json names labels; every mask holds only these values); "
            "the mask files are read as they are, and predictions are written as 0 / 1"
        )
    elif declared is None:
        classes = _found_classes(meta, ignore_label)
        notes.append(
            f"classes from the mask values found (data.classes is auto and no dataset.json names labels): "
            f"{_shown(classes)}; name them in data.classes (params.yaml) or in dataset.json's labels"
        )
    else:
        classes = dict(declared)
        labels = description.labels if description is not None else None
        if description is not None and labels is not None and labels != classes:
            notes.append(
                f"data.classes (params.yaml) is used: {_shown(classes)}; {description.path} labels say "
                f"{_shown(labels)}"
            )
    names = description.channel_names if description is not None else None
    return DatasetLabels(classes, source, names, tuple(notes), foreground)
