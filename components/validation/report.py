"""Turn a GX validation result into failures that name each offending file, and print them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, cast

import pandas as pd

from components.core.errors import UserError
from components.validation.checks import Check

PATH_COLUMNS: tuple[str, ...] = ("image_path", "mask_path")


@dataclass(frozen=True)
class Failure:
    """One failed check.

    Attributes:
        expectation: GX expectation type and check name, e.g.
            ``"expect_column_values_to_be_in_set [has_mask]"``.
        column: Metadata column the expectation reads ("" for table-level checks).
        files: Offending files (paths as in the metadata table), in table order.
        detail: What must hold, what was found, and how to fix it.
        observed: File -> what that file shows (e.g. ``"values 0,1,7"``).
    """

    expectation: str
    column: str
    files: list[str]
    detail: str
    observed: dict[str, str] = field(default_factory=dict)


class DatasetValidationError(UserError, ValueError):
    """The dataset failed validation; the message lists each failed check, its files and the fix."""

    def __init__(self, failures: list[Failure], result_path: Any = None) -> None:
        self.failures = failures
        self.result_path = result_path
        message = format_failures(failures)
        if result_path is not None:
            message += f"\nFull GX result: {result_path}"
        super().__init__(message)


def _clean(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def _row_lookup(meta: pd.DataFrame) -> dict[tuple[str | None, str | None], dict[str, Any]]:
    # pandas-stubs types record keys as Hashable; the metadata table's column labels are all str
    records = cast(list[dict[str, Any]], meta.to_dict(orient="records"))
    return {(_clean(r.get("image_path")), _clean(r.get("mask_path"))): r for r in records}


def failure_from_result(
    check: Check, expectation_type: str, result: dict[str, Any], meta: pd.DataFrame
) -> Failure:
    """Build a ``Failure`` from one failed expectation result (``result_format`` COMPLETE).

    Args:
        check: The check whose expectation failed.
        expectation_type: GX type name, e.g. ``expect_column_values_to_be_in_set``.
        result: The expectation result's ``result`` dict.
        meta: The metadata table that was validated (to describe each offending row).
    """
    rows = _row_lookup(meta)
    files: list[str] = []
    observed: dict[str, str] = {}
    for entry in result.get("unexpected_index_list") or []:
        if not isinstance(entry, dict):
            continue
        key = (_clean(entry.get("image_path")), _clean(entry.get("mask_path")))
        row = rows.get(key, {})
        note = check.observe(row) if row else ""
        for col in check.path_columns:
            path = _clean(entry.get(col))
            if path is not None and path not in observed:
                files.append(path)
                observed[path] = note
    found = ""
    if not check.column and "observed_value" in result:
        found = f" (found {result['observed_value']} rows)"
    detail = f"{check.description}{found}. Fix: {check.fix}."
    return Failure(f"{expectation_type} [{check.name}]", check.column, files, detail, observed)


def format_failures(failures: list[Failure]) -> str:
    """Human-readable summary: one block per failed check, one line per offending file."""
    if not failures:
        return "Dataset validation passed: no failed checks."
    lines = [f"Dataset validation failed: {len(failures)} check(s) did not pass."]
    for f in failures:
        where = f" on column '{f.column}'" if f.column else ""
        lines.append(f"- {f.expectation}{where}: {f.detail}")
        for path in f.files:
            note = f.observed.get(path, "")
            lines.append(f"    {path}" + (f"  ({note})" if note else ""))
    return "\n".join(lines)
