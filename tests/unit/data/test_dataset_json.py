"""dataset.json in both dialects (nnU-Net v2 and MSD), and the forms it is refused in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from components.data.dataset_json import (
    DatasetJsonError,
    dataset_json_text,
    parse_dataset_json,
    read_dataset_json,
)

PATH = Path("ds/dataset.json")


def test_nnunet_v2_and_msd_read_to_the_same_description() -> None:
    v2 = parse_dataset_json(
        {
            "channel_names": {"0": "T2", "1": "ADC"},
            "labels": {"background": 0, "PZ": 1, "TZ": 2},
            "numTraining": 32,
            "file_ending": ".nii.gz",
        },
        PATH,
    )
    msd = parse_dataset_json(
        {
            "name": "Prostate",
            "modality": {"1": "ADC", "0": "T2"},  # key order is not channel order
            "labels": {"0": "background", "1": "PZ", "2": "TZ"},
            "numTraining": 32,
            "training": [
                {"image": "./imagesTr/prostate_00.nii.gz", "label": "./labelsTr/prostate_00.nii.gz"}
            ],
        },
        PATH,
    )
    assert v2.labels == msd.labels == {"background": 0, "PZ": 1, "TZ": 2}
    assert v2.channel_names == msd.channel_names == ("T2", "ADC")
    assert (v2.channel_key, msd.channel_key) == ("channel_names", "modality")
    assert (v2.file_ending, msd.file_ending, v2.num_training, msd.num_training) == (".nii.gz", None, 32, 32)
    assert v2.ignore_label is None and msd.ignore_label is None


def test_nnunet_ignore_label_is_kept_apart_from_the_classes() -> None:
    d = parse_dataset_json({"labels": {"background": 0, "vessel": 1, "ignore": 2}}, PATH)
    assert d.labels == {"background": 0, "vessel": 1} and d.ignore_label == 2


def test_every_key_is_optional() -> None:
    d = parse_dataset_json({"name": "x"}, PATH)
    assert (d.labels, d.channel_names, d.file_ending, d.num_training) == (None, None, None, None)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([1, 2], "expected a JSON object"),
        ({"labels": {"background": 0, "tumour": [1, 2]}}, r"'tumour' -> \[1, 2\] is a region"),
        ({"labels": {"background": 0, "a": 1, "b": 1}}, "'a' and 'b' share the mask value 1"),
        ({"labels": {"background": 0, "a": -1}}, r"'a' -> -1; expected a mask value"),
        ({"labels": {}}, "labels must be an object"),
        (
            {"channel_names": {"0": "T1", "2": "T2"}},
            "channel_names: keys 0, 2; expected the channel indices 0, 1",
        ),
        ({"modality": "MRI"}, "modality must be an object of channel index -> name"),
        ({"file_ending": "nii.gz"}, "file_ending 'nii.gz'; expected the files' suffix with its dot"),
        ({"numTraining": "12"}, "numTraining '12'; expected the number of training cases"),
    ],
)
def test_malformed_descriptions_name_the_key(raw: Any, message: str) -> None:
    with pytest.raises(DatasetJsonError, match=message) as err:
        parse_dataset_json(raw, PATH)
    assert str(err.value).startswith(str(PATH))


def test_read_returns_none_without_a_file_and_refuses_invalid_json(tmp_path: Path) -> None:
    assert read_dataset_json(tmp_path) is None
    (tmp_path / "dataset.json").write_text('{"labels": {"background": 0,}}')
    with pytest.raises(DatasetJsonError, match=r"dataset.json: not valid JSON \(.*line 1"):
        read_dataset_json(tmp_path)


def test_the_written_form_reads_back(tmp_path: Path) -> None:
    text = dataset_json_text({"background": 0, "tube": 1}, ["MR_0", "MR_1"], 12, ".nii.gz", "tubes")
    (tmp_path / "dataset.json").write_text(text)
    d = read_dataset_json(tmp_path)
    assert d is not None and json.loads(text)["channel_names"] == {"0": "MR_0", "1": "MR_1"}
    assert (d.labels, d.channel_names, d.num_training, d.file_ending, d.name) == (
        {"background": 0, "tube": 1},
        ("MR_0", "MR_1"),
        12,
        ".nii.gz",
        "tubes",
    )
