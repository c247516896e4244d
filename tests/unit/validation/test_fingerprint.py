"""compute_fingerprint / write_fingerprint on tiny hand-made datasets, checked against numpy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from components.data.discovery import discover
from components.io import Geometry, write_volume
from components.validation import build_metadata, compute_fingerprint, write_fingerprint

NAMES = ["background", "liver", "tumour"]
KEYS = {
    "ndim",
    "n_cases",
    "channels",
    "spacing",
    "shape",
    "anisotropy",
    "coarsest_axis",
    "intensity",
    "class_fractions",
    "nonzero_fraction",
    "classes",
    "class_source",
    "channel_names",
    "class_layout",
}


def _volume_dataset(root: Path) -> dict[str, list[np.ndarray]]:
    """Three two-channel cases with different spacings and shapes; returns what was written."""
    rng = np.random.default_rng(5)
    written: dict[str, list[np.ndarray]] = {"images": [], "masks": []}
    cases = [((3.0, 1.0, 0.8), (4, 6, 5)), ((5.0, 1.2, 1.0), (5, 6, 6)), ((4.0, 0.9, 0.9), (6, 7, 5))]
    for i, (spacing, shape) in enumerate(cases):
        geom = Geometry(spacing, (0.0, 0.0, 0.0), tuple(float(v) for v in np.eye(3).ravel()))
        image = rng.normal(50.0 * (i + 1), 10.0, (2, *shape)).astype(np.float32)
        mask = rng.choice(np.array([0, 0, 0, 1, 2], np.uint8), size=shape)
        for c in range(2):
            write_volume(root / "images" / f"case{i}_{c:04d}.nii.gz", image[c], geom)
        write_volume(root / "masks" / f"case{i}.nii.gz", mask, geom)
        written["images"].append(image)
        written["masks"].append(mask)
    return written


def test_volume_fingerprint_matches_numpy(tmp_path: Path) -> None:
    written = _volume_dataset(tmp_path)
    meta = build_metadata(discover(tmp_path), [0, 1, 2], root=tmp_path)
    fp = compute_fingerprint(meta, tmp_path, NAMES, max_voxels_per_case=10_000)
    assert set(fp) == KEYS
    assert (fp["ndim"], fp["n_cases"], fp["channels"]) == (3, 3, 2)
    assert fp["spacing"]["median"] == pytest.approx([4.0, 1.0, 0.9])
    assert fp["spacing"]["min"] == pytest.approx([3.0, 0.9, 0.8]) and fp["spacing"]["max"] == pytest.approx(
        [5.0, 1.2, 1.0]
    )
    assert fp["spacing"]["p10"] == pytest.approx([3.2, 0.92, 0.82])
    assert fp["shape"] == {"median": [5.0, 6.0, 5.0], "min": [4, 6, 5], "max": [6, 7, 6]}
    assert fp["anisotropy"] == pytest.approx(4.0 / 0.9) and fp["coarsest_axis"] == 0
    assert fp["classes"] == {"background": 0, "liver": 1, "tumour": 2}
    assert fp["class_source"] == "data.classes (params.yaml)" and fp["channel_names"] == ["", ""]
    named = compute_fingerprint(
        meta, tmp_path, NAMES, class_source="dataset.json labels", channel_names=["T1", "T2"]
    )
    assert named["channel_names"] == ["T1", "T2"] and named["class_source"] == "dataset.json labels"
    with pytest.raises(ValueError, match=r"1 channel name\(s\) \['CT'\] for images with 2 channel"):
        compute_fingerprint(meta, tmp_path, NAMES, channel_names=["CT"])

    masks = np.concatenate([m.ravel() for m in written["masks"]])
    counts = np.bincount(masks, minlength=3) / masks.size
    assert fp["class_fractions"] == pytest.approx(dict(zip(NAMES, counts.tolist(), strict=True)))
    for c, stats in enumerate(fp["intensity"]):
        fg = np.concatenate([im[c][m > 0] for im, m in zip(written["images"], written["masks"], strict=True)])
        fg = fg.astype(np.float64)
        assert stats["channel"] == c
        assert stats["p0_5"] == pytest.approx(np.percentile(fg, 0.5))
        assert stats["p50"] == pytest.approx(np.percentile(fg, 50))
        assert stats["p99_5"] == pytest.approx(np.percentile(fg, 99.5))
        assert stats["mean"] == pytest.approx(fg.mean()) and stats["sd"] == pytest.approx(fg.std())

    path = tmp_path / "out" / "fingerprint.json"
    write_fingerprint(fp, path)
    assert json.loads(path.read_text()) == fp
    assert [p.name for p in path.parent.iterdir()] == ["fingerprint.json"]


def test_sampling_is_capped_and_deterministic(tmp_path: Path) -> None:
    _volume_dataset(tmp_path)
    meta = build_metadata(discover(tmp_path), [0, 1, 2], root=tmp_path)
    a = compute_fingerprint(meta, tmp_path, NAMES, max_voxels_per_case=7, seed=1)
    assert a == compute_fingerprint(meta, tmp_path, NAMES, max_voxels_per_case=7, seed=1)
    assert (
        a["intensity"]
        != compute_fingerprint(meta, tmp_path, NAMES, max_voxels_per_case=7, seed=2)["intensity"]
    )
    full = compute_fingerprint(meta, tmp_path, NAMES)
    assert a["class_fractions"] == full["class_fractions"]  # fractions count every voxel


def test_2d_fingerprint_has_the_same_keys(tmp_path: Path) -> None:
    for sub in ("images", "masks"):
        (tmp_path / sub).mkdir()
    image = np.arange(12, dtype=np.uint8).reshape(3, 4)
    mask = np.zeros((3, 4), np.uint8)
    mask[0, :2] = 1
    Image.fromarray(image).save(tmp_path / "images" / "a.png")
    Image.fromarray(mask).save(tmp_path / "masks" / "a.png")
    meta = build_metadata(discover(tmp_path), [0, 1], root=tmp_path)
    fp = compute_fingerprint(meta, tmp_path, ["background", "fg"])
    assert set(fp) == KEYS and (fp["ndim"], fp["n_cases"], fp["channels"]) == (2, 1, 1)
    assert fp["spacing"]["median"] == [1.0, 1.0] and fp["anisotropy"] == 1.0
    assert fp["shape"]["median"] == [3.0, 4.0]
    assert fp["class_fractions"] == {"background": 10 / 12, "fg": 2 / 12}
    assert fp["intensity"][0]["p50"] == pytest.approx(0.5) and fp["intensity"][0]["mean"] == pytest.approx(
        0.5
    )


def test_no_usable_case_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(ValueError, match="no case"):
        compute_fingerprint(build_metadata(discover(tmp_path), [0, 1]), tmp_path, ["bg", "fg"])


def test_nonzero_fraction_is_the_share_of_the_nonzero_box() -> None:
    from components.validation.fingerprint import _nonzero_box_fraction

    image = np.zeros((2, 10, 10, 10), np.float32)
    image[0, 2:7, 3:8, 1:9] = 1.0  # channel 0: box 5 x 5 x 8
    image[1, 8, 3, 1] = 2.0  # channel 1 widens axis 0 to 2..8 (7 slices)
    assert _nonzero_box_fraction(image) == pytest.approx(7 * 5 * 8 / 1000)
    assert _nonzero_box_fraction(np.zeros((1, 4, 4), np.float32)) == 1.0
    assert _nonzero_box_fraction(np.ones((1, 4, 4), np.float32)) == 1.0
