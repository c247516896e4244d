"""MSD / nnU-Net raw folders are discovered like segflow's plain layout (imagesTr/ + labelsTr/)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from components.data.case_table import DiscoveryError
from components.data.discovery import discover
from components.data.raw_layout import PLAIN, RAW, dataset_folders
from components.io import read_case_channels
from tests.data.raw_layouts import msd_from_plain, nnunet_from_plain, plain_volumes


def test_an_msd_folder_pairs_its_4d_files_and_notes_the_unlabelled_test_images(tmp_path: Path) -> None:
    ids = plain_volumes(tmp_path / "plain", n_cases=3)
    msd = msd_from_plain(tmp_path / "plain", tmp_path / "Task09_Phantom", test_cases=2)
    plain, found = discover(tmp_path / "plain"), discover(msd)
    assert dataset_folders(msd) == RAW and dataset_folders(tmp_path / "plain") == PLAIN
    assert [p.case_id for p in found.pairs] == ids
    assert all(p.image_channels == (msd / "imagesTr" / f"{p.case_id}.nii.gz",) for p in found.pairs)
    assert all(p.mask == msd / "labelsTr" / f"{p.case_id}.nii.gz" for p in found.pairs)
    assert found.ignored == [msd / "imagesTr" / "._hidden.nii.gz"]  # macOS metadata, not a case
    assert found.notes == [
        f"{msd / 'imagesTs'}: 2 image file(s) without labels are not cases of this run (no mask to train "
        "on or to score); once a model is trained, `segflow predict` segments them"
    ]
    # the 4D file reads back as the plain layout's two channel files, channels first
    four_d, geometry = read_case_channels(list(found.pairs[0].image_channels))
    split, plain_geometry = read_case_channels(list(plain.pairs[0].image_channels))
    assert four_d.shape[0] == 2 and np.array_equal(four_d, split) and geometry == plain_geometry


def test_an_nnunet_folder_groups_its_0000_channel_files(tmp_path: Path) -> None:
    ids = plain_volumes(tmp_path / "plain", n_cases=2)
    raw = nnunet_from_plain(tmp_path / "plain", tmp_path / "Dataset001_Phantom")
    found = discover(raw)
    assert [p.case_id for p in found.pairs] == ids and found.notes == [] and found.unpaired_images == []
    assert [f.name for f in found.pairs[0].image_channels] == [
        f"{ids[0]}_0000.nii.gz",
        f"{ids[0]}_0001.nii.gz",
    ]


def test_a_single_channel_nnunet_case_keeps_its_0000_suffix_on_the_image_only(tmp_path: Path) -> None:
    for sub in ("imagesTr", "labelsTr"):
        (tmp_path / sub).mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "imagesTr" / "cell_7_0000.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "labelsTr" / "cell_7.png")
    found = discover(tmp_path)
    assert [(p.case_id, p.image.name) for p in found.pairs] == [("cell_7", "cell_7_0000.png")]


def test_both_layouts_in_one_folder_is_ambiguous(tmp_path: Path) -> None:
    for sub in ("images", "masks", "imagesTr"):
        (tmp_path / sub).mkdir()
    with pytest.raises(DiscoveryError, match=r"holds images/ and masks/ .* and imagesTr/ \(an MSD / nnU-Net"):
        discover(tmp_path)


def test_a_raw_folder_without_labels_says_which_folder_is_missing(tmp_path: Path) -> None:
    (tmp_path / "imagesTr").mkdir()
    with pytest.raises(DiscoveryError, match=r"labelsTr: mask folder not found; .*imagesTr/ and labelsTr/"):
        discover(tmp_path)
