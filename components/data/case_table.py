"""``cases.csv``: the table of a dataset's cases (patient per case, optionally an official split).

Columns ``case_id`` (the case's file stem), ``patient_id`` and optionally ``split``. The split
column takes the words datasets use (:data:`SPLIT_WORDS`): ``train``/``training``/``tr``,
``test``/``testing``/``ts``, and ``validation``/``val``/``valid``. Validation rows join the train
cases: segflow builds its own k folds from every case that is not test and validates on each
train case in turn (nnU-Net treats an official validation split the same way), so an official
validation set is not lost, only not held apart; discovery prints how many cases that was.

The file may be UTF-8 (with or without a BOM) or UTF-16 with a BOM (spreadsheet "Unicode text"),
with Windows, old Mac or Unix line endings, separated by commas, semicolons or tabs (what
spreadsheets export in different locales); blank lines are skipped.
"""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass
from pathlib import Path

from components.core.errors import UserError

CASES_CSV = "cases.csv"
CASES_COLUMNS = ("case_id", "patient_id")
SPLIT_COLUMN = "split"  # optional cases.csv column: an official train/test split to keep
SPLIT_VALUES = ("train", "test")
# The split words datasets use -> segflow's split. "validation" joins the training pool: the k folds
# built from it validate on every training case in turn.
SPLIT_WORDS: dict[str, str] = {
    "train": "train",
    "training": "train",
    "tr": "train",
    "validation": "train",
    "val": "train",
    "valid": "train",
    "test": "test",
    "testing": "test",
    "ts": "test",
}
VALIDATION_WORDS = frozenset({"validation", "val", "valid"})


class DiscoveryError(UserError, ValueError):
    """The dataset folder or its ``cases.csv`` cannot be read unambiguously (the message names the
    file and the fix); defined here so that this module and :mod:`components.data.discovery` share it."""


@dataclass(frozen=True)
class CaseTable:
    """The content of ``cases.csv``: patient per case and, when the file has a ``split`` column,
    the official train/test assignment per case (``validation`` rows as ``train``, counted in
    ``validation``)."""

    patients: dict[str, str]
    splits: dict[str, str] | None = None
    validation: int = 0


def _csv_text(path: Path) -> str:
    """The text of a table file: UTF-8 (BOM or not) or UTF-16 with a BOM, any line endings.

    Raises:
        DiscoveryError: The file is neither (e.g. saved in a legacy code page).
    """
    data = path.read_bytes()
    try:
        if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return data.decode("utf-16")
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DiscoveryError(
            f"{path}: not UTF-8 text (byte {exc.start} is {data[exc.start : exc.start + 1]!r}); save it "
            "as 'CSV UTF-8' (or UTF-16 with a BOM)"
        ) from None


def _delimiter(header: str) -> str:
    """The separator of the header line: a comma, else a semicolon or tab (spreadsheet exports)."""
    for sep in (",", ";", "\t"):
        if sep in header:
            return sep
    return ","


def read_cases_csv(path: Path) -> CaseTable:
    """Read ``cases.csv``: ``case_id``, ``patient_id`` and optionally ``split`` (see :data:`SPLIT_WORDS`).

    Raises:
        DiscoveryError: Not UTF-8/UTF-16 text, missing ``case_id``/``patient_id`` columns, empty
            values, duplicate case ids, a split word not in :data:`SPLIT_WORDS`, or no test case.
    """
    text = _csv_text(path)
    lines = text.splitlines()
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=_delimiter(lines[0] if lines else ""))
    columns = [c.strip() for c in (reader.fieldnames or [])]
    missing = [c for c in CASES_COLUMNS if c not in columns]
    if missing:
        raise DiscoveryError(
            f"{path}: expected columns {', '.join(CASES_COLUMNS)} but found {columns or 'no header'} "
            f"(missing: {', '.join(missing)}); the header line must be 'case_id,patient_id'"
        )
    has_split = SPLIT_COLUMN in columns
    mapping: dict[str, str] = {}
    splits: dict[str, str] = {}
    validation = 0
    for line_no, row in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        if not any(row.values()):
            continue  # a blank line (spreadsheets append them)
        case_id, patient_id = row["case_id"], row["patient_id"]
        if not case_id or not patient_id:
            raise DiscoveryError(f"{path}, line {line_no}: case_id and patient_id must both be set")
        if case_id in mapping:
            raise DiscoveryError(f"{path}, line {line_no}: case_id {case_id!r} is listed twice")
        if "/" in case_id or "\\" in case_id or case_id in (".", ".."):
            raise DiscoveryError(
                f"{path}, line {line_no}: case_id {case_id!r} is a path, not a file stem; expected "
                "the stem of the case's mask file (e.g. case_001 for masks/case_001.png)"
            )
        mapping[case_id] = patient_id
        if has_split:
            word = row.get(SPLIT_COLUMN, "").lower()
            if word not in SPLIT_WORDS:
                raise DiscoveryError(
                    f"{path}, line {line_no}: split {row.get(SPLIT_COLUMN)!r} for case {case_id!r}; "
                    f"the split column holds train or test for every case (also accepted: "
                    f"{', '.join(w for w in SPLIT_WORDS if w not in SPLIT_VALUES)}; validation rows join "
                    "the train cases): the official test set is kept as it is, the folds are built "
                    "from the train cases"
                )
            splits[case_id] = SPLIT_WORDS[word]
            validation += word in VALIDATION_WORDS
    if has_split and SPLIT_VALUES[1] not in splits.values():
        raise DiscoveryError(
            f"{path}: the split column marks no case as 'test' (or 'testing'); mark the official test cases"
        )
    return CaseTable(mapping, splits if has_split else None, validation)
