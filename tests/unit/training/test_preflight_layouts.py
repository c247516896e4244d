"""The params check reads an MSD / nnU-Net raw folder as it reads segflow's plain layout."""

from __future__ import annotations

from pathlib import Path

from components.params.config import Params, parse_params
from components.training.preflight import check_data_dir
from tests.data.raw_layouts import msd_from_plain, plain_volumes


def _params(data: Path) -> Params:
    return parse_params(
        {
            "data": {"dir": str(data), "classes": {"background": 0, "tube": 1, "blob": 2}, "channels": 2},
            "preprocess": {"splits": {"n_folds": 2, "test_fraction": 0.2}},
            "train": {"model": {"name": "unet"}, "loss": [{"name": "dice"}], "optimizer": {"name": "adam"}},
        }
    )


def test_an_msd_folder_passes_and_a_missing_labels_folder_is_named(tmp_path: Path) -> None:
    plain_volumes(tmp_path / "plain", n_cases=4)
    msd = msd_from_plain(tmp_path / "plain", tmp_path / "Task09_Phantom")
    assert check_data_dir(_params(msd)) == []
    (msd / "labelsTr" / "case_001.nii.gz").rename(tmp_path / "kept.nii.gz")
    assert check_data_dir(_params(msd)) == [
        "data.dir: 1 image(s) without a mask: imagesTr/case_001.nii.gz; expected labelsTr/<stem>.nii.gz "
        "with the image's file stem (less an nnU-Net _0000 channel suffix) for every image (or remove the "
        "image)"
    ]
    (tmp_path / "kept.nii.gz").rename(msd / "labelsTr" / "case_001.nii.gz")
    (msd / "labelsTr").rename(msd / "labels")
    assert check_data_dir(_params(msd)) == [
        f"data.dir: {msd} has no labelsTr/; expected a dataset folder holding images/ and masks/ (paired by "
        "file stem), or an MSD / nnU-Net folder's imagesTr/ and labelsTr/"
    ]
    (msd / "labels").rename(msd / "masks")
    (msd / "images").mkdir()
    problems = check_data_dir(_params(msd))
    assert len(problems) == 1 and "(segflow's layout) and imagesTr/ (an MSD / nnU-Net folder)" in problems[0]
