"""The training recipe: nnU-Net's, by dimension, with one budget-aware exception.

SGD with Nesterov momentum 0.99, learning rate 0.01 decaying polynomially (exponent 0.9) to 0 at the
last step, weight decay 3e-5 (for schedules shorter than :data:`SGD_MIN_STEPS` steps per fold, as a
small time budget on a CPU gives, AdamW with warm-up and cosine decay instead); Dice +
cross-entropy over deep-supervision outputs; 1/3 of the patches centred on a foreground voxel;
augmentation with rotation and scaling (p 0.2 each), Gaussian noise, blur, brightness, contrast,
low-resolution simulation, gamma and mirroring along every axis (but one along which two classes
keep one order: :mod:`components.planning.mirroring`); at inference, Gaussian-weighted
sliding windows with overlap 0.5 and test-time mirroring along the axes the augmentation mirrored.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from components.planning.decision import Decision

SGD = {"name": "sgd", "kwargs": {"lr": 0.01, "momentum": 0.99, "nesterov": True, "weight_decay": 3e-5}}
POLY = {"name": "poly", "kwargs": {}}
ADAMW = {"name": "adamw", "kwargs": {"lr": 0.003, "weight_decay": 0.0001}}
COSINE = {"name": "cosine", "kwargs": {"warmup_epochs": 1}}
SGD_MIN_STEPS = 10_000  # steps per fold from which nnU-Net's SGD schedule is used
LOSS = [{"name": "dice", "weight": 1.0, "kwargs": {}}, {"name": "ce", "weight": 1.0, "kwargs": {}}]
OVERLAP = 0.5
ROTATION_3D = math.radians(30)  # nnU-Net rotates 3D patches by up to 30 degrees about each axis
ROTATION_2D = 180.0  # ... and 2D patches by any angle
ROTATION_2D_ORDERED = 30.0  # ... but not past this where an axis keeps the classes' order (a half
# turn is both mirrors at once)


def plan_optimizer(steps_per_fold: int) -> Decision:
    """``train.optimizer``: nnU-Net's SGD for long schedules, AdamW for short ones."""
    if steps_per_fold >= SGD_MIN_STEPS:
        return Decision(SGD, "nnU-Net's: SGD, Nesterov momentum 0.99, lr 0.01, weight decay 3e-5")
    return Decision(
        ADAMW,
        f"AdamW, lr 3e-3: {steps_per_fold} steps per fold is a short schedule (< {SGD_MIN_STEPS}); SGD with "
        "momentum 0.99 is tuned for nnU-Net's 250,000, AdamW gets further in a few thousand",
    )


def plan_scheduler(steps_per_fold: int) -> Decision:
    """``train.scheduler``: poly decay (nnU-Net) with SGD; warm-up and cosine decay with AdamW."""
    if steps_per_fold >= SGD_MIN_STEPS:
        return Decision(POLY, "nnU-Net's: lr x (1 - step/steps)^0.9, to 0 at the last step")
    return Decision(COSINE, "with AdamW: one epoch of linear warm-up, then cosine decay to 0")


def plan_loss() -> Decision:
    """``train.loss``."""
    return Decision(
        LOSS, "nnU-Net's: Dice + cross-entropy (on every deep-supervision output, where the network has them)"
    )


def _mirrors(patch_ndim: int, axes: Sequence[int] | None) -> list[dict[str, Any]]:
    """Mirroring along ``axes`` (None: every axis) of a ``patch_ndim``-D patch."""
    axes = range(patch_ndim) if axes is None else axes
    if patch_ndim == 2:
        flips = {0: "VerticalFlip", 1: "HorizontalFlip"}
        return [{"name": flips[a], "kwargs": {"p": 0.5}} for a in sorted(axes, reverse=True)]
    return [{"name": "RandFlip", "kwargs": {"prob": 0.5, "spatial_axis": [a]}} for a in sorted(axes)]


