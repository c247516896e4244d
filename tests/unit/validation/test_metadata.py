"""build_metadata and the parquet manifest on small generated datasets (no GX involved)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from components.data.discovery import discover
from components.validation import BASE_COLUMNS, build_metadata, content_hash, read_manifest, write_manifest
from components.validation.duplicate_groups import DUPLICATE_COLUMNS
from tests.data.broken import write_broken_dataset


def test_metadata_mixed_formats(mixed_dataset: Path) -> None:
    meta = build_metadata(discover(mixed_dataset), [0, 1, 2], root=mixed_dataset)
    assert list(meta.columns) == [*BASE_COLUMNS, "frac_0", "frac_1", "frac_2", *DUPLICATE_COLUMNS]
    assert meta["case_id"].tolist() == ["a", "b", "c", "d"]
    rows = meta.set_index("case_id")
    assert rows.loc["a", "image_path"] == "images/a.png"
    assert rows.loc["b", "mask_path"] == "masks/b.tif"
    assert rows.loc["a", "dtype"] == "uint8" and rows.loc["b", "dtype"] == "uint16"
    assert rows.loc["b", "intensity_max"] > 255  # 16-bit range kept, not rescaled
    assert rows["channels"].tolist() == [1, 1, 3, 1]
    assert (rows["height"] == 20).all() and (rows["width"] == 28).all()
    assert rows["mask_channels"].tolist() == [1, 1, 1, 1]  # palette mask read as indices
    assert rows["labels_present"].tolist() == ["0,1,2"] * 4
    assert rows["labels_ok"].tolist() == [True] * 4
    assert rows["size_match"].tolist() == [True] * 4
    assert rows["image_readable"].tolist() == [True] * 4 and rows["read_error"].tolist() == [""] * 4
    expected_frac1 = (6 * 7) / (20 * 28)
    assert np.allclose(rows["frac_1"], expected_frac1)
    assert np.allclose(rows[["frac_0", "frac_1", "frac_2"]].sum(axis=1), 1.0)
    assert rows["content_hash"].str.len().eq(64).all() and rows["content_hash"].is_unique
    assert rows["patient_id"].tolist() == ["a", "b", "c", "d"]


def test_metadata_broken_rows_do_not_raise(tmp_path: Path) -> None:
    write_broken_dataset(tmp_path)
    meta = build_metadata(discover(tmp_path), [0, 1], root=tmp_path).set_index("case_id")
    assert not meta.loc["no_mask", "has_mask"] and pd.isna(meta.loc["no_mask", "mask_path"])
    assert not meta.loc["no_image", "has_image"] and meta.loc["no_image", "mask_path"] == "masks/no_image.png"
    assert meta.loc["garbage", "image_readable"] is False
    assert "images/garbage.png" in meta.loc["garbage", "read_error"]
    assert meta.loc["garbage", "mask_readable"] is True
    assert meta.loc["garbage", "size_match"] is None  # unknown, not False: reported once, as unreadable
    assert meta.loc["truncated_mask", "mask_readable"] is False
    assert meta.loc["size_mismatch", "size_match"] is False
    assert meta.loc["bad_label", "labels_present"] == "0,1,7" and meta.loc["bad_label", "labels_ok"] is False
    assert meta.loc["rgb_mask", "mask_channels"] == 3
    assert pd.isna(meta.loc["rgb_mask", "frac_0"])  # no class fractions for a colour mask
    assert meta.loc["dup_a", "content_hash"] == meta.loc["dup_b", "content_hash"]


def test_paths_relative_to_root_use_dotdot(mixed_dataset: Path, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    meta = build_metadata(discover(mixed_dataset), [0, 1, 2], root=root)
    assert meta["image_path"].iloc[0] == "../images/a.png"
    absolute = build_metadata(discover(mixed_dataset), [0, 1, 2])
    assert absolute["image_path"].iloc[0] == (mixed_dataset / "images" / "a.png").as_posix()


def test_content_hash_ignores_file_format(tmp_path: Path) -> None:
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    Image.fromarray(arr).save(tmp_path / "x.png")
    Image.fromarray(arr).save(tmp_path / "x.tif")
    from components.io import read_image

    assert content_hash(read_image(tmp_path / "x.png")) == content_hash(read_image(tmp_path / "x.tif"))
    assert content_hash(arr) != content_hash(arr.astype(np.uint16))
    assert content_hash(arr) != content_hash(arr.reshape(4, 3))


@pytest.mark.parametrize("bad", [[], [0, 0, 1], [0, -1], [0, 1.5]])
def test_bad_class_values_are_rejected(mixed_dataset: Path, bad: list) -> None:
    with pytest.raises(ValueError, match="class_values"):
        build_metadata(discover(mixed_dataset), bad)


def test_empty_dataset_has_all_columns(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    meta = build_metadata(discover(tmp_path), [0, 1])
    assert meta.empty and list(meta.columns) == [*BASE_COLUMNS, "frac_0", "frac_1", *DUPLICATE_COLUMNS]


def test_manifest_roundtrip_is_atomic(tmp_path: Path) -> None:
    write_broken_dataset(tmp_path / "data")
    meta = build_metadata(discover(tmp_path / "data"), [0, 1], root=tmp_path)
    path = tmp_path / "out" / "manifest.parquet"
    write_manifest(meta, path)
    back = read_manifest(path)
    pd.testing.assert_frame_equal(back, meta, check_dtype=False)
    assert back["height"].dtype == "Int64"
    assert [p.name for p in path.parent.iterdir()] == ["manifest.parquet"]  # no temp file left

    unserialisable = meta.assign(bad=[object() for _ in range(len(meta))])  # pyarrow cannot encode it
    with pytest.raises(ValueError, match="object"):  # pyarrow.ArrowInvalid
        write_manifest(unserialisable, path)
    pd.testing.assert_frame_equal(read_manifest(path), meta, check_dtype=False)  # old file intact
    assert [p.name for p in path.parent.iterdir()] == ["manifest.parquet"]


def test_read_manifest_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"manifest\.parquet"):
        read_manifest(tmp_path / "manifest.parquet")


def test_nifti_volume_pair(tmp_path: Path) -> None:
    nib = pytest.importorskip("nibabel")
    vol = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)  # nibabel (X, Y, Z)
    seg = (vol % 3 == 0).astype(np.uint8)
    for folder, arr in (("images", vol), ("masks", seg)):
        (tmp_path / folder).mkdir()
        nib.save(nib.Nifti1Image(arr, np.eye(4)), tmp_path / folder / "v1.nii.gz")
    row = build_metadata(discover(tmp_path), [0, 1]).iloc[0]
    # read as (Z, Y, X): depth 6, height 5, width 4; one channel
    assert (row["depth"], row["height"], row["width"], row["channels"]) == (6, 5, 4, 1)
    assert (row["mask_depth"], row["mask_height"], row["mask_width"]) == (6, 5, 4)
    assert row["size_match"] is True and row["labels_present"] == "0,1" and row["dtype"] == "int16"
