"""Masks named <image stem><suffix> pair by the stem before the suffix, found from the names alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.data.discovery import discover
from components.data.mask_names import mask_suffix


@pytest.mark.parametrize(
    ("images", "masks", "suffix"),
    [
        (["ISIC_001", "ISIC_002"], ["ISIC_001_segmentation", "ISIC_002_segmentation"], "_segmentation"),
        (["a_0", "b_0", "c_0"], ["a_0_mask", "b_0_mask", "c_0_mask"], "_mask"),  # not "_0_mask"
        (["x", "y", "z"], ["x-gt", "y-gt", "orphan-gt"], "-gt"),  # 2 of 3 pair: the third is unpaired
        (["a", "b"], ["a", "b"], None),  # paired as they are
        (["a", "b"], ["a", "b_mask"], None),  # one pairs as it is: no renaming of the others
        (["case_1_0000", "case_2_0000"], ["case_1", "case_2"], None),  # nnU-Net channels: not a suffix
        (["p", "q", "r"], ["p_mask", "zz_mask", "yy_mask"], None),  # only 1 of 3 would pair
        (["a1", "b1"], ["a11", "b11"], None),  # no separator in the shared ending
    ],
)
def test_the_suffix_is_found_from_the_names(images: list[str], masks: list[str], suffix: str | None) -> None:
    assert mask_suffix(set(images), masks) == suffix


def test_discovery_pairs_isic_style_mask_names_and_says_so(tmp_path: Path) -> None:
    for sub, names in (
        ("images", ["ISIC_0001.jpg", "ISIC_0002.jpg"]),
        ("masks", ["ISIC_0001_segmentation.png", "ISIC_0002_segmentation.png"]),
    ):
        (tmp_path / sub).mkdir()
        for name in names:
            (tmp_path / sub / name).write_bytes(b"")
    found = discover(tmp_path)
    assert [(p.case_id, p.mask.name) for p in found.pairs] == [
        ("ISIC_0001", "ISIC_0001_segmentation.png"),
        ("ISIC_0002", "ISIC_0002_segmentation.png"),
    ]
    [note] = [n for n in found.notes if "added" in n]
    assert note == (
        "masks/ names each mask after its image with '_segmentation' added (e.g. "
        "masks/ISIC_0001_segmentation.png for the image ISIC_0001): paired by the stem before '_segmentation'"
    )
