"""Non-zero bounding box, crop, and pasting predictions back into the full frame."""

from __future__ import annotations

import json

import numpy as np
import pytest

from components.preprocessing.crop import CropBox, crop, nonzero_bbox, paste_labels, paste_probabilities


def test_bbox_covers_nonzero_of_any_channel() -> None:
    image = np.zeros((2, 10, 12), np.float32)
    image[0, 2, 3] = 1.0
    image[1, 7, 9] = -0.5
    box = nonzero_bbox(image)
    assert box == CropBox((2, 3), (8, 10))
    assert box.shape == (6, 7)
    vol = np.zeros((1, 5, 6, 7), np.int16)
    vol[0, 1:3, 2, 4:7] = 9
    assert nonzero_bbox(vol) == CropBox((1, 2, 4), (3, 3, 7))


def test_bbox_of_empty_image_is_full_extent() -> None:
    assert nonzero_bbox(np.zeros((3, 4, 5))) == CropBox((0, 0), (4, 5))


def test_crop_image_and_mask() -> None:
    image = np.arange(2 * 6 * 7, dtype=np.float32).reshape(2, 6, 7)
    mask = np.arange(6 * 7).reshape(6, 7)
    box = CropBox((1, 2), (4, 7))
    assert crop(image, box).shape == (2, 3, 5)
    assert np.shares_memory(crop(image, box), image)  # a view
    assert np.array_equal(crop(mask, box.slices), mask[1:4, 2:7])
    assert np.array_equal(crop(image, box)[1], image[1, 1:4, 2:7])
    with pytest.raises(ValueError, match="2D crop box"):
        crop(np.zeros((1, 2, 6, 7)), box)
    with pytest.raises(ValueError, match="does not fit"):
        crop(np.zeros((3, 6)), box)


def test_crop_paste_round_trip() -> None:
    rng = np.random.default_rng(0)
    labels = np.zeros((6, 9, 8), np.uint8)
    labels[1:5, 2:7, 3:8] = rng.integers(1, 4, size=(4, 5, 5))
    image = np.stack([labels.astype(np.float32), np.zeros(labels.shape, np.float32)])
    box = nonzero_bbox(image)
    cropped = crop(labels, box)
    assert np.array_equal(paste_labels(cropped, box, labels.shape), labels)

    probs = rng.random((3, *box.shape), dtype=np.float32)
    probs /= probs.sum(0)
    full = paste_probabilities(probs, box, labels.shape)
    assert full.shape == (3, *labels.shape) and full.dtype == np.float32
    np.testing.assert_allclose(full.sum(0), 1.0, atol=1e-6)
    assert np.array_equal(crop(full, box), probs)
    outside = np.ones(labels.shape, bool)
    outside[box.slices] = False
    assert np.all(full[0][outside] == 1) and np.all(full[1:][:, outside] == 0)
    with pytest.raises(ValueError, match="spatial shape"):
        paste_labels(cropped[:-1], box, labels.shape)
    with pytest.raises(ValueError, match="full shape"):
        paste_probabilities(probs, box, (3, 3, 3))


def test_cropbox_json_and_validation() -> None:
    box = CropBox((1, 0, 2), (5, 3, 9))
    assert CropBox.from_json(json.loads(json.dumps(box.to_json()))) == box
    assert CropBox.from_slices(box.slices) == box
    with pytest.raises(ValueError, match="start < stop"):
        CropBox((2, 0), (2, 4))
    with pytest.raises(ValueError, match="explicit start"):
        CropBox.from_slices((slice(0, 4), slice(None, 3)))
