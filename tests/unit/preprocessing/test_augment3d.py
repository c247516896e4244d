"""3D augmentation registry: every name keeps patch shapes, dtypes and labels; errors; seeding."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from components.core.errors import UserError
from components.preprocessing.augment3d import (
    AUGMENTATIONS_3D,
    AugmentationError,
    build_augmentation_3d,
    describe_augmentation_3d,
)

LABELS = {0, 2, 5}  # not contiguous: interpolating the mask would create values in between
SHAPES = [(1, 16, 16, 16), (2, 12, 16, 20)]
# Always applied, with the arguments a transform needs and large enough to change the patch.
KWARGS: dict[str, dict[str, Any]] = {
    "coarsedropout3d": {"p": 1.0, "num_holes_range": (2, 4), "hole_depth_range": (0.2, 0.4)},
    "cubicsymmetry": {"p": 1.0},
    "rand3delastic": {"prob": 1.0, "sigma_range": (3, 4), "magnitude_range": (50, 100)},
    "randaffine": {"prob": 1.0, "rotate_range": 0.4, "scale_range": 0.1, "translate_range": 2},
    "randrotate": {"prob": 1.0, "range_x": 0.5, "range_y": 0.2},
    "randzoom": {"prob": 1.0, "min_zoom": 0.7, "max_zoom": 1.3},
    "randscaleintensity": {"prob": 1.0, "factors": 0.3},
    "randshiftintensity": {"prob": 1.0, "offsets": 0.3},
    "randsimulatelowresolution": {"prob": 1.0, "zoom_range": (0.5, 0.6)},
}
IMAGE_ONLY = [
    "coarsedropout3d",  # fill_mask None: the mask is kept
    "randadjustcontrast",
    "randgaussiannoise",
    "randgaussiansmooth",
    "randscaleintensity",
    "randshiftintensity",
    "randsimulatelowresolution",
]


def kwargs_for(name: str) -> dict[str, Any]:
    return KWARGS.get(name, {"prob": 1.0})


def sample(shape: tuple[int, ...], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    grid = np.indices(shape[1:])
    center = np.array(shape[1:])[:, None, None, None] / 2
    mask = np.zeros(shape[1:], np.uint8)
    mask[((grid - center) ** 2).sum(0) < (min(shape[1:]) / 3) ** 2] = 2
    mask[grid[0] < 3] = 5
    image = (0.2 + 0.1 * mask + 0.1 * rng.random(shape)).astype(np.float32)
    return image, mask


def test_registry_lists_every_name_with_a_description() -> None:
    assert set(AUGMENTATIONS_3D.names()) == set(KWARGS) | set(IMAGE_ONLY) | {"randflip"}
    assert all(desc for _, desc in AUGMENTATIONS_3D.describe())


@pytest.mark.parametrize("name", AUGMENTATIONS_3D.names())
def test_every_transform_keeps_shapes_dtypes_and_labels(name: str) -> None:
    aug = build_augmentation_3d([{"name": name, "kwargs": kwargs_for(name)}], seed=1)
    for shape in SHAPES:
        image, mask = sample(shape)
        if name == "cubicsymmetry" and len(set(shape[1:])) > 1:
            with pytest.raises(AugmentationError, match=r"transforms\[0\] \(CubicSymmetry\).*cubic patch"):
                aug(image, mask)
            continue
        for _ in range(2):
            img, msk = aug(image, mask)
            assert img.dtype == np.float32 and img.shape == image.shape, name
            assert msk.dtype == np.uint8 and msk.shape == mask.shape, name
            assert set(np.unique(msk)) <= LABELS, name
            assert np.isfinite(img).all(), name


@pytest.mark.parametrize("name", IMAGE_ONLY)
def test_intensity_transforms_leave_the_mask_unchanged(name: str) -> None:
    image, mask = sample(SHAPES[1])
    img, msk = build_augmentation_3d([{"name": name, "kwargs": kwargs_for(name)}], seed=2)(image, mask)
    np.testing.assert_array_equal(msk, mask)
    assert not np.array_equal(img, image), name


def test_coarse_dropout_fills_the_mask_only_with_fill_mask() -> None:
    image, mask = sample(SHAPES[1])
    spec: dict[str, Any] = {"name": "CoarseDropout3D", "kwargs": {**KWARGS["coarsedropout3d"], "fill": 3.0}}
    img, msk = build_augmentation_3d([spec], seed=0)(image, mask)
    assert (img == 3.0).any()
    np.testing.assert_array_equal(msk, mask)  # albumentations 2.0.8 alone writes label 3 here
    spec["kwargs"]["fill_mask"] = 0
    img, msk = build_augmentation_3d([spec], seed=0)(image, mask)
    assert set(np.unique(msk[img[0] == 3.0])) == {0} and (msk == mask)[img[0] != 3.0].all()


def test_flips_are_exact() -> None:
    image, mask = sample(SHAPES[1])
    img, msk = build_augmentation_3d([{"name": "RandFlip", "kwargs": {"prob": 1.0, "spatial_axis": 1}}], 0)(
        image, mask
    )
    np.testing.assert_array_equal(img, np.flip(image, axis=2))
    np.testing.assert_array_equal(msk, np.flip(mask, axis=1))
    img, msk = build_augmentation_3d([{"name": "RandFlip", "kwargs": {"prob": 1.0}}], 0)(image, mask)
    np.testing.assert_array_equal(img, np.flip(image, axis=(1, 2, 3)))
    np.testing.assert_array_equal(msk, np.flip(mask))


def test_rotation_about_z_is_in_plane_and_moves_image_and_mask_together() -> None:
    _, mask = sample((1, 12, 16, 16))
    mask[:, 1:4, 10:14] = 2  # off-centre bar: a quarter turn moves it
    spec = [{"name": "RandRotate", "kwargs": {"prob": 1.0, "range_x": (math.pi / 2, math.pi / 2)}}]
    img, msk = build_augmentation_3d(spec, 0)(mask[None].astype(np.float32), mask)
    turns = [np.rot90(mask, k, axes=(1, 2)) for k in (1, 3)]
    assert any(np.array_equal(msk, t) for t in turns)
    assert not np.array_equal(msk, mask)
    np.testing.assert_allclose(img[0], msk, atol=1e-3)  # bilinear image and nearest mask share one draw


def test_spatial_transforms_share_one_draw_between_image_and_mask() -> None:
    _, mask = sample(SHAPES[1])
    for name in ("randaffine", "rand3delastic", "randzoom", "randrotate"):
        aug = build_augmentation_3d([{"name": name, "kwargs": kwargs_for(name)}], seed=3)
        img, msk = aug(mask[None].astype(np.float32), mask)
        assert not np.array_equal(msk, mask), name
        assert (np.abs(img[0] - msk) < 1.5).mean() > 0.9, name


def test_same_seed_same_sequence_and_describe_round_trip() -> None:
    spec = [
        {"name": "RandFlip", "kwargs": {"prob": 0.5, "spatial_axis": [0, 2]}},
        {"name": "CoarseDropout3D", "kwargs": {"p": 0.5}},
        {"name": "RandAffine", "kwargs": {"prob": 0.5, "rotate_range": (0.3, 0, 0), "scale_range": 0.1}},
        {"name": "RandAdjustContrast", "kwargs": {"prob": 0.5, "gamma": (0.7, 1.5)}},
        {"name": "RandGaussianNoise", "kwargs": {"prob": 0.5, "std": 0.05}},
        {"name": "CubicSymmetry", "kwargs": {"p": 0.5}},
    ]
    image, mask = sample(SHAPES[0])
    a, b, other = (
        build_augmentation_3d(spec, 7),
        build_augmentation_3d(spec, 7),
        build_augmentation_3d(spec, 8),
    )
    runs_a = [a(image, mask) for _ in range(4)]
    for ra, rb in zip(runs_a, [b(image, mask) for _ in range(4)], strict=True):
        np.testing.assert_array_equal(ra[0], rb[0])
        np.testing.assert_array_equal(ra[1], rb[1])
    assert any(
        not np.array_equal(ra[0], ro[0])
        for ra, ro in zip(runs_a, [other(image, mask) for _ in range(4)], strict=True)
    )

    info = describe_augmentation_3d(a)
    assert json.loads(json.dumps(info)) == info and info["seed"] == 7
    assert [t["name"] for t in info["transforms"]] == [t["name"] for t in spec]
    assert info["transforms"][2]["kwargs"]["mode"] == "bilinear"  # defaults resolved
    rebuilt = build_augmentation_3d(info["transforms"], info["seed"])
    for ra in runs_a:
        out = rebuilt(image, mask)
        np.testing.assert_array_equal(out[0], ra[0])
    a.reseed(7)
    np.testing.assert_array_equal(a(image, mask)[0], runs_a[0][0])


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (
            {"name": "RandFlipp"},
            r"transforms\[1\]: unknown 3D augmentation 'RandFlipp'.*randflip.*Valid names",
        ),
        ({"name": "RandFlip", "kwargs": {"probability": 1}}, r"\[1\] \(RandFlip\).*'probability'.*'prob'"),
        ({"name": "RandFlip", "kwargs": {"keys": ["image"]}}, r"unknown argument\(s\) \['keys'\]"),
        ({"name": "CubicSymmetry", "kwargs": {"strict": True}}, r"\['strict'\]; accepted arguments: \['p'\]"),
        ({"name": "Rand3DElastic"}, r"\[1\] \(Rand3DElastic\): missing.*'sigma_range'"),
        ({"name": "CoarseDropout3D", "kwargs": {"p": 2}}, r"\[1\] \(CoarseDropout3D\): invalid arguments"),
        ({"name": "RandRotate", "kwargs": {"mode": "cubic"}}, r"\[1\] \(RandRotate\): invalid.*bicubic"),
        ({"name": "RandFlip", "kwargs": {"spatial_axis": 5}}, r"\[1\] \(RandFlip\): invalid arguments"),
        (["RandFlip"], r"transforms\[1\]: expected \{name"),
        ({"name": "RandFlip", "kwargs": [1]}, r"transforms\[1\]: kwargs must be a mapping"),
    ],
)
def test_bad_specs_name_the_index(spec: Any, match: str) -> None:
    with pytest.raises(AugmentationError, match=match) as info:
        build_augmentation_3d([{"name": "RandFlip"}, spec], seed=0)
    assert isinstance(info.value, UserError) and isinstance(info.value, ValueError)


def test_bad_call_shapes() -> None:
    aug = build_augmentation_3d([], seed=0)
    image, mask = sample(SHAPES[1])
    np.testing.assert_array_equal(aug(image, mask)[0], image)  # empty pipeline: identity
    with pytest.raises(ValueError, match=r"\(C, Z, Y, X\)"):
        aug(image[0], mask)
    with pytest.raises(AugmentationError, match="list"):
        build_augmentation_3d({"name": "RandFlip"}, seed=0)  # type: ignore[arg-type]
