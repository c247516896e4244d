"""Classes and channels that describe themselves, and a dataset.json that disagrees with its files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from components.core import layout
from components.data.dataset_json import DatasetJson, parse_dataset_json, read_dataset_json
from components.data.discovery import discover
from components.validation import build_metadata
from components.validation.dataset_description import (
    SOURCE_FOUND,
    SOURCE_JSON,
    SOURCE_PARAMS,
    DatasetDescriptionError,
    check_against_files,
    declared_classes,
    resolve_labels,
)

GOOD = {
    "labels": {"background": 0, "cell": 1},
    "channel_names": {"0": "gray"},
    "numTraining": 3,
    "file_ending": ".png",
}


def _dataset(root: Path, values: tuple[int, ...] = (0, 1), n: int = 3, rgb_case: int | None = None) -> Path:
    """``n`` 2D cases; case i's mask holds ``values`` (one stripe each); ``rgb_case`` is an RGB image."""
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        shape = (12, 12, 3) if i == rgb_case else (12, 12)
        Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(root / "images" / f"c{i}.png")
        mask = np.zeros((12, 12), np.uint8)
        for k, v in enumerate(values):
            mask[k * 3 : k * 3 + 3] = v
        Image.fromarray(mask).save(root / "masks" / f"c{i}.png")
    return root


def _described(root: Path, raw: dict[str, Any]) -> DatasetJson:
    (root / "dataset.json").write_text(json.dumps(raw))
    description = read_dataset_json(root)
    assert description is not None
    return description


def _meta(root: Path, values: list[int] | None, ignore_label: int | None = None) -> pd.DataFrame:
    return build_metadata(discover(root), values, root=root, ignore_label=ignore_label)


def test_classes_come_from_params_then_dataset_json_then_the_masks(tmp_path: Path) -> None:
    description = parse_dataset_json(GOOD, tmp_path / "dataset.json")
    assert declared_classes({"bg": 0, "x": 1}, description, None) == ({"bg": 0, "x": 1}, SOURCE_PARAMS)
    assert declared_classes("auto", description, None) == ({"background": 0, "cell": 1}, SOURCE_JSON)
    assert declared_classes("auto", None, None) == (None, SOURCE_FOUND)
    unlabelled = parse_dataset_json({"channel_names": {"0": "CT"}}, tmp_path / "dataset.json")
    assert declared_classes("auto", unlabelled, None) == (None, SOURCE_FOUND)


def test_dataset_json_labels_with_a_gap_or_an_undeclared_ignore_label_are_refused(tmp_path: Path) -> None:
    gap = parse_dataset_json({"labels": {"background": 0, "vessel": 2}}, tmp_path / "dataset.json")
    with pytest.raises(
        DatasetDescriptionError, match=r"labels background 0, vessel 2; .* 0..K-1 without gaps"
    ):
        declared_classes("auto", gap, None)
    assert declared_classes({"background": 0, "vessel": 1}, gap, None)[1] == SOURCE_PARAMS  # yours win
    ignore = parse_dataset_json({"labels": {"background": 0, "a": 1, "ignore": 2}}, tmp_path / "dataset.json")
    with pytest.raises(
        DatasetDescriptionError, match=r"'ignore' -> 2 .* but data.ignore_label is None; set data"
    ):
        declared_classes("auto", ignore, None)
    assert declared_classes("auto", ignore, 2) == ({"background": 0, "a": 1}, SOURCE_JSON)


def test_classes_found_in_the_masks_are_named_and_noted(tmp_path: Path) -> None:
    data = _dataset(tmp_path, values=(0, 1, 2, 255))
    meta = _meta(data, None, ignore_label=255)
    labels = resolve_labels(None, SOURCE_FOUND, None, meta, 255)
    assert (
        labels.classes == {"background": 0, "class_1": 1, "class_2": 2}
        and labels.class_source == SOURCE_FOUND
    )
    assert labels.channel_names is None and bool(meta["labels_ok"].all())
    assert labels.notes == (
        "classes from the mask values found (data.classes is auto and no dataset.json names labels): "
        "background 0, class_1 1, class_2 2; name them in data.classes (params.yaml) or in "
        "dataset.json's labels",
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            (0, 1, 4),
            r"found: 0, 1, 4, not 0..2 without gaps \(missing 2, 3; 4 in c0, c1, c2\)\. Declare data.classes",
        ),
        ((0,), r"found: 0, only 0; a segmentation needs background \(0\) and a foreground class"),
        (  # three values: not a binary mask, so not read as one
            (0, 128, 255),
            r"found: 0, 128, 255, not 0..2 without gaps .*set data.ignore_label to the value",
        ),
    ],
)
def test_classes_found_with_a_gap_or_without_foreground_are_refused(
    tmp_path: Path, values: tuple[int, ...], message: str
) -> None:
    data = _dataset(tmp_path, values=values)
    with pytest.raises(DatasetDescriptionError, match=message):
        resolve_labels(None, SOURCE_FOUND, None, _meta(data, None), None)


