"""Albumentations pipelines built from params (``augment.transforms`` + ``augment.seed``).

Only the transforms registered in :data:`AUGMENTATIONS` may be named: ones that work on the pipeline's
float32 (H, W, C) images in [0, 1] with uint8 class-index masks, gray or RGB, and keep the image size
(RandomRotate90 / Transpose / D4 swap H and W, so use them on square images only). Intensity transforms
that need uint8 (CLAHE, Equalize) are handled by albumentations 2 itself: it converts float input to
uint8 and back inside the transform, and the tests check that. No Normalize / ToTensor here: the Dataset
applies the z-score and tensor conversion after augmentation.

albumentations 2 only *warns* about unknown arguments and then uses its defaults; here every transform
is built with ``strict=True`` (and such warnings are also turned into errors), so a typo in params.yaml
stops the run with the transform's position, name and accepted arguments.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import albumentations as A

from components.core.registry import Registry

AUGMENTATIONS: Registry[A.BasicTransform] = Registry("augmentation")

_ALLOWED: dict[str, str] = {
    "HorizontalFlip": "Mirror left-right",
    "VerticalFlip": "Mirror top-bottom",
    "RandomRotate90": "Rotate by a random multiple of 90 degrees (square images)",
    "Transpose": "Swap rows and columns (square images)",
    "D4": "Random element of the dihedral group: 8 flips/rotations (square images)",
    "Affine": "Scale, translate, rotate, shear (fill / fill_mask for the border)",
    "Rotate": "Rotate by a random angle within limit",
    "Perspective": "Random four-point perspective warp",
    "ElasticTransform": "Elastic deformation (alpha, sigma); the slowest transform",
    "GridDistortion": "Piecewise grid warp; a cheaper alternative to elastic",
    "OpticalDistortion": "Barrel / pincushion lens distortion",
    "ThinPlateSpline": "Smooth thin-plate-spline warp from jittered control points",
    "RandomBrightnessContrast": "Random brightness and contrast",
    "RandomGamma": "Random gamma curve (gamma_limit in percent)",
    "RandomToneCurve": "Random S-shaped tone curve",
    "CLAHE": "Contrast-limited adaptive histogram equalisation (via uint8)",
    "Equalize": "Histogram equalisation (via uint8)",
    "GaussNoise": "Additive Gaussian noise, std_range as a fraction of the max value",
    "MultiplicativeNoise": "Multiply pixels by random factors",
    "GaussianBlur": "Gaussian blur",
    "MotionBlur": "Motion blur along a random line",
    "MedianBlur": "Median blur",
    "Sharpen": "Sharpen and blend with the original",
    "UnsharpMask": "Unsharp-mask sharpening",
    "Downscale": "Downscale then upscale back (resolution loss)",
    "CoarseDropout": "Blank random rectangles (image only unless fill_mask is set)",
    "GridDropout": "Blank a regular grid of squares",
    "PixelDropout": "Blank random single pixels",
    "XYMasking": "Blank random horizontal / vertical stripes",
}

for _name, _desc in _ALLOWED.items():
    AUGMENTATIONS.add(_name, getattr(A, _name), _desc)


def _accepted(cls: Callable[..., A.BasicTransform]) -> list[str]:
    schema = getattr(cls, "InitSchema", None)
    return sorted(set(schema.model_fields) - {"strict"}) if schema is not None else []


def build_transform(spec: Mapping[str, Any], index: int = 0) -> A.BasicTransform:
    """Build one registered transform from ``{"name": ..., "kwargs": {...}}``.

    Raises:
        RegistryError: Unknown transform name (lists valid names, suggests close ones).
        ValueError: Malformed spec, unknown argument or invalid value, naming the transform.
    """
    where = f"augment.transforms[{index}]"
    if not isinstance(spec, Mapping) or "name" not in spec or set(spec) - {"name", "kwargs"}:
        raise ValueError(f"{where}: expected {{name: <transform>, kwargs: {{...}}}}, got {spec!r}")
    name, kwargs = spec["name"], dict(spec.get("kwargs") or {})
    cls = AUGMENTATIONS.get(name)
    where = f"{where} ({name})"
    if "strict" in kwargs:
        raise ValueError(f"{where}: 'strict' is set by segflow, remove it")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=r"Argument\(s\) .* are not valid")
        try:
            return _construct(cls, kwargs)
        except (ValueError, TypeError, UserWarning) as err:
            msg = str(err)
            if "are not valid" in msg or "unexpected keyword" in msg:
                raise ValueError(f"{where}: {msg}; accepted arguments: {_accepted(cls)}") from err
            raise ValueError(f"{where}: invalid arguments {kwargs}: {msg}") from err


def _construct(cls: Callable[..., A.BasicTransform], kwargs: dict[str, Any]) -> A.BasicTransform:
    """Instantiate with ``strict=True`` where the transform's constructor takes it (most do)."""
    try:
        return cls(**kwargs, strict=True)
    except TypeError as err:
        if "'strict'" not in str(err):
            raise
    return cls(**kwargs)


