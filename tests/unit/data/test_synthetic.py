"""Tests for the synthetic phantom generator."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from components.data.dataset_json import read_dataset_json
from components.data.synthetic import CLASS_NAMES, generate_phantoms
from components.io import read_image, read_mask


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _rows(root: Path) -> list[dict[str, str]]:
    with (root / "cases.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_layout_and_masks(tmp_path: Path) -> None:
    out = generate_phantoms(tmp_path / "ds", n_cases=12, size=64, seed=3)
    assert out == tmp_path / "ds"
    images = sorted(p.name for p in (out / "images").iterdir())
    masks = sorted(p.name for p in (out / "masks").iterdir())
    assert images == masks == [f"case_{i:03d}.png" for i in range(12)]
    for name in images:
        img, mask = read_image(out / "images" / name), read_mask(out / "masks" / name)
        assert img.shape == mask.shape == (64, 64)
        assert img.dtype == np.uint8 and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= set(range(len(CLASS_NAMES)))
        assert img.std() > 10  # not blank
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no temporary folder left behind
    described = read_dataset_json(out)  # the phantoms describe themselves as a user's dataset does
    assert described is not None and described.labels == {n: v for v, n in enumerate(CLASS_NAMES)}
    assert (described.channel_names, described.num_training, described.file_ending) == (("gray",), 12, ".png")


def test_deterministic_byte_identical(tmp_path: Path) -> None:
    a = generate_phantoms(tmp_path / "a", n_cases=8, size=48, seed=7, n_patients=3)
    b = generate_phantoms(tmp_path / "b", n_cases=8, size=48, seed=7, n_patients=3)
    c = generate_phantoms(tmp_path / "c", n_cases=8, size=48, seed=8, n_patients=3)
    assert _files(a) == _files(b)
    assert _files(a) != _files(c)


def test_class_presence_varies_and_organs_differ(tmp_path: Path) -> None:
    out = generate_phantoms(tmp_path / "ds", n_cases=40, size=64, seed=0)
    present = []
    means = {1: [], 2: []}
    for p in sorted((out / "masks").iterdir()):
        mask, img = read_mask(p), read_image(out / "images" / p.name).astype(float)
        present.append(tuple(np.unique(mask)))
        for c in means:
            if (mask == c).any():
                means[c].append(img[mask == c].mean())
    lesion = [3 in labels for labels in present]
    assert 0 < sum(lesion) < len(lesion)  # some cases with, some without a lesion
    assert all(1 in labels for labels in present)
    assert len(set(present)) >= 2
    assert np.mean(means[1]) - np.mean(means[2]) > 40  # organs differ in mean intensity


def test_patients_group_cases(tmp_path: Path) -> None:
    out = generate_phantoms(tmp_path / "ds", n_cases=10, size=32, seed=0, n_patients=4)
    rows = _rows(out)
    assert [r["case_id"] for r in rows] == [f"case_{i:03d}" for i in range(10)]
    patients = [r["patient_id"] for r in rows]
    assert len(set(patients)) == 4
    assert max(patients.count(p) for p in set(patients)) >= 2
    one_each = _rows(generate_phantoms(tmp_path / "one", n_cases=5, size=32, seed=0))
    assert len({r["patient_id"] for r in one_each}) == 5


def test_uint16_output(tmp_path: Path) -> None:
    out = generate_phantoms(tmp_path / "ds", n_cases=3, size=40, seed=1, dtype="uint16")
    img = read_image(out / "images" / "case_000.png")
    assert img.dtype == np.uint16 and img.shape == (40, 40)
    assert img.max() > 255 * 20  # uses the 16-bit range
    assert read_mask(out / "masks" / "case_000.png").dtype == np.uint8


def test_replaces_earlier_dataset_but_not_other_folders(tmp_path: Path) -> None:
    out = generate_phantoms(tmp_path / "ds", n_cases=4, size=32, seed=0)
    generate_phantoms(out, n_cases=2, size=32, seed=0)
    assert len(list((out / "images").iterdir())) == 2
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match="other"):
        generate_phantoms(other, n_cases=2, size=32)
    assert (other / "keep.txt").read_text() == "x"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_cases": 0}, "n_cases"),
        ({"size": 8}, "size"),
        ({"dtype": "float32"}, "dtype"),
        ({"n_cases": 3, "n_patients": 5}, "n_patients"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        generate_phantoms(tmp_path / "ds", **kwargs)
    assert not (tmp_path / "ds").exists()
