"""validate_metadata: the GX suite on real, generated-good and broken datasets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image

from components.data.discovery import discover
from components.validation import (
    DatasetValidationError,
    build_metadata,
    format_failures,
    validate_metadata,
)
from components.validation.duplicate_groups import NearDuplicateOptions
from tests.data.broken import write_broken_dataset, write_good_cases


def _validate(data_dir: Path, class_values: list[int], report: Path, **kw: object):
    meta = build_metadata(
        discover(data_dir), class_values, root=data_dir, near_duplicates=NearDuplicateOptions()
    )
    return validate_metadata(meta, class_values, report, **kw)


def _assert_report_written(outcome, report: Path) -> dict:
    assert outcome.result_path == report / "result.json"
    result = json.loads(outcome.result_path.read_text())
    assert result["success"] is outcome.success
    assert outcome.docs_index == Path("data_docs/index.html")
    assert (report / outcome.docs_index).is_file()
    assert (report / "suite.json").is_file()
    assert not [p for p in report.iterdir() if p.name.startswith(".")]  # temp GX project removed
    return result


@pytest.mark.parametrize(("name", "class_values"), [("isbi2012_em", [0, 1]), ("covid_ct_infnet", [0, 1, 2])])
def test_real_datasets_pass(
    shared_datasets: Path, tmp_path: Path, name: str, class_values: list[int]
) -> None:
    outcome = _validate(shared_datasets / name, class_values, tmp_path / "report", expected_channels=1)
    assert outcome.success, format_failures(outcome.failures)
    assert outcome.failures == []
    result = _assert_report_written(outcome, tmp_path / "report")
    assert len(result["results"]) == 16 and all(r["success"] for r in result["results"])


def test_broken_dataset_names_every_offending_file(tmp_path: Path) -> None:
    expected = write_broken_dataset(tmp_path / "data")
    report = tmp_path / "report"
    outcome = _validate(tmp_path / "data", [0, 1], report)
    assert not outcome.success
    result = _assert_report_written(outcome, report)  # written although the suite failed
    assert result["success"] is False

    by_check = {f.expectation.split("[")[1].rstrip("]"): f for f in outcome.failures}
    assert set(by_check) == set(expected)  # exactly the planted defects, nothing else
    text = format_failures(outcome.failures)
    for check, files in expected.items():
        failure = by_check[check]
        assert failure.files == files, check
        block = text.split(f"[{check}]")[1].split("\n- ")[0]
        for f in files:
            assert f in block, (check, f)  # each file is listed under its failed expectation
    assert "expect_column_values_to_be_in_set [mask_labels_declared]" in text
    assert "values 0,1,7" in text  # what was found
    assert "expect_column_values_to_be_unique [no_duplicate_images]" in text
    assert "Fix:" in text
    good = [f"images/good_{i}.png" for i in range(3)]
    assert not any(g in text for g in good)

    err = DatasetValidationError(outcome.failures, outcome.result_path)
    assert isinstance(err, ValueError)
    assert "images/garbage.png" in str(err) and str(outcome.result_path) in str(err)


def test_mixed_channels_fail_only_channel_check(mixed_dataset: Path, tmp_path: Path) -> None:
    outcome = _validate(mixed_dataset, [0, 1, 2], tmp_path / "r1")
    assert not outcome.success
    [failure] = outcome.failures
    assert failure.column == "channels" and failure.files == ["images/c.jpg"]  # the RGB minority
    assert "3 channels" in format_failures(outcome.failures)

    outcome = _validate(mixed_dataset, [0, 1, 2], tmp_path / "r2", expected_channels=3)
    [failure] = outcome.failures
    assert failure.files == ["images/a.png", "images/b.tif", "images/d.png"]
    assert "as configured" in failure.detail


def test_good_generated_dataset_passes_and_rerun_replaces_docs(tmp_path: Path) -> None:
    write_good_cases(tmp_path / "data", n=4)
    report = tmp_path / "report"
    first = _validate(tmp_path / "data", [0, 1], report)
    assert first.success and first.failures == []
    second = _validate(tmp_path / "data", [0, 1], report)
    assert second.success
    pages = list((report / "data_docs" / "validations").rglob("*.html"))
    assert len(pages) == 1  # old runs do not pile up


def test_empty_dataset_fails(tmp_path: Path) -> None:
    (tmp_path / "data" / "images").mkdir(parents=True)
    (tmp_path / "data" / "masks").mkdir()
    outcome = _validate(tmp_path / "data", [0, 1], tmp_path / "report")
    assert not outcome.success
    [failure] = outcome.failures
    assert "dataset_not_empty" in failure.expectation and failure.files == []
    assert "not empty" in format_failures(outcome.failures)


def test_metadata_without_required_columns_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="build_metadata"):
        validate_metadata(pd.DataFrame({"image_path": ["a.png"]}), [0, 1], tmp_path)


def test_format_failures_when_nothing_failed() -> None:
    assert "passed" in format_failures([])


def test_non_finite_pixels_are_refused_naming_the_file(tmp_path: Path) -> None:
    write_good_cases(tmp_path / "data", n=3)
    masks = sorted((tmp_path / "data" / "masks").iterdir())
    stem = masks[0].stem
    for p in (tmp_path / "data" / "images").glob(f"{stem}.*"):
        p.unlink()
    h, w = np.asarray(Image.open(masks[0])).shape[:2]
    image = np.zeros((h, w), np.float32)
    image[0, 0], image[1, 1] = np.nan, np.inf
    tifffile.imwrite(tmp_path / "data" / "images" / f"{stem}.tif", image)
    outcome = _validate(tmp_path / "data", [0, 1], tmp_path / "report")
    assert not outcome.success
    [failure] = outcome.failures
    assert "finite" in failure.expectation and failure.files == [f"images/{stem}.tif"]
    assert "NaN/Inf" in format_failures(outcome.failures)
