"""Native-resolution preprocessing (``preprocess.spatial_mode: patch``), shared by training and inference.

A case keeps its own resolution. Volumes are optionally cropped to their non-zero region,
resampled to a target spacing and normalised per channel; 2D images keep their pixels and go
through the 2D intensity pipeline. :class:`NativeSpec` holds every choice (the resolved target
spacing and dataset intensity statistics included), is stored with the prepared data and each
checkpoint, and :func:`preprocess_case` / :func:`restore_probabilities` apply and undo it, so
inference repeats exactly the steps training saw.

Arrays are channels first: images ``(C, *S)``, masks ``(*S)``, probabilities ``(K, *S)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from components.data.regions import IGNORE_INDEX
from components.preprocessing.crop import crop, nonzero_bbox, paste_probabilities
from components.preprocessing.intensity import apply_clahe, to_unit_range
from components.preprocessing.pipeline import match_channels
from components.preprocessing.resample import (
    ANISOTROPY_THRESHOLD,
    resample_image,
    resample_mask,
    resample_probabilities,
    target_shape,
)

if TYPE_CHECKING:
    from components.params.config import Params


@dataclass(frozen=True)
class NativeSpec:
    """Everything native preprocessing does, in plain values (JSON via to_dict / from_dict).

    Attributes:
        ndim: Spatial axes of the data (2 images, 3 volumes).
        channels: Input channels.
        intensity_method: ``preprocess.intensity.method``.
        intensity_kwargs: Its parameters.
        target_spacing: Resolved spacing to resample volumes to (None: keep each case's own).
        crop_nonzero: Crop volumes to the bounding box of their non-zero voxels first.
        intensity_stats: Per channel foreground ``p0_5``, ``p99_5``, ``mean``, ``sd`` (method ``ct``).
        clahe: 2D only: (clip_limit, tile_grid).
        slice_axis: Volumes with a 2D network: the array axis the network slices along.
        patch_size: The network's patch (= inference window); set by training, not by preprocess.
    """

    ndim: int
    channels: int
    intensity_method: str
    intensity_kwargs: dict[str, float] = field(default_factory=dict)
    target_spacing: tuple[float, ...] | None = None
    crop_nonzero: bool = False
    intensity_stats: tuple[dict[str, float], ...] | None = None
    clahe: tuple[float, int] | None = None
    slice_axis: int | None = None
    spatial_mode: str = "patch"
    patch_size: tuple[int, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "spatial_mode": self.spatial_mode,
            "ndim": self.ndim,
            "channels": self.channels,
            "intensity_method": self.intensity_method,
            "intensity_kwargs": dict(self.intensity_kwargs),
            "target_spacing": list(self.target_spacing) if self.target_spacing else None,
            "crop_nonzero": self.crop_nonzero,
            "intensity_stats": [dict(s) for s in self.intensity_stats] if self.intensity_stats else None,
            "clahe": list(self.clahe) if self.clahe else None,
            "slice_axis": self.slice_axis,
            "patch_size": list(self.patch_size) if self.patch_size else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NativeSpec:
        """Inverse of :meth:`to_dict`."""
        ts, stats, clahe = d.get("target_spacing"), d.get("intensity_stats"), d.get("clahe")
        return cls(
            ndim=int(d["ndim"]),
            channels=int(d["channels"]),
            intensity_method=str(d["intensity_method"]),
            intensity_kwargs={k: float(v) for k, v in (d.get("intensity_kwargs") or {}).items()},
            target_spacing=tuple(float(s) for s in ts) if ts else None,
            crop_nonzero=bool(d.get("crop_nonzero", False)),
            intensity_stats=tuple({k: float(v) for k, v in s.items()} for s in stats) if stats else None,
            clahe=(float(clahe[0]), int(clahe[1])) if clahe else None,
            slice_axis=None if d.get("slice_axis") is None else int(d["slice_axis"]),
            patch_size=tuple(int(p) for p in d["patch_size"]) if d.get("patch_size") else None,
        )


@dataclass(frozen=True)
class CaseRecord:
    """How one case was brought onto the network grid, which :func:`restore_probabilities` undoes.

    Attributes:
        original_shape: Spatial shape as read.
        bbox: (start, stop) per axis of the non-zero crop (the whole extent when not cropping).
        resampled_shape: Spatial shape after resampling (the prepared grid).
        spacing: The case's own spacing (array-axis order).
        intensity_map: ``(scale, shift)`` of :func:`intensity_map`.
    """

    original_shape: tuple[int, ...]
    bbox: tuple[tuple[int, int], ...]
    resampled_shape: tuple[int, ...]
    spacing: tuple[float, ...]
    intensity_map: tuple[float, float] = (1.0, 0.0)

    def to_json(self) -> dict[str, Any]:
        """Plain lists."""
        return {
            "original_shape": list(self.original_shape),
            "bbox": [list(b) for b in self.bbox],
            "resampled_shape": list(self.resampled_shape),
            "spacing": list(self.spacing),
            "intensity_map": list(self.intensity_map),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> CaseRecord:
        """Inverse of :meth:`to_json`."""
        return cls(
            tuple(int(v) for v in d["original_shape"]),
            tuple((int(a), int(b)) for a, b in d["bbox"]),
            tuple(int(v) for v in d["resampled_shape"]),
            tuple(float(v) for v in d["spacing"]),
            (float(d["intensity_map"][0]), float(d["intensity_map"][1])),
        )

    @property
    def slices(self) -> tuple[slice, ...]:
        """The crop as slices."""
        return tuple(slice(a, b) for a, b in self.bbox)


def channels_first(image: np.ndarray, ndim: int, channels: int) -> np.ndarray:
    """A raw image as read (2D ``(H, W[, C])``; volume ``(Z, Y, X)`` or ``(C, Z, Y, X)``) -> ``(C, *S)``.

    2D images get the training channel count (gray <-> RGB as in the 2D pipeline); volumes must
    already have it.
    """
    if ndim == 2:
        return np.moveaxis(match_channels(image, channels), -1, 0)
    vol = image[None] if image.ndim == 3 else image
    if vol.shape[0] != channels:
        raise ValueError(
            f"volume has {vol.shape[0]} channel(s), the model expects {channels} (data.channels)"
        )
    return vol


def _normalise_channel(x: np.ndarray, spec: NativeSpec, c: int) -> np.ndarray:
    method = spec.intensity_method
    if method == "ct":
        if not spec.intensity_stats:
            raise ValueError("intensity method 'ct' needs the dataset's foreground statistics")
        st = spec.intensity_stats[c]
        y = np.clip(x.astype(np.float32), st["p0_5"], st["p99_5"])
        return ((y - st["mean"]) / max(st["sd"], 1e-8)).astype(np.float32)
    if method == "zscore":  # per case, nnU-Net's choice for MRI and other non-CT data
        y = x.astype(np.float32)
        sd = float(y.std())
        return ((y - float(y.mean())) / (sd if sd > 1e-8 else 1.0)).astype(np.float32)
    flat = x.reshape(-1, x.shape[-1])  # (rows, X): the 2D range normaliser sees every voxel
    return to_unit_range(flat, method, **spec.intensity_kwargs).reshape(x.shape)


def normalise(image: np.ndarray, spec: NativeSpec) -> np.ndarray:
    """Raw ``(C, *S)`` -> network intensities, float32.

    Volumes: per channel (``ct`` clips to the dataset's foreground 0.5/99.5 percentiles and
    z-scores with its foreground mean/sd; ``zscore`` per case; range methods map to [0, 1]).
    2D images: the 2D pipeline's [0, 1] mapping (RGB jointly) and CLAHE; their z-score is the
    separate :func:`intensity_map`, applied after augmentation (albumentations' photometric
    transforms clip float images to [0, 1]).
    """
    if spec.ndim == 3:
        return np.stack([_normalise_channel(image[c], spec, c) for c in range(image.shape[0])])
    method = "zscore" if spec.intensity_method == "ct" else spec.intensity_method
    unit = to_unit_range(np.moveaxis(image, 0, -1), method, **spec.intensity_kwargs)
    if spec.clahe:
        unit = apply_clahe(unit, *spec.clahe)
    out = np.moveaxis(unit.reshape(*image.shape[1:], -1), -1, 0)
    return np.ascontiguousarray(out, dtype=np.float32)


def intensity_map(image: np.ndarray, spec: NativeSpec) -> tuple[float, float]:
    """``(scale, shift)`` taking a normalised whole image to network input (``x * scale + shift``).

    2D with ``zscore``: the whole image's z-score (one map for every patch and window of it);
    otherwise the identity (volumes are fully normalised by :func:`normalise`).
    """
    if spec.ndim == 3 or spec.intensity_method not in ("zscore", "ct"):
        return 1.0, 0.0
    mean, sd = float(image.mean()), float(image.std())
    scale = 1.0 / sd if sd > 1e-8 else 1.0
    return scale, -mean * scale


def preprocess_case(
    image: np.ndarray,
    spacing: Sequence[float],
    spec: NativeSpec,
    mask: np.ndarray | None = None,
    num_classes: int = 2,
) -> tuple[np.ndarray, np.ndarray | None, CaseRecord]:
    """Crop, resample and normalise one case.

    Args:
        image: ``(C, *S)`` raw intensities (see :func:`channels_first`).
        spacing: The case's spacing, array-axis order.
        spec: What to do.
        mask: Optional label map ``(*S)``.
        num_classes: Classes of the mask (for label-preserving resampling).

    Returns:
        Image ``(C, *S')`` float32, mask ``(*S')`` uint8 (or None), the record to undo it.
    """
    shape = tuple(int(s) for s in image.shape[1:])
    box = (
        nonzero_bbox(image).slices
        if spec.crop_nonzero and spec.ndim == 3
        else tuple(slice(0, s) for s in shape)
    )
    bbox = tuple((int(b.start), int(b.stop)) for b in box)
    img = crop(image, box)
    m = crop(mask, box) if mask is not None else None
    sp = tuple(float(s) for s in spacing)
    new_shape = tuple(img.shape[1:])
    if spec.ndim == 3 and spec.target_spacing is not None:
        new_shape = target_shape(img.shape[1:], sp, spec.target_spacing)
    img = normalise(img, spec)
    if new_shape != tuple(img.shape[1:]):
        img = resample_image(img, new_shape, spacing=sp)
        if m is not None:  # ignored pixels (IGNORE_INDEX) are resampled as one more class
            ignored = m == IGNORE_INDEX
            k = num_classes + int(bool(ignored.any()))
            m = resample_mask(np.where(ignored, num_classes, m), new_shape, k, spacing=sp)
            if k > num_classes:
                m[m == num_classes] = IGNORE_INDEX
    record = CaseRecord(shape, bbox, tuple(int(s) for s in new_shape), sp, intensity_map(img, spec))
    return img.astype(np.float32), None if m is None else m.astype(np.uint8), record


def restore_probabilities(probs: np.ndarray, record: CaseRecord) -> np.ndarray:
    """Probabilities on the prepared grid -> on the case's original grid (undo resample and crop).

    Shape:
        probs (K, *resampled_shape) -> (K, *original_shape) float32
    """
    cropped_shape = tuple(b - a for a, b in record.bbox)
    out = probs
    if tuple(out.shape[1:]) != cropped_shape:
        target_sp = tuple(
            s * r / c for s, r, c in zip(record.spacing, cropped_shape, record.resampled_shape, strict=True)
        )
        out = resample_probabilities(out, cropped_shape, spacing=target_sp)
    if cropped_shape != record.original_shape:
        out = paste_probabilities(out, record.slices, record.original_shape)
    return np.asarray(out, dtype=np.float32)


def median_target_spacing(fingerprint: Mapping[str, Any]) -> tuple[tuple[float, ...], str]:
    """The dataset's median spacing, with nnU-Net's exception for anisotropic data, and why.

    Anisotropic means the coarsest median spacing is more than :data:`ANISOTROPY_THRESHOLD` times the
    finest and that axis also holds fewer than 1/threshold of the voxels of every other axis (thick
    slices, few of them). Then the coarse axis takes the 10th percentile of its spacings (no finer
    than the other axes): the median would throw away slices of the finer-sliced cases.
    """
    sp = fingerprint["spacing"]
    median = [float(s) for s in sp["median"]]
    shape = [float(s) for s in fingerprint["shape"]["median"]]
    coarse = int(np.argmax(median))
    others = [i for i in range(len(median)) if i != coarse]
    spaced = median[coarse] > ANISOTROPY_THRESHOLD * min(median)
    few = all(shape[coarse] * ANISOTROPY_THRESHOLD < shape[i] for i in others)
    shown = " x ".join(f"{s:g}" for s in median)
    if not (spaced and few):
        return tuple(median), f"the median spacing ({shown} mm)"
    target = max(float(sp["p10"][coarse]), max(median[i] for i in others))
    median[coarse] = target
    return tuple(median), (
        f"anisotropic (axis {coarse}: {float(sp['median'][coarse]):g} mm, over {ANISOTROPY_THRESHOLD:g}x the "
        f"finest, and < 1/{ANISOTROPY_THRESHOLD:g} of the voxels): the median in-plane, the 10th percentile "
        f"({target:g} mm) along axis {coarse}"
    )


def resolve_target_spacing(
    setting: str | Sequence[float] | None, fingerprint: Mapping[str, Any]
) -> tuple[float, ...] | None:
    """``preprocess.target_spacing`` -> spacing (array-axis order), or None to keep each case's own.

    ``"median"``: :func:`median_target_spacing`.
    """
    if setting is None:
        return None
    if setting != "median":
        return tuple(float(s) for s in setting)
    return median_target_spacing(fingerprint)[0]


def native_spec_from_params(params: Params, fingerprint: Mapping[str, Any]) -> NativeSpec:
    """The native spec the ``preprocess`` params describe, resolved against the dataset fingerprint.

    Only preprocessing settings: the window (patch size, slice axis) is training's and is added by
    :func:`with_training_window`, so changing ``train.patch_size`` does not re-run preprocess.

    Raises:
        ValueError: A setting that does not fit the data (names the params key).
    """
    pp = params.preprocess
    ndim = int(fingerprint["ndim"])
    target = resolve_target_spacing(pp.target_spacing, fingerprint) if ndim == 3 else None
    if target is not None and len(target) != 3:
        raise ValueError(f"preprocess.target_spacing {list(target)}: volumes need 3 values (z, y, x) in mm")
    if pp.intensity.method == "ct" and ndim == 2:
        raise ValueError("preprocess.intensity.method 'ct' applies to CT volumes; for 2D use ct_window")
    stats = None
    if pp.intensity.method == "ct":
        stats = tuple(
            {k: float(s[k]) for k in ("p0_5", "p99_5", "mean", "sd")} for s in fingerprint["intensity"]
        )
    return NativeSpec(
        ndim=ndim,
        channels=params.data.channels if ndim == 2 else int(fingerprint["channels"]),
        intensity_method=pp.intensity.method,
        intensity_kwargs=dict(pp.intensity.kwargs),
        target_spacing=target,
        crop_nonzero=pp.crop_nonzero,
        intensity_stats=stats,
        clahe=(pp.clahe.clip_limit, pp.clahe.tile_grid) if pp.clahe and ndim == 2 else None,
    )


def with_training_window(spec: NativeSpec, params: Params, fingerprint: Mapping[str, Any]) -> NativeSpec:
    """``spec`` plus the training window: ``train.patch_size`` and, for a 2D patch on volumes, the
    slice axis (``preprocess.slice_axis``; ``coarsest`` from the fingerprint). Checkpoints carry it.

    Raises:
        ValueError: A patch that does not fit the data.
    """
    patch = tuple(int(p) for p in params.train.patch_size or ())
    if spec.ndim == 2 and len(patch) != 2:
        raise ValueError(f"train.patch_size {list(patch)}: the dataset holds 2D images, give 2 ints (H, W)")
    slice_axis = None
    if spec.ndim == 3 and len(patch) == 2:
        axis = params.preprocess.slice_axis
        slice_axis = int(fingerprint["coarsest_axis"]) if axis == "coarsest" else int(axis)
    return replace(spec, patch_size=patch, slice_axis=slice_axis)
