"""The cached-case torch Dataset, class frequencies and class-aware sampling weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from components.core.layout import case_arrays
from components.data.case_store import load_case, save_case
from components.data.class_balance import class_frequencies, rare_class_weights
from components.preprocessing.augment import build_augmentation
from components.preprocessing.pipeline import PreprocessSpec
from components.training.dataset import SegmentationDataset

RNG = np.random.default_rng(11)


def spec(method: str = "minmax", channels: int = 1) -> PreprocessSpec:
    return PreprocessSpec((12, 10), "resize", method, {}, channels)


@pytest.fixture
def prepared(tmp_path: Path) -> Path:
    for i in range(3):
        image = RNG.random((12, 10, 1)).astype(np.float32)
        mask = np.zeros((12, 10), np.uint8)
        mask[2:6, 1 : 3 + i] = 1
        mask[8:, :4] = 2 if i == 2 else 0
        save_case(tmp_path, f"c{i}", image, mask)
    return tmp_path


def test_save_and_load_case_round_trip(tmp_path: Path) -> None:
    image = RNG.random((5, 6, 3))  # float64 in: stored as float32
    mask = RNG.integers(0, 4, (5, 6)).astype(np.int64)
    save_case(tmp_path, "case_7", image, mask)
    assert case_arrays(tmp_path, "case_7") == tmp_path / "arrays" / "case_7.npz"
    assert case_arrays(tmp_path, "case_7").is_file()
    img, m = load_case(tmp_path, "case_7")
    assert img.dtype == np.float32 and m.dtype == np.uint8
    np.testing.assert_allclose(img, image, atol=1e-7)
    np.testing.assert_array_equal(m, mask)


def test_items_without_augmentation(prepared: Path) -> None:
    ds = SegmentationDataset(prepared, ["c0", "c2"], spec())
    assert len(ds) == 2
    x, y = ds[1]
    assert x.shape == (1, 12, 10) and x.dtype == torch.float32
    assert y.shape == (12, 10) and y.dtype == torch.int64
    img, m = load_case(prepared, "c2")
    np.testing.assert_array_equal(x.numpy(), np.moveaxis(img, -1, 0))  # minmax: no z-score
    np.testing.assert_array_equal(y.numpy(), m)
    assert [mm.shape for mm in ds.masks()] == [(12, 10), (12, 10)]


def test_zscore_is_applied_per_item(prepared: Path) -> None:
    x, _ = SegmentationDataset(prepared, ["c1"], spec("zscore"))[0]
    assert abs(float(x.mean())) < 1e-5 and float(x.std(unbiased=False)) == pytest.approx(1.0, abs=1e-4)


def test_items_with_augmentation_are_transformed_consistently(prepared: Path) -> None:
    flip = build_augmentation([{"name": "HorizontalFlip", "kwargs": {"p": 1.0}}], seed=0)
    plain = SegmentationDataset(prepared, ["c0", "c1"], spec())
    aug = SegmentationDataset(prepared, ["c0", "c1"], spec(), augment=flip)
    for i in range(2):
        (x0, y0), (x1, y1) = plain[i], aug[i]
        assert x1.shape == (1, 12, 10) and x1.dtype == torch.float32
        assert y1.shape == (12, 10) and y1.dtype == torch.int64
        torch.testing.assert_close(x1, torch.flip(x0, dims=[-1]))
        torch.testing.assert_close(y1, torch.flip(y0, dims=[-1]))
    # masks() stays un-augmented.
    np.testing.assert_array_equal(aug.masks()[0], load_case(prepared, "c0")[1])


def test_augmented_values_are_clipped_to_unit_range(prepared: Path) -> None:
    bright = build_augmentation(
        [{"name": "RandomBrightnessContrast", "kwargs": {"brightness_limit": (0.5, 0.5), "p": 1.0}}], seed=0
    )
    x, _ = SegmentationDataset(prepared, ["c0"], spec(), augment=bright)[0]
    assert float(x.max()) <= 1.0 and float(x.min()) >= 0.0


def test_class_frequencies() -> None:
    masks = [np.array([[0, 0], [1, 2]], np.uint8), np.array([[0, 0, 0, 0]], np.uint8)]
    freqs = class_frequencies(masks, 4)
    assert freqs == pytest.approx([6 / 8, 1 / 8, 1 / 8, 0.0])
    assert sum(freqs) == pytest.approx(1.0)
    assert class_frequencies([], 3) == [0.0, 0.0, 0.0]


def test_rare_class_weights_favour_cases_holding_rare_classes() -> None:
    common = np.array([[0, 1]], np.uint8)
    rare = np.array([[0, 1, 3]], np.uint8)
    background = np.zeros((1, 2), np.uint8)
    masks = [common, common, common, rare, background]
    w = rare_class_weights(masks, 4)
    assert len(w) == 5
    assert w[3] == pytest.approx(5.0)  # class 3 in 1 of 5 cases
    assert w[0] == w[1] == w[2] == pytest.approx(5 / 4)  # class 1 in 4 of 5 cases
    assert w[4] == pytest.approx(1.0)  # background is in every case
    assert w[3] > w[0] > w[4]


def test_rare_class_weights_ignore_labels_beyond_num_classes() -> None:
    masks = [np.array([[0, 1]], np.uint8), np.array([[0, 255]], np.uint8)]  # 255: ignore label
    assert rare_class_weights(masks, 2) == pytest.approx([2.0, 1.0])