def augmentation_3d(coarse_axis: int | None, mirror: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """nnU-Net's augmentation for 3D patches (``coarse_axis``: anisotropic data rotate in-plane only;
    ``mirror``: the axes it may mirror, None: every one)."""
    if coarse_axis is None:
        spatial = {
            "name": "RandAffine",
            "kwargs": {"prob": 0.2, "rotate_range": [ROTATION_3D] * 3, "scale_range": [0.3] * 3},
        }
    else:
        about = ("range_x", "range_y", "range_z")[coarse_axis]  # rotation about the coarse axis
        spatial = {"name": "RandRotate", "kwargs": {"prob": 0.2, about: ROTATION_3D}}
    return [
        spatial,
        *(
            [{"name": "RandZoom", "kwargs": {"prob": 0.2, "min_zoom": 0.7, "max_zoom": 1.4}}]
            if coarse_axis is not None
            else []
        ),
        {"name": "RandGaussianNoise", "kwargs": {"prob": 0.1, "std": 0.1}},
        {
            "name": "RandGaussianSmooth",
            "kwargs": {"prob": 0.2, "sigma_x": [0.5, 1.0], "sigma_y": [0.5, 1.0], "sigma_z": [0.5, 1.0]},
        },
        {"name": "RandScaleIntensity", "kwargs": {"prob": 0.15, "factors": 0.25}},
        {"name": "RandSimulateLowResolution", "kwargs": {"prob": 0.25, "zoom_range": [0.5, 1.0]}},
        {"name": "RandAdjustContrast", "kwargs": {"prob": 0.3, "gamma": [0.7, 1.5]}},
        *_mirrors(3, mirror),
    ]


def augmentation_2d(mirror: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """nnU-Net's augmentation for 2D patches (albumentations; images in [0, 1] while augmented;
    ``mirror``: the axes it may mirror, None: both; with one left out, rotation stays under
    :data:`ROTATION_2D_ORDERED`)."""
    turn = ROTATION_2D if mirror is None or len(set(mirror)) == 2 else ROTATION_2D_ORDERED
    return [
        {"name": "Affine", "kwargs": {"rotate": [-turn, turn], "scale": [0.7, 1.4], "p": 0.2}},
        {"name": "GaussNoise", "kwargs": {"std_range": [0.0, 0.05], "p": 0.1}},
        {"name": "GaussianBlur", "kwargs": {"sigma_limit": [0.5, 1.0], "p": 0.2}},
        {
            "name": "RandomBrightnessContrast",
            "kwargs": {"brightness_limit": 0.15, "contrast_limit": 0.25, "p": 0.15},
        },
        {"name": "Downscale", "kwargs": {"scale_range": [0.5, 1.0], "p": 0.25}},
        {"name": "RandomGamma", "kwargs": {"gamma_limit": [70, 150], "p": 0.3}},
        *_mirrors(2, mirror),
    ]


def light_augmentation(
    patch_ndim: int, coarse_axis: int | None, mirror: Sequence[int] | None = None
) -> list[dict[str, Any]]:
    """For short schedules: mirroring, mild rotation and scaling, gamma and noise (the part of
    nnU-Net's set a few thousand steps can learn from; the rest slows them down)."""
    mild = math.radians(15)
    if patch_ndim == 2:
        return [
            {"name": "Affine", "kwargs": {"rotate": [-15.0, 15.0], "scale": [0.85, 1.15], "p": 0.2}},
            {"name": "RandomGamma", "kwargs": {"gamma_limit": [70, 150], "p": 0.3}},
            {"name": "GaussNoise", "kwargs": {"std_range": [0.0, 0.05], "p": 0.1}},
            *_mirrors(2, mirror),
        ]
    if coarse_axis is None:
        spatial = [
            {
                "name": "RandAffine",
                "kwargs": {"prob": 0.2, "rotate_range": [mild] * 3, "scale_range": [0.15] * 3},
            }
        ]
    else:
        about = ("range_x", "range_y", "range_z")[coarse_axis]
        spatial = [
            {"name": "RandRotate", "kwargs": {"prob": 0.2, about: mild}},
            {"name": "RandZoom", "kwargs": {"prob": 0.2, "min_zoom": 0.85, "max_zoom": 1.15}},
        ]
    return [
        *spatial,
        {"name": "RandAdjustContrast", "kwargs": {"prob": 0.3, "gamma": [0.7, 1.5]}},
        {"name": "RandGaussianNoise", "kwargs": {"prob": 0.1, "std": 0.1}},
        *_mirrors(3, mirror),
    ]


def plan_augmentation(
    patch_ndim: int,
    coarse_axis: int | None,
    steps_per_fold: int | None = None,
    mirror: Decision | None = None,
) -> Decision:
    """``train.augment.transforms`` for the network's patch dimension and schedule (``None``: not
    known yet, nnU-Net's full set, the costlier one to measure); ``mirror``: the patch axes it may
    mirror (:func:`components.planning.mirroring.plan_mirror_axes`; None: every axis)."""
    axes = None if mirror is None else list(mirror.value)
    mirroring = "" if mirror is None else f"; mirroring: {mirror.reason}"
    where = (
        ""
        if patch_ndim == 2
        else (
            ", rotation about every axis"
            if coarse_axis is None
            else f", rotation in-plane only (about axis {coarse_axis})"
        )
    )
    if steps_per_fold is not None and steps_per_fold < SGD_MIN_STEPS:
        return Decision(
            light_augmentation(patch_ndim, coarse_axis, axes),
            f"a short schedule ({steps_per_fold} steps per fold): the light part of nnU-Net's "
            f"{patch_ndim}D set (mirroring, mild rotation and scaling, gamma, noise{where}); the rest "
            f"pays over longer training{mirroring}",
        )
    if patch_ndim == 3:
        return Decision(augmentation_3d(coarse_axis, axes), f"nnU-Net's 3D set{where}, mirroring{mirroring}")
    return Decision(
        augmentation_2d(axes),
        "nnU-Net's 2D set: rotation, scale, noise, blur, brightness, contrast, "
        f"low resolution, gamma, mirroring{mirroring}",
    )


def mirrored_axes(transforms: list[dict[str, Any]], patch_ndim: int) -> list[int]:
    """The patch axes the augmentation mirrors (what test-time mirroring may use)."""
    axes: set[int] = set()
    for t in transforms:
        name = str(t.get("name", "")).lower()
        kwargs = t.get("kwargs") or {}
        if name == "randflip":
            given = kwargs.get("spatial_axis")
            axes |= (
                set(range(patch_ndim))
                if given is None
                else {int(a) for a in (given if isinstance(given, list) else [given])}
            )
        elif name == "verticalflip":
            axes.add(0)
        elif name == "horizontalflip":
            axes.add(1)
        elif name in ("d4", "randomrotate90", "transpose", "cubicsymmetry"):
            axes |= set(range(patch_ndim))
    return sorted(axes)