def build_augmentation(transforms: Sequence[Mapping[str, Any]], seed: int) -> A.Compose:
    """Build the training augmentation pipeline.

    Args:
        transforms: ``[{"name": "HorizontalFlip", "kwargs": {"p": 0.5}}, ...]`` (empty: identity).
        seed: Random seed of the pipeline (reproducible output for the same input sequence).

    Returns:
        ``A.Compose``; call it as ``aug(image=img, mask=mask)``.

    Shape:
        image (H, W, C) float32 in [0, 1], mask (H, W) uint8 -> same shapes and dtypes.

    Raises:
        RegistryError / ValueError: See :func:`build_transform`.
    """
    if isinstance(transforms, Mapping | str):
        raise ValueError(
            f"augment.transforms must be a list of {{name, kwargs}} mappings, got {transforms!r}"
        )
    built = [build_transform(t, i) for i, t in enumerate(transforms)]
    aug = A.Compose(built, seed=int(seed), strict=True)
    aug.set_random_seed(int(seed))
    return aug


def describe_augmentation(aug: A.Compose) -> dict[str, Any]:
    """Resolved pipeline (every argument, defaults included) plus seed, for logging with a run.

    ``A.from_dict(d["pipeline"])`` followed by ``set_random_seed(d["seed"])`` rebuilds it exactly.
    """
    return {"pipeline": A.to_dict(aug), "seed": getattr(aug, "seed", None)}


def _generator_owners(aug: A.BaseCompose | A.BasicTransform) -> list[Any]:
    """The pipeline and every transform in it, depth first: each owns its own two generators
    (``set_random_seed`` gives every one of them a fresh pair seeded alike)."""
    out: list[Any] = [aug]
    for t in getattr(aug, "transforms", None) or []:
        out += _generator_owners(t)
    return out


def augmentation_state(aug: A.BaseCompose) -> list[dict[str, Any]]:
    """The pipeline's random state as plain data (ints, lists, dicts): where its draws have got to.

    One entry per generator owner (the compose, then each transform), numpy and python states.
    """
    return [
        {"numpy": o.random_generator.bit_generator.state, "python": o.py_random.getstate()}
        for o in _generator_owners(aug)
    ]


def set_augmentation_state(aug: A.BaseCompose, state: Sequence[Mapping[str, Any]]) -> None:
    """Restore :func:`augmentation_state` in place (into a pipeline built from the same transforms).

    Raises:
        ValueError: The state is of a pipeline with another number of transforms.
    """
    owners = _generator_owners(aug)
    if len(owners) != len(state):
        raise ValueError(f"augmentation state of {len(state)} generators for a pipeline of {len(owners)}")
    for owner, st in zip(owners, state, strict=True):
        owner.random_generator.bit_generator.state = dict(st["numpy"])
        version, internal, gauss = st["python"]
        owner.py_random.setstate((int(version), tuple(int(v) for v in internal), gauss))
