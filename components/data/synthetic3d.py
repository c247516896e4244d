"""Deterministic synthetic 3D phantoms (NIfTI) with class-index masks: tubes and blobs.

Each case is an anisotropic volume (coarse axis 0) holding a curved tube (class ``tube``: a bent
cylinder of a few mm radius running through the volume along axis 0, like a vessel) and one or two
ellipsoids (class ``blob``) in a noisy background with a smooth multiplicative bias field. Shapes are
defined in millimetres and rasterised on the voxel grid, so a sphere in mm is an ellipsoid in voxels.
The stored geometry has a non-trivial origin and a direction with a flipped y axis, so readers and
resamplers that ignore geometry show up in the tests downstream. Volume shapes vary by up to
``±2`` voxels per axis around the requested shape, to exercise variable input sizes.

With ``n_channels > 1`` the images follow the nnU-Net multi-channel convention
(``<case>_0000.nii.gz``, ``<case>_0001.nii.gz``, ...): channel 1 is a differently contrasted copy of
the same anatomy (tube dark, blob bright, like a second MR sequence), further channels draw their
own contrasts. Cases of one patient share the patient's anatomy (tube course, blob layout, contrasts)
and differ by per-scan jitter. Every case draws from its own ``SeedSequence`` derived from
``(seed, index)``, so a case depends only on the seed, its index and its patient.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from components.data.dataset_json import DATASET_JSON, dataset_json_text
from components.data.staging import patient_count, staged_dataset, write_cases_csv
from components.io.volumes import Geometry, write_volume

CLASSES_3D: dict[str, int] = {"background": 0, "tube": 1, "blob": 2}

SHAPE_JITTER = 2  # voxels, per axis and per case
_MIN_SHAPE = 12  # voxels per axis before jitter
# ITK direction (x, y, z), row by row: the y axis is flipped (determinant -1).
_DIRECTION = (1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
_ORIGIN_RANGE = ((-150.0, 50.0, -400.0), (-100.0, 100.0, -300.0))  # mm, ITK order (x, y, z)
# Mean intensity of (background, tube, blob) for channels 0 and 1; further channels draw their own.
_CONTRASTS = ((0.35, 0.80, 0.12), (0.50, 0.22, 0.88))
_OUTPUTS = frozenset({"images", "masks", "cases.csv", DATASET_JSON})


@dataclass(frozen=True)
class _Anatomy:
    """Per-patient layout; positions are fractions of the volume extent, lengths in mm."""

    tube_center: tuple[float, float]  # (y, x) where the tube crosses mid-volume
    tube_bend: np.ndarray  # (2, 2): amplitude (fraction of extent) and phase of the y / x bends
    tube_waves: float  # number of half-waves of the bend over the volume
    tube_radius: float
    n_blobs: int
    blob_centers: np.ndarray  # (n_blobs, 3) fractions (z, y, x)
    blob_axes: np.ndarray  # (n_blobs, 3) semi-axes in mm (z, y, x)
    contrasts: np.ndarray  # (n_channels, 3) mean intensity of background, tube, blob


def _patient_anatomy(rng: np.random.Generator, n_channels: int) -> _Anatomy:
    n_blobs = int(rng.integers(1, 3))
    extra = rng.uniform(0.1, 0.9, (max(0, n_channels - len(_CONTRASTS)), 3))
    return _Anatomy(
        tube_center=(rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.6)),
        tube_bend=np.stack([rng.uniform(0.08, 0.18, 2), rng.uniform(0, 2 * np.pi, 2)], axis=1),
        tube_waves=rng.uniform(0.8, 1.6),
        tube_radius=rng.uniform(2.5, 4.0),
        n_blobs=n_blobs,
        blob_centers=rng.uniform(0.3, 0.7, (n_blobs, 3)),
        blob_axes=rng.uniform(4.5, 8.0, (n_blobs, 3)),
        contrasts=np.concatenate([np.asarray(_CONTRASTS[:n_channels]), extra]),
    )


def _tube_distance(anatomy: _Anatomy, grid: np.ndarray, extent: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Distance in mm from every voxel centre to the tube's centreline (a polyline along axis 0).

    Shape:
        grid (3, Z, Y, X) voxel-centre positions in mm -> (Z, Y, X).
    """
    t = np.linspace(-0.1, 1.1, 160)
    phase = np.pi * anatomy.tube_waves * t
    (ay, py), (ax, px) = anatomy.tube_bend
    cy = (anatomy.tube_center[0] + shift[1] + ay * np.sin(phase + py)) * extent[1]
    cx = (anatomy.tube_center[1] + shift[2] + ax * np.sin(phase + px)) * extent[2]
    dist2 = np.full(grid.shape[1:], np.inf)
    for z, y, x in zip(t * extent[0], cy, cx, strict=True):
        np.minimum(dist2, (grid[0] - z) ** 2 + (grid[1] - y) ** 2 + (grid[2] - x) ** 2, out=dist2)
    return np.sqrt(dist2)


