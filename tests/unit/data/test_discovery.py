"""discover(): pairing images/ with masks/ by stem, cases.csv patient ids, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.data.discovery import CasePair, DiscoveryError, discover


def _touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")  # discovery never decodes files


def test_pairs_by_stem_with_mixed_suffixes(tmp_path: Path) -> None:
    _touch(
        tmp_path,
        "images/c.jpg", "masks/c.png",
        "images/a.tif", "masks/a.tiff",
        "images/b.nii.gz", "masks/b.nii.gz",
        "images/case.1.PNG", "masks/case.1.png",
        "images/d.jpeg", "masks/d.tif",
    )  # fmt: skip
    disc = discover(tmp_path)
    assert [p.case_id for p in disc.pairs] == ["a", "b", "c", "case.1", "d"]
    assert disc.pairs[1] == CasePair("b", tmp_path / "images/b.nii.gz", tmp_path / "masks/b.nii.gz", "b")
    assert all(p.patient_id == p.case_id for p in disc.pairs)
    assert disc.unpaired_images == [] and disc.unpaired_masks == [] and disc.ignored == []


def test_unpaired_and_ignored_files_are_reported_sorted(tmp_path: Path) -> None:
    _touch(
        tmp_path,
        "images/z.png", "images/y.png", "masks/y.png", "masks/x.png", "masks/w.png",
        "images/.hidden.png", "masks/.DS_Store", "images/notes.txt", "masks/v.bmp",
    )  # fmt: skip
    (tmp_path / "images" / "sub").mkdir()
    disc = discover(tmp_path)
    assert [p.case_id for p in disc.pairs] == ["y"]
    assert disc.unpaired_images == [tmp_path / "images/z.png"]
    assert disc.unpaired_masks == [tmp_path / "masks/w.png", tmp_path / "masks/x.png"]
    # hidden files, folders, non-image suffixes and masks of a kind not read (BMP)
    assert [p.relative_to(tmp_path).as_posix() for p in disc.ignored] == [
        "images/.hidden.png",
        "images/notes.txt",
        "images/sub",
        "masks/.DS_Store",
        "masks/v.bmp",
    ]


def test_order_is_deterministic(tmp_path: Path) -> None:
    names = [f"{i:03d}" for i in (5, 1, 12, 3)]
    for n in names:
        _touch(tmp_path, f"images/{n}.png", f"masks/{n}.png")
    assert [p.case_id for p in discover(tmp_path).pairs] == sorted(names)
    assert discover(tmp_path) == discover(tmp_path)


def test_cases_csv_sets_patient_ids(tmp_path: Path) -> None:
    _touch(tmp_path, "images/a.png", "masks/a.png", "images/b.png", "masks/b.png")
    (tmp_path / "cases.csv").write_text("case_id,patient_id\na,P1\nb, P1 \n")
    disc = discover(tmp_path)
    assert [(p.case_id, p.patient_id) for p in disc.pairs] == [("a", "P1"), ("b", "P1")]


def test_a_cases_csv_row_without_files_is_an_error_listing_the_cases(tmp_path: Path) -> None:
    """A case in the table whose files went missing on the way stops discovery (it was ignored)."""
    _touch(tmp_path, "images/a.png", "masks/a.png")
    (tmp_path / "cases.csv").write_text(
        "case_id,patient_id,split\na,P1,test\nghost_case,P2,train\nzz,P3,train\n"
    )
    with pytest.raises(DiscoveryError) as info:
        discover(tmp_path)
    message = str(info.value)
    assert "cases.csv: 2 case(s) listed without an image or mask file" in message
    assert "ghost_case (train), zz (train)" in message and "restore the files, or delete the rows" in message


def test_rows_for_unpaired_files_and_channel_cases_are_not_ghosts(tmp_path: Path) -> None:
    """A row whose case has only an image (or only a mask) is the has_mask check's to report."""
    _touch(tmp_path, "images/a.png", "masks/a.png", "images/lone.png", "masks/m_only.png")
    _touch(tmp_path, "images/c_0000.nii.gz", "images/c_0001.nii.gz", "masks/c.nii.gz")
    (tmp_path / "cases.csv").write_text("case_id,patient_id\na,P1\nc,P2\nlone,P3\nm_only,P4\n")
    disc = discover(tmp_path)
    assert [p.case_id for p in disc.pairs] == ["a", "c"]
    assert disc.unpaired_images == [tmp_path / "images/lone.png"]


