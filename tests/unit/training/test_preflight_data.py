"""What preflight finds by listing the dataset and reading dvc.yaml (nothing decoded, nothing built)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.data.synthetic import generate_phantoms
from components.params.config import parse_params
from components.training.preflight import check_data_dir, check_params_keys
from tests.data import HANDSET_PARAMS

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_phantoms(tmp_path_factory.mktemp("phantoms") / "raw", n_cases=8, size=32, n_patients=8)


@pytest.fixture
def data(phantoms: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(phantoms, tmp_path / "raw"))


def _params(data: Path, **changes: Any) -> Any:
    raw = yaml.safe_load(HANDSET_PARAMS.read_text())
    raw["data"]["dir"] = str(data)
    for dotted, value in changes.items():
        node = raw
        *parents, last = dotted.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    return parse_params(raw)


def test_a_good_dataset_has_no_problems(data: Path) -> None:
    assert check_data_dir(_params(data)) == []


def test_unpaired_files_are_named(data: Path) -> None:
    (data / "masks" / "case_001.png").unlink()
    (data / "images" / "case_002.png").unlink()
    [images, masks] = check_data_dir(_params(data))
    assert "1 image(s) without a mask: images/case_001.png; expected masks/<stem>.png" in images
    assert "1 mask(s) without an image: masks/case_002.png" in masks


def test_an_image_whose_mask_is_of_a_kind_not_read_is_told_why_it_has_none(data: Path) -> None:
    """A mask of a kind not read (BMP) is skipped; the refusal of its unpaired image names it."""
    mask = data / "masks" / "case_001.png"
    mask.rename(mask.with_suffix(".bmp"))
    [images] = check_data_dir(_params(data))
    assert "1 image(s) without a mask: images/case_001.png" in images
    assert "masks/case_001.bmp" in images and "not masks of an accepted kind" in images


def test_an_unpaired_volume_is_told_of_a_volume_mask(tmp_path: Path) -> None:
    """The fix names the mask a NIfTI image needs, not a PNG."""
    from tests.data.broken3d import good_volumes

    data = tmp_path / "raw"
    good_volumes(data)
    (data / "masks" / "case_001.nii.gz").unlink()
    (data / "cases.csv").unlink()
    problems = check_data_dir(_params(data))
    assert (
        "data.dir: 1 image(s) without a mask: images/case_001.nii.gz; expected masks/<stem>.nii.gz"
        in problems[0]
    )


def test_fewer_patients_than_folds_plus_test(data: Path) -> None:
    [problem] = check_data_dir(_params(data, **{"preprocess.splits.n_folds": 8}))
    assert problem.startswith("preprocess.splits.n_folds: 8 folds plus a test set (test_fraction 0.2)")
    assert "need at least 9 patients" in problem and "8 case(s) from 8 patient(s)" in problem


def test_a_dangling_link_is_named(data: Path, tmp_path: Path) -> None:
    (data / "images" / "case_003.png").unlink()
    os.symlink(tmp_path / "gone.png", data / "images" / "case_003.png")
    [problem] = check_data_dir(_params(data))
    assert "images/case_003.png: a symbolic link to" in problem and "which does not exist" in problem


def test_a_link_to_an_existing_file_outside_is_read(data: Path, tmp_path: Path) -> None:
    outside = tmp_path / "store.png"
    shutil.move(data / "images" / "case_003.png", outside)
    os.symlink(outside, data / "images" / "case_003.png")
    assert check_data_dir(_params(data)) == []


def test_a_patch_larger_than_every_image(data: Path) -> None:
    params = _params(data, **{"preprocess.spatial_mode": "patch", "train.patch_size": [40, 16]})
    [problem] = check_data_dir(params)
    assert problem == (
        "train.patch_size: [40, 16] is larger than every image in data.dir (the largest is 32 x 32); "
        "expected a patch no larger than the images, e.g. [32, 16]"
    )
    fits = _params(data, **{"preprocess.spatial_mode": "patch", "train.patch_size": [32, 16]})
    assert check_data_dir(fits) == []


def test_keys_dvc_yaml_reads_but_the_file_lacks(data: Path) -> None:
    raw = yaml.safe_load(HANDSET_PARAMS.read_text())
    del raw["data"]["ignore_label"]
    del raw["validate"]
    problems = check_params_keys(raw, parse_params(raw), REPO / "dvc.yaml")
    assert problems == [
        "data.ignore_label: missing from the params file, and dvc.yaml's stage validate reads it; add it "
        "with its default: data.ignore_label: null",
        "validate: missing from the params file, and dvc.yaml's stage validate reads it; add it with its "
        "default: validate: {near_duplicate_threshold: 0.82, near_duplicates: group}",
    ]
    assert (
        check_params_keys(yaml.safe_load(HANDSET_PARAMS.read_text()), parse_params(raw), REPO / "dvc.yaml")
        == []
    )
