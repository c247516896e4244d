"""Patch-mode training data for one fold: random patches to train on, whole cases to validate on."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from components.data.case_store import load_case
from components.data.splits import Splits
from components.models import MODELS
from components.params.config import Params
from components.preprocessing.augment import build_augmentation, describe_augmentation
from components.preprocessing.native import CaseRecord, NativeSpec
from components.preprocessing.specs import prepared_info
from components.training.patches import PatchAugment, PatchDataset


@dataclass(frozen=True)
class NativeFoldData:
    """A fold's patch sampler, its validation cases and what the model needs to know."""

    train: PatchDataset
    val_cases: list[tuple[np.ndarray, np.ndarray]]
    augmentation: dict[str, Any]
    patch_size: tuple[int, ...]
    spacing: tuple[float, ...] | None  # of the network's grid (in-plane for 2D-on-3D)


def _records(prepared_dir: Path, ids: Sequence[str]) -> list[CaseRecord]:
    recs = prepared_info(prepared_dir)["case_records"]
    return [CaseRecord.from_json(recs[c]) for c in ids]


def _albumentations_on_patches(
    transforms: list[dict[str, Any]], seed: int, unit_range: bool
) -> tuple[PatchAugment, dict]:
    """The 2D albumentations pipeline applied to channels-first patches.

    ``unit_range``: the patches are in [0, 1] (2D images: their normalisation follows the
    augmentation). Otherwise (slices of volumes, already z-scored or in CT units) each channel of
    a patch is mapped to [0, 1] by its own minimum and maximum for the pipeline, which is made for
    that range, and back after, as nnU-Net's gamma does: gamma on negative values was NaN, and the
    clip to [0, 1] cut every normalised intensity outside it.
    """
    aug = build_augmentation(transforms, seed=seed)

    def apply(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.moveaxis(image, 0, -1)
        if unit_range:
            out = aug(image=x, mask=mask)
            return np.moveaxis(np.clip(out["image"], 0.0, 1.0), -1, 0), out["mask"]
        lo, hi = x.min(axis=(0, 1)), x.max(axis=(0, 1))
        span = np.where(hi > lo, hi - lo, 1.0).astype(np.float32)
        out = aug(image=((x - lo) / span).astype(np.float32), mask=mask)
        back = np.clip(out["image"], 0.0, 1.0) * span + lo
        return np.moveaxis(back.astype(np.float32), -1, 0), out["mask"]

    return apply, describe_augmentation(aug)


def patch_augmentation(
    transforms: list[dict[str, Any]], seed: int, spec: NativeSpec, patch_ndim: int
) -> tuple[PatchAugment | None, dict[str, Any]]:
    """albumentations on 2D patches (images and slices of volumes), the 3D pipeline on 3D patches."""
    if not transforms:
        return None, {"transforms": [], "seed": seed}
    if patch_ndim == 2:
        return _albumentations_on_patches(transforms, seed, unit_range=spec.ndim == 2)
    from components.preprocessing.augment3d import build_augmentation_3d, describe_augmentation_3d

    aug3 = build_augmentation_3d(transforms, seed=seed)
    return aug3, describe_augmentation_3d(aug3)


def grid_spacing(spec: NativeSpec, records: Sequence[CaseRecord]) -> tuple[float, ...] | None:
    """Spacing of the prepared grid (the target, or the cases' median); in-plane only for slices."""
    if spec.ndim == 2:
        return None
    if spec.target_spacing is not None:
        sp = spec.target_spacing
    else:
        sp = tuple(float(v) for v in np.median([r.spacing for r in records], axis=0))
    if spec.slice_axis is not None:
        return tuple(s for i, s in enumerate(sp) if i != spec.slice_axis)
    return tuple(sp)


def native_fold_data(
    params: Params, fold: int, splits: Splits, prepared_dir: Path, spec: NativeSpec
) -> NativeFoldData:
    """Load the fold's prepared cases and build its patch sampler (with augmentation)."""
    tc = params.train
    patch = tuple(int(p) for p in tc.patch_size or ())
    train_ids, val_ids = splits.train_cases(fold), list(splits.folds[fold])
    train_cases = [load_case(prepared_dir, c) for c in train_ids]
    records = _records(prepared_dir, train_ids)
    augment, described = patch_augmentation(
        [t.model_dump() for t in tc.augment.transforms], tc.augment.seed + fold, spec, len(patch)
    )
    iterations = params.iterations_per_epoch or 1
    train = PatchDataset(
        train_cases,
        patch,
        iterations * tc.batch_size * tc.grad_accum,
        params.data.num_classes,
        tc.foreground_fraction,
        seed=tc.seed + fold,
        augment=augment,
        slice_axis=spec.slice_axis,
        intensity_maps=[r.intensity_map for r in records],
        augment_seed=tc.augment.seed + fold,
    )
    val_records = _records(prepared_dir, val_ids)
    val_cases = []
    for c, rec in zip(val_ids, val_records, strict=True):
        image, mask = load_case(prepared_dir, c)
        scale, shift = rec.intensity_map
        val_cases.append((image * scale + shift, mask))
    return NativeFoldData(train, val_cases, described, patch, grid_spacing(spec, records))


def native_model_kwargs(
    name: str, kwargs: Mapping[str, Any], patch: Sequence[int], spacing: Sequence[float] | None
) -> dict[str, Any]:
    """Fill ``patch_size`` / ``spacing`` into a model's kwargs when it takes them and they are unset."""
    out = dict(kwargs)
    accepted = inspect.signature(MODELS.get(name)).parameters
    if "patch_size" in accepted:
        out.setdefault("patch_size", [int(p) for p in patch])
    if "spacing" in accepted and spacing is not None:
        out.setdefault("spacing", [float(s) for s in spacing])
    return out