@pytest.mark.parametrize("foreground", [255, 2])
def test_binary_masks_written_as_0_v_read_v_as_class_1_with_a_note(tmp_path: Path, foreground: int) -> None:
    data = _dataset(tmp_path, values=(0, foreground))
    labels = resolve_labels(None, SOURCE_FOUND, None, _meta(data, None), None)
    assert labels.classes == {"background": 0, "class_1": 1}
    assert labels.mask_foreground == foreground
    assert len(labels.notes) == 1
    assert labels.notes[0].startswith(
        f"binary masks written as 0 / {foreground}: {foreground} is read as class_1"
    )


def test_binary_reading_is_only_for_classes_found(tmp_path: Path) -> None:
    """Declared classes win: masks 0 / 255 against data.classes {background: 0, lesion: 1} are not
    reread (the suite refuses the value 255 there), and 0 / 1 masks need no reading."""
    data = _dataset(tmp_path, values=(0, 255))
    declared = resolve_labels({"background": 0, "lesion": 1}, SOURCE_PARAMS, None, _meta(data, [0, 1]), None)
    assert declared.mask_foreground is None and declared.classes == {"background": 0, "lesion": 1}
    plain = _dataset(tmp_path / "plain", values=(0, 1))
    assert resolve_labels(None, SOURCE_FOUND, None, _meta(plain, None), None).mask_foreground is None


def test_a_dataset_json_that_agrees_with_its_files_passes_and_names_the_channels(tmp_path: Path) -> None:
    data = _dataset(tmp_path)
    description = _described(data, GOOD)
    meta = _meta(data, [0, 1])
    check_against_files(description, discover(data), meta)
    labels = resolve_labels({"background": 0, "cell": 1}, SOURCE_JSON, description, meta, None)
    assert labels.channel_names == ("gray",) and labels.notes == ()


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            {"labels": {"background": 0}},
            "labels declare the mask values background 0, but masks hold 1 (3 case(s): c0, c1, c2); add the "
            "value to labels or fix those masks",
        ),
        (
            {"channel_names": {"0": "R", "1": "G", "2": "B"}},
            "channel_names names 3 channel(s) (R, G, B), but the images have 1 in 3 case(s) (c0, c1, c2); "
            "fix channel_names or the images",
        ),
        (
            {"numTraining": 5},
            "numTraining is 5, but the folder pairs 3 case(s) (an image and its mask); fix numTraining or "
            "restore the missing files",
        ),
        (
            {"file_ending": ".nii.gz"},
            "file_ending is '.nii.gz', but 6 of the 6 image and mask files end otherwise (images/c0.png, "
            "masks/c0.png, images/c1.png, masks/c1.png, images/c2.png and 1 more); fix file_ending or "
            "convert the files",
        ),
    ],
)
def test_each_disagreement_names_the_key_and_both_values(
    tmp_path: Path, edit: dict[str, Any], expected: str
) -> None:
    data = _dataset(tmp_path)
    description = _described(data, {**GOOD, **edit})
    with pytest.raises(DatasetDescriptionError) as err:
        check_against_files(description, discover(data), _meta(data, [0, 1]))
    assert str(err.value).splitlines() == [
        f"{data / 'dataset.json'} disagrees with the files:",
        f"  - {expected}",
    ]


def test_every_disagreement_is_listed_at_once(tmp_path: Path) -> None:
    data = _dataset(tmp_path, rgb_case=1)
    description = _described(data, {**GOOD, "channel_names": {"0": "T1", "1": "T2"}, "numTraining": 2})
    with pytest.raises(DatasetDescriptionError) as err:
        check_against_files(description, discover(data), _meta(data, [0, 1]))
    assert str(err.value).splitlines()[1:] == [
        "  - channel_names names 2 channel(s) (T1, T2), but the images have 1 in 2 case(s), 3 in 1 case(s) "
        "(c0, c1, c2); fix channel_names or the images",
        "  - numTraining is 2, but the folder pairs 3 case(s) (an image and its mask); fix numTraining or "
        "remove the extra cases",
    ]


