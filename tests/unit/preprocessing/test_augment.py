"""Augmentation registry: every name runs on float [0, 1] input and keeps mask labels; errors; seeding."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest

from components.core.registry import RegistryError
from components.preprocessing.augment import AUGMENTATIONS, build_augmentation, describe_augmentation

LABELS = {0, 1, 2}


def sample(channels: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:48, :48]
    mask = np.zeros((48, 48), np.uint8)
    mask[(yy - 20) ** 2 + (xx - 24) ** 2 < 120] = 1
    mask[30:40, 8:20] = 2
    image = (0.2 + 0.3 * mask[..., None] + 0.1 * rng.random((48, 48, channels))).astype(np.float32)
    return image, mask


@pytest.mark.parametrize("name", AUGMENTATIONS.names())
def test_every_transform_on_float_input(name: str) -> None:
    for channels in (1, 3):
        image, mask = sample(channels)
        aug = build_augmentation([{"name": name, "kwargs": {"p": 1.0}}], seed=1)
        for _ in range(3):
            out = aug(image=image, mask=mask)
            img, msk = out["image"], out["mask"]
            assert img.dtype == np.float32 and img.shape == image.shape, name
            assert img.min() >= 0.0 and img.max() <= 1.0, name
            assert msk.dtype == np.uint8 and msk.shape == mask.shape, name
            assert set(np.unique(msk)) <= LABELS, name


def test_same_seed_same_output_and_describe_round_trip() -> None:
    spec = [
        {"name": "HorizontalFlip", "kwargs": {"p": 0.5}},
        {"name": "Affine", "kwargs": {"rotate": (-15, 15), "fill": 0, "fill_mask": 0, "p": 0.7}},
        {"name": "RandomGamma", "kwargs": {"gamma_limit": (80, 120), "p": 0.5}},
        {"name": "GaussNoise", "kwargs": {"std_range": (0.02, 0.05), "p": 0.5}},
    ]
    image, mask = sample(1)
    a, b = build_augmentation(spec, seed=7), build_augmentation(spec, seed=7)
    runs_a = [a(image=image, mask=mask) for _ in range(4)]
    runs_b = [b(image=image, mask=mask) for _ in range(4)]
    for ra, rb in zip(runs_a, runs_b, strict=True):
        np.testing.assert_array_equal(ra["image"], rb["image"])
        np.testing.assert_array_equal(ra["mask"], rb["mask"])
    info = describe_augmentation(a)
    assert (
        info["seed"] == 7 and info["pipeline"]["transform"]["transforms"][1]["__class_fullname__"] == "Affine"
    )
    rebuilt = A.from_dict(info["pipeline"])
    rebuilt.set_random_seed(info["seed"])
    np.testing.assert_array_equal(rebuilt(image=image, mask=mask)["image"], runs_a[0]["image"])


def test_errors_name_transform_and_argument() -> None:
    with pytest.raises(RegistryError, match="gaussnoise"):
        build_augmentation([{"name": "GausNoise"}], 0)
    with pytest.raises(RegistryError):
        build_augmentation([{"name": "Normalize"}], 0)  # exists in albumentations, not allowed here
    with pytest.raises(ValueError, match=r"transforms\[1\] \(GaussNoise\).*'var_limit'.*std_range"):
        build_augmentation(
            [{"name": "HorizontalFlip"}, {"name": "GaussNoise", "kwargs": {"var_limit": 10}}], 0
        )
    with pytest.raises(ValueError, match=r"\(Affine\).*bogus"):
        build_augmentation([{"name": "Affine", "kwargs": {"bogus": 1}}], 0)
    with pytest.raises(ValueError, match=r"\(RandomRotate90\).*bogus"):  # a transform without 'strict'
        build_augmentation([{"name": "RandomRotate90", "kwargs": {"bogus": 1}}], 0)
    with pytest.raises(ValueError, match=r"\(GaussNoise\): invalid"):
        build_augmentation([{"name": "GaussNoise", "kwargs": {"std_range": (2, 1)}}], 0)
    with pytest.raises(ValueError, match="expected"):
        build_augmentation([{"name": "HorizontalFlip", "p": 1.0}], 0)


def test_empty_pipeline_is_identity() -> None:
    image, mask = sample(1)
    out = build_augmentation([], seed=0)(image=image, mask=mask)
    np.testing.assert_array_equal(out["image"], image)
    np.testing.assert_array_equal(out["mask"], mask)


def test_preview_grid_from_list_and_callable(tmp_path) -> None:
    from components.preprocessing.preview import render_preview
    from components.viz.overlay import overlay

    image, mask = sample(1)
    aug = build_augmentation([{"name": "HorizontalFlip", "kwargs": {"p": 1.0}}], seed=0)
    out = render_preview([(image, mask), sample(1, seed=1)], aug, n=5, out=tmp_path / "a" / "p.png", draws=2)
    assert out.stat().st_size > 0 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out2 = render_preview(lambda i: sample(3, seed=i), aug, n=2, out=tmp_path / "q.png")
    assert out2.exists() and not list(tmp_path.glob(".*tmp*"))
    blended = overlay(image, mask, stretch=False)
    assert blended.shape == (48, 48, 3)
    np.testing.assert_array_equal(
        blended[mask == 0], np.repeat(image, 3, -1)[mask == 0]
    )  # background untouched