@pytest.mark.parametrize(
    ("raw", "what"),
    [
        (b"case_id,patient_id,split\r\na,P1,training\r\nb,P2,Testing\r\n", "windows line endings"),
        (b"\xef\xbb\xbfcase_id,patient_id,split\na,P1,train\nb,P2,test\n", "utf-8 BOM"),
        (b"case_id,patient_id,split\ra,P1,train\rb,P2,test\r", "old Mac line endings"),
        ("case_id,patient_id,split\r\na,P1,train\r\nb,P2,test\r\n".encode("utf-16"), "utf-16 with BOM"),
        (b"case_id;patient_id;split\na;P1;TR\nb;P2;ts\n\n", "semicolons, a blank line"),
        (b"case_id\tpatient_id\tsplit\na\tP1\ttrain\nb\tP2\ttest\n", "tabs"),
    ],
)
def test_cases_csv_as_spreadsheets_write_it(tmp_path: Path, raw: bytes, what: str) -> None:
    _touch(tmp_path, "images/a.png", "masks/a.png", "images/b.png", "masks/b.png")
    (tmp_path / "cases.csv").write_bytes(raw)
    disc = discover(tmp_path)
    assert [(p.case_id, p.patient_id, p.split) for p in disc.pairs] == [
        ("a", "P1", "train"),
        ("b", "P2", "test"),
    ], what
    assert disc.notes == []


def test_validation_rows_join_the_train_cases_with_a_note(tmp_path: Path) -> None:
    _touch(tmp_path, *(f"{d}/{c}.png" for c in "abc" for d in ("images", "masks")))
    (tmp_path / "cases.csv").write_text(
        "case_id,patient_id,split\na,P1,training\nb,P2,validation\nc,P3,test\n"
    )
    disc = discover(tmp_path)
    assert [p.split for p in disc.pairs] == ["train", "train", "test"]
    assert disc.notes == [
        f"{tmp_path / 'cases.csv'}: 1 case(s) marked as validation join the train cases (the k folds "
        "validate on every train case in turn; the test cases stay apart)"
    ]


def test_a_cases_csv_in_a_legacy_code_page_is_an_error_naming_it(tmp_path: Path) -> None:
    _touch(tmp_path, "images/a.png", "masks/a.png")
    (tmp_path / "cases.csv").write_bytes("case_id,patient_id\na,Müller\n".encode("latin-1"))
    with pytest.raises(DiscoveryError, match=r"cases\.csv: not UTF-8 text.*save it as 'CSV UTF-8'"):
        discover(tmp_path)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("case,patient\na,P1\n", r"cases\.csv.*expected columns case_id, patient_id"),
        ("case_id\na\n", r"cases\.csv.*missing: patient_id"),
        ("", r"cases\.csv.*no header"),
        ("case_id,patient_id\na,P1\na,P2\n", r"cases\.csv, line 3.*'a' is listed twice"),
        ("case_id,patient_id\na,\n", r"cases\.csv, line 2.*must both be set"),
        ("case_id,patient_id\nzz,P1\n", r"cases\.csv: no patient_id for 1 case\(s\): a"),
    ],
)
def test_bad_cases_csv_is_an_error_naming_it(tmp_path: Path, content: str, match: str) -> None:
    _touch(tmp_path, "images/a.png", "masks/a.png")
    (tmp_path / "cases.csv").write_text(content)
    with pytest.raises(DiscoveryError, match=match):
        discover(tmp_path)