def test_validate_takes_the_classes_from_the_masks_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from components.validation.stage import validate_dataset

    monkeypatch.chdir(tmp_path)  # the layout's paths are relative to the project root
    data = _dataset(tmp_path / "data", values=(0, 1, 2))
    validate_dataset(data, "auto", "auto")
    fp = json.loads(layout.FINGERPRINT.read_text())
    assert (
        fp["classes"] == {"background": 0, "class_1": 1, "class_2": 2} and fp["class_source"] == SOURCE_FOUND
    )
    assert fp["channel_names"] == [""] and fp["channels"] == 1
    report = layout.DATASET_REPORT.read_text()
    assert "- classes, from the label values found (class_1, ...):" in report and "| 2 | class_2 |" in report
    assert "## Notes\n\n- classes from the mask values found" in report
    assert "- regions of interest: none (every pixel is trained and scored)" in report
    assert "classes from the mask values found" in capsys.readouterr().out
    assert layout.MANIFEST.is_file()


def test_the_dataset_report_counts_the_cases_with_a_region_of_interest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from components.validation.stage import validate_dataset

    monkeypatch.chdir(tmp_path)
    data = _dataset(tmp_path / "data", values=(0, 1))
    (data / "rois").mkdir()
    for i in range(3):
        roi = np.zeros((12, 12), np.uint8)
        roi[1:11, 1:11] = 1
        Image.fromarray(roi).save(data / "rois" / f"c{i}.png")
    validate_dataset(data, "auto", "auto")
    report = layout.DATASET_REPORT.read_text()
    assert "- regions of interest: 3 of 3 cases (`rois/`): pixels outside count in no loss" in report


def test_validate_reads_binary_0_255_masks_as_class_1_for_every_later_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Masks as photograph datasets ship them (0 / 255) validate with classes background / class_1;
    the manifest carries 255 as the foreground every mask reader maps, and the fingerprint's class
    statistics count the 255 pixels as class_1."""
    from components.io.case_masks import FOREGROUND_COLUMN, read_case_mask
    from components.validation.manifest import read_manifest
    from components.validation.stage import validate_dataset

    monkeypatch.chdir(tmp_path)
    data = _dataset(tmp_path / "data", values=(0, 255))
    validate_dataset(data, "auto", "auto")
    fp = json.loads(layout.FINGERPRINT.read_text())
    assert fp["classes"] == {"background": 0, "class_1": 1}
    assert fp["class_fractions"]["class_1"] == pytest.approx(0.25)  # a 3-row stripe of 12
    manifest = read_manifest(layout.MANIFEST)
    assert manifest[FOREGROUND_COLUMN].tolist() == [255, 255, 255]
    assert "frac_1" in manifest.columns and "frac_255" not in manifest.columns
    assert set(manifest["labels_present"]) == {"0,1"}
    row = next(manifest.itertuples(index=False))
    assert sorted(np.unique(read_case_mask(data, row)).tolist()) == [0, 1]
    assert np.asarray(Image.open(data / "masks" / "c0.png")).max() == 255  # the file is left as it was
    report = layout.DATASET_REPORT.read_text()
    assert "| 255 (read as 1) | class_1 |" in report and "binary masks written as 0 / 255" in report


def test_validate_reads_jpeg_masks_as_binary_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """RGB JPEG masks of 0 / 255 (as Kvasir-SEG ships them): paired, read as binary, classes
    background / class_1, and the note in the output and in dataset.md."""
    from components.validation.stage import validate_dataset

    monkeypatch.chdir(tmp_path)
    data = _dataset(tmp_path / "data", values=(0, 255))
    for png in sorted((data / "masks").glob("*.png")):
        rgb = np.repeat(np.asarray(Image.open(png))[..., None], 3, axis=-1)
        Image.fromarray(rgb).save(png.with_suffix(".jpg"), quality=70)
        png.unlink()
    validate_dataset(data, "auto", "auto")
    fp = json.loads(layout.FINGERPRINT.read_text())
    assert fp["classes"] == {"background": 0, "class_1": 1}
    assert fp["class_fractions"]["class_1"] == pytest.approx(0.25, abs=0.03)
    assert "3 mask(s) in masks/ are JPEG" in capsys.readouterr().out
    assert "are read as binary masks" in layout.DATASET_REPORT.read_text()


def test_validate_stops_on_a_disagreeing_dataset_json_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from components.validation.stage import validate_dataset

    monkeypatch.chdir(tmp_path)
    data = _dataset(tmp_path / "data")
    _described(data, {**GOOD, "numTraining": 4})
    with pytest.raises(DatasetDescriptionError, match="numTraining is 4, but the folder pairs 3 case"):
        validate_dataset(data, "auto", "auto")
    assert (
        not layout.FINGERPRINT.exists()
        and not layout.MANIFEST.exists()
        and not layout.DATASET_REPORT.exists()
    )
