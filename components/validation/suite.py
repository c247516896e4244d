"""Run the dataset checks as a great-expectations suite; write the result JSON and Data Docs.

GX is imported lazily (about 2.3 s), so importing ``components.validation`` stays cheap for
stages that only read the manifest.

Layout written under ``report_dir``::

    result.json        GX validation result (also when the suite fails)
    suite.json         the expectation suite that was run
    data_docs/         static Data Docs site; entry point data_docs/index.html (renders offline)

GX runs in a FILE context whose project lives in a temporary folder inside ``report_dir``;
the finished site and files are then moved into place, so a crash never leaves a half-written
report and re-runs do not accumulate old validation pages.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from components.validation.checks import Check, build_checks
from components.validation.manifest import write_json_atomic
from components.validation.metadata import BASE_COLUMNS, check_class_values
from components.validation.offline_docs import make_offline
from components.validation.report import PATH_COLUMNS, Failure, failure_from_result

SUITE_NAME = "segflow_dataset"
RESULT_FILE = "result.json"
SUITE_FILE = "suite.json"
DOCS_DIR = "data_docs"


@dataclass
class ValidationOutcome:
    """Outcome of ``validate_metadata``.

    Attributes:
        success: True when every check passed.
        failures: One entry per failed check (empty on success).
        result_path: ``report_dir/result.json``.
        docs_index: Data Docs entry page relative to ``report_dir`` (None if docs were not built).
    """

    success: bool
    failures: list[Failure]
    result_path: Path
    docs_index: Path | None


def _replace_dir(src: Path, dst: Path) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    os.replace(src, dst)


def _run_gx(project_dir: Path, meta: pd.DataFrame, checks: list[Check]) -> tuple[Any, Any]:
    """Run the checks in a GX file context rooted at ``project_dir``; return (validation result, suite)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="file", project_root_dir=str(project_dir))
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = ctx.data_sources.add_or_update_pandas(name="dataset").add_dataframe_asset(name="metadata")
    batch_def = asset.add_batch_definition_whole_dataframe("all_cases")
    suite = gx.ExpectationSuite(name=SUITE_NAME)
    for check in checks:
        suite.add_expectation(check.expectation)
    suite = ctx.suites.add_or_update(suite)
    vd = ctx.validation_definitions.add_or_update(
        gx.ValidationDefinition(name="dataset_validation", data=batch_def, suite=suite)
    )
    checkpoint = ctx.checkpoints.add_or_update(
        gx.Checkpoint(
            name="dataset_checkpoint",
            validation_definitions=[vd],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="update_data_docs")],
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": list(PATH_COLUMNS)},
        )
    )
    result = checkpoint.run(batch_parameters={"dataframe": meta})
    return next(iter(result.run_results.values())), suite


def _failures(vr: Any, checks: list[Check], meta: pd.DataFrame) -> list[Failure]:
    by_name = {c.name: c for c in checks}
    failures: list[Failure] = []
    for r in vr.results:
        if r.success:
            continue
        cfg = r.expectation_config
        check = by_name[cfg.meta["check"]]
        failure = failure_from_result(check, cfg.type, dict(r.result or {}), meta)
        info = r.exception_info or {}
        if info.get("raised_exception"):
            failure = Failure(
                failure.expectation,
                failure.column,
                failure.files,
                f"{failure.detail} GX error: {info.get('exception_message')}",
                failure.observed,
            )
        failures.append(failure)
    return failures


def validate_metadata(
    meta: pd.DataFrame,
    class_values: Sequence[int],
    report_dir: Path,
    expected_channels: int | None = None,
    near_duplicates: str = "group",
) -> ValidationOutcome:
    """Validate the metadata table with a GX suite and write the report.

    Checks: every image has a mask and every mask an image; files readable; image and mask of
    equal shape and, for volumes, on one grid (spacing, origin, direction; all channels too);
    masks single-channel with values among ``class_values``; one channel count for all images
    (``expected_channels`` if given); one number of spatial axes; no duplicate images; at least
    one row; near-duplicate images (an error with ``near_duplicates="fail"``, else reported).

    Args:
        meta: Output of ``build_metadata``.
        class_values: Declared mask pixel values.
        report_dir: Folder for ``result.json``, ``suite.json`` and ``data_docs/`` (created).
        expected_channels: Required image channel count, or None for "all like the majority".
        near_duplicates: ``validate.near_duplicates`` (group | fail | ignore).

    Returns:
        The outcome; ``result.json`` is written whether or not the suite passed.

    Raises:
        ValueError: ``meta`` lacks required columns (it was not built by ``build_metadata``).
    """
    values = check_class_values(class_values)
    missing = [c for c in BASE_COLUMNS if c not in meta.columns]
    if missing:
        raise ValueError(f"metadata table lacks columns {missing}; build it with build_metadata()")
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    checks = build_checks(meta, values, expected_channels, near_duplicates)

    work = Path(tempfile.mkdtemp(prefix=".gx-", dir=report_dir))
    try:
        vr, suite = _run_gx(work, meta.reset_index(drop=True), checks)
        result_path = report_dir / RESULT_FILE
        write_json_atomic(vr.to_json_dict(), result_path)
        write_json_atomic(suite.to_json_dict(), report_dir / SUITE_FILE)
        site = work / "gx" / "uncommitted" / "data_docs" / "local_site"
        docs_index: Path | None = None
        if (site / "index.html").is_file():
            make_offline(site)  # styled and complete without network (GX links CDNs)
            _replace_dir(site, report_dir / DOCS_DIR)
            docs_index = Path(DOCS_DIR) / "index.html"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return ValidationOutcome(bool(vr.success), _failures(vr, checks, meta), result_path, docs_index)