def test_two_images_with_the_same_stem_is_an_error(tmp_path: Path) -> None:
    _touch(tmp_path, "images/a.png", "images/a.tif", "masks/a.png")
    with pytest.raises(DiscoveryError) as info:
        discover(tmp_path)
    assert "a.png" in str(info.value) and "a.tif" in str(info.value) and "'a'" in str(info.value)


def test_two_masks_with_the_same_stem_is_an_error(tmp_path: Path) -> None:
    _touch(tmp_path, "images/a.png", "masks/a.png", "masks/a.nii.gz")
    with pytest.raises(DiscoveryError, match=r"a\.nii\.gz"):
        discover(tmp_path)


@pytest.mark.parametrize("missing", ["images", "masks"])
def test_missing_folder_is_an_error(tmp_path: Path, missing: str) -> None:
    _touch(tmp_path, "images/a.png", "masks/a.png")
    for p in (tmp_path / missing).iterdir():
        p.unlink()
    (tmp_path / missing).rmdir()
    with pytest.raises(DiscoveryError, match=rf"{missing}: .*folder not found"):
        discover(tmp_path)


def test_discovery_error_is_a_value_error() -> None:
    assert issubclass(DiscoveryError, ValueError)


def test_channel_files_are_grouped_into_one_case_in_channel_order(tmp_path: Path) -> None:
    _touch(
        tmp_path,
        "images/hip_1_0001.nii.gz", "images/hip_1_0000.nii.gz", "images/hip_1_0002.nrrd",
        "masks/hip_1.nii.gz",
        "images/b.mha", "masks/b.mha",
        "images/lone_0000.nii.gz",
    )  # fmt: skip
    disc = discover(tmp_path)
    assert [p.case_id for p in disc.pairs] == ["b", "hip_1"]
    b, hip = disc.pairs
    assert b.image_channels == (tmp_path / "images/b.mha",)
    assert hip.image == tmp_path / "images/hip_1_0000.nii.gz"
    assert [p.name for p in hip.image_channels] == [
        "hip_1_0000.nii.gz",
        "hip_1_0001.nii.gz",
        "hip_1_0002.nrrd",
    ]
    assert hip.mask == tmp_path / "masks/hip_1.nii.gz"
    assert disc.unpaired_images == [tmp_path / "images/lone_0000.nii.gz"]  # no mask "lone": stays a file
    assert disc.unpaired_masks == []


def test_a_mask_with_the_channel_stem_pairs_by_exact_stem(tmp_path: Path) -> None:
    _touch(tmp_path, "images/scan_0000.png", "masks/scan_0000.png", "masks/scan.png")
    disc = discover(tmp_path)
    assert [(p.case_id, p.image_channels) for p in disc.pairs] == [
        ("scan_0000", (tmp_path / "images/scan_0000.png",))
    ]
    assert disc.unpaired_masks == [tmp_path / "masks/scan.png"]


def test_a_gap_in_the_channel_numbers_names_the_case_and_channel(tmp_path: Path) -> None:
    _touch(tmp_path, "images/c7_0000.nii.gz", "images/c7_0002.nii.gz", "masks/c7.nii.gz")
    with pytest.raises(DiscoveryError, match=r"case 'c7': channel c7_0001 is missing"):
        discover(tmp_path)


def test_a_single_image_and_channel_files_for_one_case_is_an_error(tmp_path: Path) -> None:
    _touch(tmp_path, "images/c.nii.gz", "images/c_0000.nii.gz", "masks/c.nii.gz")
    with pytest.raises(DiscoveryError, match=r"case 'c' has both"):
        discover(tmp_path)


def test_the_path_separator_in_a_file_name_is_an_error(tmp_path: Path) -> None:
    _touch(tmp_path, "images/a;b.png", "masks/a;b.png")
    with pytest.raises(DiscoveryError, match=r"must not contain ';'"):
        discover(tmp_path)


def test_case_pair_defaults_its_channels_to_the_image() -> None:
    pair = CasePair("a", Path("images/a.png"), Path("masks/a.png"), "a")
    assert pair.image_channels == (Path("images/a.png"),)
    with pytest.raises(ValueError, match="first channel"):
        CasePair("a", Path("x.png"), Path("masks/a.png"), "a", (Path("y.png"),))


