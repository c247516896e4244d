"""Tests for the synthetic 3D phantom generator (tubes and blobs, NIfTI with geometry)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from components.data.dataset_json import read_dataset_json
from components.data.synthetic3d import CLASSES_3D, SHAPE_JITTER, generate_volumes

SHAPE = (14, 24, 28)
SPACING = (3.0, 0.8, 0.8)


def _read(path: Path) -> tuple[np.ndarray, sitk.Image]:
    img = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(img), img


def test_layout_geometry_and_classes(tmp_path: Path) -> None:
    ids = generate_volumes(tmp_path / "ds", n_cases=3, shape=SHAPE, spacing=SPACING, seed=2)
    out = tmp_path / "ds"
    assert ids == ["case_000", "case_001", "case_002"]
    assert sorted(p.name for p in out.iterdir()) == ["dataset.json", "images", "masks"]  # no cases.csv
    assert sorted(p.name for p in (out / "images").iterdir()) == [f"{c}.nii.gz" for c in ids]
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no temporary folder left behind
    described = read_dataset_json(out)  # the phantoms describe themselves as a user's dataset does
    assert described is not None and described.labels == CLASSES_3D and described.channel_names == ("MR",)
    assert (described.num_training, described.file_ending) == (3, ".nii.gz")
    for case in ids:
        arr, img = _read(out / "images" / f"{case}.nii.gz")
        mask, msk = _read(out / "masks" / f"{case}.nii.gz")
        assert arr.shape == mask.shape and mask.dtype == np.uint8
        assert set(np.unique(mask)) == set(CLASSES_3D.values())  # every class in every case
        np.testing.assert_allclose(img.GetSpacing()[::-1], SPACING, rtol=1e-6)  # ITK (x, y, z)
        assert img.GetDirection() == pytest.approx((1, 0, 0, 0, -1, 0, 0, 0, 1))
        assert np.linalg.norm(img.GetOrigin()) > 10
        assert msk.GetOrigin() == img.GetOrigin() and msk.GetDirection() == img.GetDirection()
        means = [arr[mask == c].mean() for c in CLASSES_3D.values()]
        assert min(abs(a - b) for i, a in enumerate(means) for b in means[i + 1 :]) > 100  # learnable


def test_physical_shapes_respect_spacing(tmp_path: Path) -> None:
    """The tube's radius is a few mm: a few slices of 3 mm along z, many 0.8 mm voxels in-plane."""
    generate_volumes(tmp_path / "ds", n_cases=1, shape=(20, 48, 48), spacing=SPACING, seed=0)
    mask, _ = _read(tmp_path / "ds" / "masks" / "case_000.nii.gz")
    zs, ys, xs = np.nonzero(mask == CLASSES_3D["blob"])
    extent_mm = np.array([np.ptp(zs), np.ptp(ys), np.ptp(xs)]) * np.array(SPACING)
    assert np.all(extent_mm > 4) and np.all(extent_mm < 40)
    assert np.ptp(ys) > 2 * np.ptp(zs)  # mm-round blobs are flat in voxels
    tube_slices = (mask == CLASSES_3D["tube"]).any(axis=(1, 2))
    assert tube_slices.sum() >= mask.shape[0] - 2  # runs through the volume along axis 0


def test_deterministic_and_seed_dependent(tmp_path: Path) -> None:
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        generate_volumes(tmp_path / name, n_cases=2, shape=SHAPE, seed=seed)
    for sub in ("images", "masks"):
        for case in ("case_000", "case_001"):
            a, ia = _read(tmp_path / "a" / sub / f"{case}.nii.gz")
            b, ib = _read(tmp_path / "b" / sub / f"{case}.nii.gz")
            np.testing.assert_array_equal(a, b)
            assert ia.GetOrigin() == ib.GetOrigin()
    a, _ = _read(tmp_path / "a" / "masks" / "case_000.nii.gz")
    c, _ = _read(tmp_path / "c" / "masks" / "case_000.nii.gz")
    assert a.shape != c.shape or not np.array_equal(a, c)


def test_multichannel_naming_and_patients(tmp_path: Path) -> None:
    ids = generate_volumes(tmp_path / "ds", n_cases=2, shape=SHAPE, n_channels=2, n_patients=1, seed=1)
    out = tmp_path / "ds"
    names = sorted(p.name for p in (out / "images").iterdir())
    assert names == [f"{c}_{k:04d}.nii.gz" for c in ids for k in (0, 1)]
    assert sorted(p.name for p in (out / "masks").iterdir()) == [f"{c}.nii.gz" for c in ids]
    described = read_dataset_json(out)
    assert described is not None and described.channel_names == ("MR_0", "MR_1")
    ch0, img0 = _read(out / "images" / "case_000_0000.nii.gz")
    ch1, img1 = _read(out / "images" / "case_000_0001.nii.gz")
    mask, _ = _read(out / "masks" / "case_000.nii.gz")
    assert ch0.shape == ch1.shape == mask.shape and img0.GetOrigin() == img1.GetOrigin()
    tube, blob = mask == CLASSES_3D["tube"], mask == CLASSES_3D["blob"]
    assert ch0[tube].mean() > ch0[blob].mean() and ch1[tube].mean() < ch1[blob].mean()  # other contrast
    with (out / "cases.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows == [{"case_id": c, "patient_id": "patient_000"} for c in ids]


def test_sizes_vary_within_bounds(tmp_path: Path) -> None:
    generate_volumes(tmp_path / "ds", n_cases=12, shape=(12, 12, 12), spacing=(2.0, 1.5, 1.5), seed=3)
    masks = [_read(p)[0] for p in sorted((tmp_path / "ds" / "masks").iterdir())]
    assert all(set(np.unique(m)) == set(CLASSES_3D.values()) for m in masks)  # even on small coarse grids
    shapes = [m.shape for m in masks]
    assert len(set(shapes)) > 1
    assert all(abs(s - 12) <= SHAPE_JITTER for shape in shapes for s in shape)


def test_replaces_earlier_output_only(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    generate_volumes(out, n_cases=1, shape=SHAPE, seed=0)
    generate_volumes(out, n_cases=1, shape=SHAPE, seed=1)  # an earlier dataset is replaced
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="refusing"):
        generate_volumes(out, n_cases=1, shape=SHAPE)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_cases": 0},
        {"shape": (8, 32, 32)},
        {"spacing": (0.0, 1.0, 1.0)},
        {"n_channels": 0},
        {"n_patients": 13},
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        generate_volumes(tmp_path / "ds", **kwargs)  # type: ignore[arg-type]