def _render_case(
    anatomy: _Anatomy, rng: np.random.Generator, shape: tuple[int, ...], spacing: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One volume: float images ``(n_channels, Z, Y, X)`` and the uint8 mask ``(Z, Y, X)``."""
    grid = (np.indices(shape, dtype=np.float64) + 0.5) * spacing[:, None, None, None]  # mm
    extent = np.asarray(shape) * spacing
    shift = rng.uniform(-0.04, 0.04, 3)

    mask = np.zeros(shape, np.uint8)
    tube_dist = _tube_distance(anatomy, grid, extent, shift)
    tube = tube_dist <= anatomy.tube_radius * rng.uniform(0.9, 1.1)
    tube |= tube_dist <= tube_dist.min(axis=(1, 2), keepdims=True)  # >= 1 voxel per slice on coarse grids
    mask[tube] = CLASSES_3D["tube"]

    for center, axes in zip(anatomy.blob_centers, anatomy.blob_axes, strict=True):
        c = (center + shift + rng.uniform(-0.03, 0.03, 3)) * extent
        ang = rng.uniform(0, np.pi)  # rotation in the (y, x) plane
        dy, dx = grid[1] - c[1], grid[2] - c[2]
        u, v = dy * np.cos(ang) + dx * np.sin(ang), -dy * np.sin(ang) + dx * np.cos(ang)
        a = axes * rng.uniform(0.85, 1.15, 3)
        r2 = ((grid[0] - c[0]) / a[0]) ** 2 + (u / a[1]) ** 2 + (v / a[2]) ** 2
        blob = r2 <= r2.min() if r2.min() > 1.0 else r2 <= 1.0  # >= 1 voxel on coarse grids
        mask[blob] = CLASSES_3D["blob"]  # blobs lie over the tube where they meet

    # Partial-volume blur of about 0.6 mm, a smooth bias field (about ±10 %) and noise, per channel.
    sigma = 0.6 / spacing
    norm = grid / extent[:, None, None, None] * 2 - 1
    images = []
    for means in anatomy.contrasts:
        img = ndimage.gaussian_filter((means + rng.uniform(-0.03, 0.03, 3))[mask], sigma)
        coef = rng.uniform(-0.05, 0.05, 3)
        img = img * (1 + np.tensordot(coef, norm, axes=1))
        images.append(img + rng.normal(0.0, rng.uniform(0.03, 0.05), shape))
    return np.clip(np.stack(images), 0.0, 1.0), mask


def _is_replaceable(out_dir: Path) -> bool:
    """An existing folder may be replaced when it only holds what this generator writes."""
    return {p.name for p in out_dir.iterdir()} <= _OUTPUTS


def generate_volumes(
    out_dir: Path,
    n_cases: int = 12,
    shape: tuple[int, int, int] = (20, 48, 48),
    spacing: tuple[float, float, float] = (3.0, 0.8, 0.8),
    seed: int = 0,
    n_channels: int = 1,
    n_patients: int | None = None,
) -> list[str]:
    """Write a synthetic 3D segmentation dataset as NIfTI (deterministic for a seed).

    Layout: ``out_dir/images/case_XXX.nii.gz`` (int16, intensities 0..1000; with ``n_channels > 1``
    ``case_XXX_0000.nii.gz``, ``case_XXX_0001.nii.gz``, ...), ``out_dir/masks/case_XXX.nii.gz``
    (uint8 class indices, see :data:`CLASSES_3D`) and, when ``n_patients`` is given,
    ``out_dir/cases.csv`` (``case_id,patient_id``); always ``out_dir/dataset.json`` (nnU-Net v2's form:
    the classes, channels ``MR`` or ``MR_0``, ``MR_1``, ..., numTraining, ``.nii.gz``), so that the
    phantoms describe themselves as a user's dataset does. The dataset is written to a temporary sibling
    folder and renamed into place; an existing ``out_dir`` is replaced only when it is empty or holds
    nothing but such outputs.

    Args:
        out_dir: Destination folder.
        n_cases: Number of cases (>= 1).
        shape: Nominal volume shape ``(Z, Y, X)`` in voxels (each >= 12); every case varies by up to
            :data:`SHAPE_JITTER` voxels per axis.
        spacing: Voxel size in mm, array-axis order ``(Z, Y, X)`` (each > 0).
        seed: Seed; the same arguments give identical volumes.
        n_channels: Image channels per case (>= 1).
        n_patients: Number of patients (1..n_cases); cases are split into contiguous blocks, one per
            patient. None: one case per patient and no ``cases.csv``.

    Returns:
        The case ids, in order.

    Raises:
        ValueError: A bad argument.
        FileExistsError: ``out_dir`` exists and holds something other than an earlier dataset.
    """
    out_dir = Path(out_dir)
    if n_cases < 1:
        raise ValueError(f"n_cases must be >= 1, got {n_cases}")
    if len(shape) != 3 or min(shape) < _MIN_SHAPE:
        raise ValueError(f"shape must be 3 sizes (Z, Y, X), each >= {_MIN_SHAPE} voxels, got {shape}")
    if len(spacing) != 3 or min(spacing) <= 0:
        raise ValueError(f"spacing must be 3 positive sizes in mm (Z, Y, X), got {spacing}")
    if n_channels < 1:
        raise ValueError(f"n_channels must be >= 1, got {n_channels}")
    n_pat = patient_count(n_cases, n_patients)
    if out_dir.exists() and not (out_dir.is_dir() and _is_replaceable(out_dir)):
        raise FileExistsError(
            f"{out_dir}: exists and holds more than images/, masks/, cases.csv and dataset.json; refusing "
            "to replace it"
        )

    width = max(3, len(str(n_cases - 1)))
    pwidth = max(3, len(str(n_pat - 1)))
    sp = np.asarray(spacing, dtype=np.float64)
    with staged_dataset(out_dir) as tmp:
        anatomies: dict[int, _Anatomy] = {}
        rows = []
        for i in range(n_cases):
            p = i * n_pat // n_cases
            if p not in anatomies:
                anatomies[p] = _patient_anatomy(np.random.default_rng([seed, 1, p]), n_channels)
            rng = np.random.default_rng([seed, 2, i])
            case_shape = tuple(int(s + rng.integers(-SHAPE_JITTER, SHAPE_JITTER + 1)) for s in shape)
            images, mask = _render_case(anatomies[p], rng, case_shape, sp)
            origin = tuple(float(o) for o in np.round(rng.uniform(*_ORIGIN_RANGE), 1))
            geometry = Geometry(tuple(float(s) for s in sp), origin, _DIRECTION)
            case_id = f"case_{i:0{width}d}"
            for c, img in enumerate(images):
                name = f"{case_id}_{c:04d}" if n_channels > 1 else case_id
                write_volume(
                    tmp / "images" / f"{name}.nii.gz", np.round(img * 1000).astype(np.int16), geometry
                )
            write_volume(tmp / "masks" / f"{case_id}.nii.gz", mask, geometry)
            rows.append((case_id, f"patient_{p:0{pwidth}d}"))
        if n_patients is not None:
            write_cases_csv(tmp / "cases.csv", rows)
        names = ["MR"] if n_channels == 1 else [f"MR_{c}" for c in range(n_channels)]
        (tmp / DATASET_JSON).write_text(
            dataset_json_text(CLASSES_3D, names, n_cases, ".nii.gz", "synthetic-3d")
        )
    return [case_id for case_id, _ in rows]
