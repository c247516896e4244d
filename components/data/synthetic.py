"""Deterministic synthetic "abdominal slice" phantoms with class-index masks.

Each case is a 2D slice: a body ellipse, two organs of different mean intensity and shape
(``organ_a``: a large lobed ellipse, brighter than the body; ``organ_b``: a darker bean shape,
absent in some slices), 0-3 lesions inside ``organ_a`` (hypo- or hyper-intense, varying size;
about a third of the cases have none), an unlabelled bright "spine" distractor, a smooth
multiplicative bias field, slight blur and Gaussian noise.

Cases of one patient share the patient's anatomy (body shape, organ layout, intensities) and
differ by per-slice jitter, like slices of one scan, so patient grouping in the splits matters.
Every case draws from its own ``SeedSequence`` derived from ``(seed, index)``: a case's content
depends only on the seed, its index and its patient, and two runs write byte-identical files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from components.data.dataset_json import DATASET_JSON, dataset_json_text
from components.data.staging import patient_count, staged_dataset, write_cases_csv

CLASS_NAMES: tuple[str, ...] = ("background", "organ_a", "organ_b", "lesion")

_DTYPES: dict[str, type[np.unsignedinteger]] = {"uint8": np.uint8, "uint16": np.uint16}
_P_NO_LESION = 0.33
_P_NO_ORGAN_B = 0.12


@dataclass(frozen=True)
class _Anatomy:
    """Per-patient layout; lengths are fractions of the image size, intensities in [0, 1]."""

    body_axes: tuple[float, float]  # (semi-axis y, semi-axis x)
    body_center: tuple[float, float]
    organ_a_offset: tuple[float, float]  # relative to the body centre, in body semi-axes
    organ_a_axes: tuple[float, float]
    organ_a_angle: float
    organ_a_wobble: np.ndarray  # (3, 2) amplitude, phase of harmonics k = 2..4
    organ_b_offset: tuple[float, float]
    organ_b_radius: float
    organ_b_angle: float
    i_body: float
    i_organ_a: float
    i_organ_b: float


def _patient_anatomy(rng: np.random.Generator) -> _Anatomy:
    i_body = rng.uniform(0.36, 0.44)
    return _Anatomy(
        body_axes=(rng.uniform(0.30, 0.38), rng.uniform(0.40, 0.46)),
        body_center=(0.5 + rng.uniform(-0.03, 0.03), 0.5 + rng.uniform(-0.03, 0.03)),
        organ_a_offset=(rng.uniform(-0.25, 0.05), rng.uniform(-0.55, -0.35)),
        organ_a_axes=(rng.uniform(0.13, 0.18), rng.uniform(0.17, 0.23)),
        organ_a_angle=rng.uniform(-0.6, 0.6),
        organ_a_wobble=np.stack([rng.uniform(0.0, 0.08, 3), rng.uniform(0, 2 * np.pi, 3)], axis=1),
        organ_b_offset=(rng.uniform(-0.1, 0.3), rng.uniform(0.35, 0.55)),
        organ_b_radius=rng.uniform(0.075, 0.10),
        organ_b_angle=rng.uniform(-0.8, 0.8),
        i_body=i_body,
        i_organ_a=i_body + rng.uniform(0.20, 0.28),
        i_organ_b=i_body - rng.uniform(0.14, 0.20),
    )


def _polar(yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, ay: float, ax: float, angle: float):
    """Normalised elliptical radius and angle of every pixel around ``(cy, cx)``."""
    dy, dx = yy - cy, xx - cx
    c, s = np.cos(angle), np.sin(angle)
    u = (dx * c + dy * s) / ax
    v = (-dx * s + dy * c) / ay
    return np.hypot(u, v), np.arctan2(v, u)


def _render_case(anatomy: _Anatomy, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One slice: float image in [0, 1] and uint8 class-index mask, both ``(size, size)``."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    s = float(size)
    jit = rng.uniform  # shorthand: jit(lo, hi) draws one uniform number
    scale = jit(0.93, 1.07)

    # Body: slightly wobbly ellipse.
    bay, bax = (a * s * scale for a in anatomy.body_axes)
    bcy = (anatomy.body_center[0] + jit(-0.02, 0.02)) * s
    bcx = (anatomy.body_center[1] + jit(-0.02, 0.02)) * s
    r, t = _polar(yy, xx, bcy, bcx, bay, bax, jit(-0.08, 0.08))
    body = r <= 1.0 + 0.03 * np.cos(2 * t + jit(0, 2 * np.pi))

    # Organ A: large rotated ellipse with lobes (harmonic wobble of its outline).
    acy = bcy + (anatomy.organ_a_offset[0] + jit(-0.05, 0.05)) * bay
    acx = bcx + (anatomy.organ_a_offset[1] + jit(-0.05, 0.05)) * bax
    aay, aax = (a * s * scale * jit(0.9, 1.1) for a in anatomy.organ_a_axes)
    r, t = _polar(yy, xx, acy, acx, aay, aax, anatomy.organ_a_angle + jit(-0.15, 0.15))
    outline = 1.0 + sum(
        amp * np.cos(k * t + ph) for k, (amp, ph) in zip((2, 3, 4), anatomy.organ_a_wobble, strict=True)
    )
    organ_a = (r <= outline) & body

    # Organ B: bean = disc-like ellipse minus an off-centre notch; absent in some slices.
    organ_b = np.zeros_like(body)
    if rng.random() >= _P_NO_ORGAN_B:
        rad = anatomy.organ_b_radius * s * scale * jit(0.85, 1.1)
        bcy2 = bcy + (anatomy.organ_b_offset[0] + jit(-0.05, 0.05)) * bay
        bcx2 = bcx + (anatomy.organ_b_offset[1] + jit(-0.05, 0.05)) * bax
        ang = anatomy.organ_b_angle + jit(-0.2, 0.2)
        r, _ = _polar(yy, xx, bcy2, bcx2, rad * 1.35, rad, ang)
        ny, nx = bcy2 - 0.9 * rad * np.sin(ang), bcx2 - 0.9 * rad * np.cos(ang)
        notch = np.hypot(yy - ny, xx - nx) <= 0.5 * rad
        organ_b = (r <= 1.0) & ~notch & body & ~organ_a

    # Lesions: 0-3 irregular blobs centred on organ A pixels, clipped to organ A.
    lesion = np.zeros_like(body)
    lesion_int = np.zeros((size, size))
    n_lesions = 0 if rng.random() < _P_NO_LESION else int(rng.integers(1, 4))
    candidates = np.flatnonzero(organ_a)
    for _ in range(n_lesions if candidates.size else 0):
        idx = candidates[rng.integers(candidates.size)]
        rad = s * jit(0.025, 0.07)
        r, t = _polar(yy, xx, idx // size + 0.5, idx % size + 0.5, rad * jit(0.8, 1.2), rad, jit(0, np.pi))
        blob = (r <= 1.0 + 0.12 * np.cos(3 * t + jit(0, 2 * np.pi))) & organ_a & ~lesion
        if blob.sum() < 3:
            continue
        delta = -jit(0.18, 0.30) if rng.random() < 0.7 else jit(0.15, 0.22)
        lesion |= blob
        lesion_int[blob] = anatomy.i_organ_a + delta

    # Unlabelled distractor: bright "spine" disc at the back of the body.
    spine = np.hypot(yy - (bcy + 0.72 * bay), xx - bcx) <= 0.06 * s * scale

    img = np.full((size, size), 0.03)
    img[body] = anatomy.i_body + jit(-0.02, 0.02)
    img[spine & body] = jit(0.8, 0.9)
    img[organ_a] = anatomy.i_organ_a + jit(-0.03, 0.03)
    img[organ_b] = anatomy.i_organ_b + jit(-0.03, 0.03)
    img[lesion] = lesion_int[lesion]
    img = cv2.GaussianBlur(img, (0, 0), sigmaX=0.7)

    # Smooth multiplicative bias field (about +-12 %) and noise.
    ny_, nx_ = yy / s * 2 - 1, xx / s * 2 - 1
    c = rng.uniform(-1, 1, 4) * np.array([0.06, 0.06, 0.03, 0.03])
    img = img * (1 + c[0] * nx_ + c[1] * ny_ + c[2] * nx_ * ny_ + c[3] * (nx_**2 - ny_**2))
    img = img + rng.normal(0.0, jit(0.02, 0.045), img.shape)

    mask = np.zeros((size, size), np.uint8)
    mask[organ_a] = 1
    mask[organ_b] = 2
    mask[lesion] = 3
    return np.clip(img, 0.0, 1.0), mask


def _png_bytes(arr: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", arr)
    if not ok:
        raise RuntimeError(f"PNG encoding failed for an array of shape {arr.shape} and dtype {arr.dtype}")
    return buf.tobytes()


def _is_replaceable(out_dir: Path) -> bool:
    """An existing output may be replaced when it is empty or looks like an earlier phantom set."""
    return not any(out_dir.iterdir()) or (out_dir / "cases.csv").is_file()


def generate_phantoms(
    out_dir: Path,
    n_cases: int = 60,
    size: int = 96,
    seed: int = 0,
    n_patients: int | None = None,
    dtype: str = "uint8",
) -> Path:
    """Write a synthetic segmentation dataset (deterministic for a seed).

    Layout: ``out_dir/images/case_XXX.png`` (grayscale, 8-bit or 16-bit), ``out_dir/masks/case_XXX.png``
    (uint8 class indices, see :data:`CLASS_NAMES`), ``out_dir/cases.csv`` (``case_id,patient_id``) and
    ``out_dir/dataset.json`` (nnU-Net v2's form: the classes, one channel ``gray``, numTraining, ``.png``),
    so that the phantoms describe themselves as a user's dataset does.
    The dataset is written to a temporary sibling folder and renamed into place, so a half-written
    dataset never appears; an existing ``out_dir`` from an earlier run (it has a ``cases.csv``) or an
    empty one is replaced.

    Args:
        out_dir: Destination folder.
        n_cases: Number of cases (>= 1).
        size: Image side length in pixels (>= 32).
        seed: Seed; the same arguments give byte-identical files.
        n_patients: Number of patients (1..n_cases); cases are split into contiguous blocks, one per
            patient. None gives one case per patient.
        dtype: ``"uint8"`` or ``"uint16"`` (16-bit PNG using the full 0..65535 range).

    Returns:
        ``out_dir``.

    Raises:
        ValueError: A bad argument.
        FileExistsError: ``out_dir`` exists, is not empty and is not an earlier phantom dataset.
    """
    out_dir = Path(out_dir)
    if n_cases < 1:
        raise ValueError(f"n_cases must be >= 1, got {n_cases}")
    if size < 32:
        raise ValueError(f"size must be >= 32 pixels, got {size}")
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    n_pat = patient_count(n_cases, n_patients)
    if out_dir.exists() and not (out_dir.is_dir() and _is_replaceable(out_dir)):
        raise FileExistsError(
            f"{out_dir}: exists and is not an earlier phantom dataset (no cases.csv); refusing to replace it"
        )

    width = max(3, len(str(n_cases - 1)))
    pwidth = max(3, len(str(n_pat - 1)))
    max_val = float(np.iinfo(_DTYPES[dtype]).max)
    with staged_dataset(out_dir) as tmp:
        anatomies: dict[int, _Anatomy] = {}
        rows = []
        for i in range(n_cases):
            p = i * n_pat // n_cases
            if p not in anatomies:
                anatomies[p] = _patient_anatomy(np.random.default_rng([seed, 1, p]))
            img, mask = _render_case(anatomies[p], np.random.default_rng([seed, 2, i]), size)
            case_id = f"case_{i:0{width}d}"
            pixels = np.round(img * max_val).astype(_DTYPES[dtype])
            (tmp / "images" / f"{case_id}.png").write_bytes(_png_bytes(pixels))
            (tmp / "masks" / f"{case_id}.png").write_bytes(_png_bytes(mask))
            rows.append((case_id, f"patient_{p:0{pwidth}d}"))
        write_cases_csv(tmp / "cases.csv", rows)
        classes = {name: v for v, name in enumerate(CLASS_NAMES)}
        (tmp / DATASET_JSON).write_text(dataset_json_text(classes, ["gray"], n_cases, ".png", "synthetic"))
    return out_dir