def test_split_column_and_rois_are_attached_to_the_cases(tmp_path: Path) -> None:
    _touch(tmp_path, "images/a.png", "masks/a.png", "images/b.png", "masks/b.png", "rois/a.png", "rois/b.png")
    (tmp_path / "cases.csv").write_text("case_id,patient_id,split\na,p1,train\nb,p2,TEST\n")
    disc = discover(tmp_path)
    assert [(p.split, p.roi) for p in disc.pairs] == [
        ("train", tmp_path / "rois/a.png"),
        ("test", tmp_path / "rois/b.png"),
    ]


def test_a_bad_split_value_names_the_line_and_the_choices(tmp_path: Path) -> None:
    _touch(tmp_path, "images/a.png", "masks/a.png")
    (tmp_path / "cases.csv").write_text("case_id,patient_id,split\na,p1,holdout\n")
    with pytest.raises(
        DiscoveryError, match=r"line 2: split 'holdout'.*train or test.*also accepted: training"
    ):
        discover(tmp_path)


def test_a_split_column_without_test_cases_is_an_error(tmp_path: Path) -> None:
    _touch(tmp_path, "images/a.png", "masks/a.png")
    (tmp_path / "cases.csv").write_text("case_id,patient_id,split\na,p1,train\n")
    with pytest.raises(DiscoveryError, match="marks no case as 'test'"):
        discover(tmp_path)


def test_a_rois_folder_needs_a_file_for_every_case(tmp_path: Path) -> None:
    _touch(tmp_path, "images/a.png", "masks/a.png", "images/b.png", "masks/b.png", "rois/a.png")
    with pytest.raises(DiscoveryError, match=r"no region-of-interest file for 1 case\(s\): b"):
        discover(tmp_path)


def test_a_rois_file_for_a_case_without_files_is_an_error(tmp_path: Path) -> None:
    _touch(tmp_path, "images/a.png", "masks/a.png", "rois/a.png", "rois/gone.png")
    with pytest.raises(
        DiscoveryError,
        match=r"rois: 1 region-of-interest file\(s\) for cases with no image and no mask: gone\.png",
    ):
        discover(tmp_path)


def test_files_of_another_kind_are_named_not_dropped_silently(tmp_path: Path) -> None:
    for sub in ("images", "masks"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "a.png").write_bytes(b"")
    (tmp_path / "images" / "notes.txt").write_text("x")
    (tmp_path / "masks" / "scan.dcm").write_bytes(b"")
    (tmp_path / "images" / ".DS_Store").write_bytes(b"")  # hidden files: the OS's, not the dataset's
    found = discover(tmp_path)
    assert [pair.case_id for pair in found.pairs] == ["a"]
    images, masks = [n for n in found.notes if "skipped" in n]
    assert images.startswith("1 entr(ies) in images/ are not images") and "images/notes.txt" in images
    assert masks.startswith("1 entr(ies) in masks/ are not masks") and "masks/scan.dcm" in masks
    assert ".DS_Store" not in images and "JPEG" not in masks
    assert "(accepted: .png, .jpg" in images and "(accepted: .png, .tif, .tiff, .jpg" in masks


def test_jpeg_masks_are_paired_and_said_to_be_read_as_binary(tmp_path: Path) -> None:
    """A photograph dataset may ship its masks as JPEG (Kvasir-SEG does): they pair, and a note says
    they are read as binary (lossy: values along every edge) and from which gray value."""
    _touch(tmp_path, "images/a.jpg", "masks/a.jpg", "images/b.png", "masks/b.png")
    found = discover(tmp_path)
    assert [pair.case_id for pair in found.pairs] == ["a", "b"]
    [note] = [n for n in found.notes if "JPEG" in n]
    assert note.startswith("1 mask(s) in masks/ are JPEG (masks/a.jpg) and are read as binary masks")
    assert "gray value is >= 128" in note and not [n for n in found.notes if "skipped" in n]
