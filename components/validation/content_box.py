"""Where an image's content is: the frame a copy may sit in, cut off (``content``).

A copy may sit in another frame than its original: a photo letterboxed into a square (a black
band below it), a volume padded with zero planes, a frame whose photo was flipped *inside* it (so
no symmetry of the whole frame maps it onto the original). The **content box** is what is left when
the flat slabs (rows, columns; planes of a volume) at each border are cut off. A frame starts only
at a border slab that is written, not imaged (:data:`PADDING_SHARE` of its pixels within
:data:`PADDING_TOLERANCE` of the image's range from its median: a noisy dark background never
starts one), and runs inwards while slabs stay at that value (:data:`FLAT_SHARE` within
:data:`FLAT_TOLERANCE`: JPEG ringing next to the content is still frame). Flatness is a share of a
slab, so it is judged within the box along the other axes (found again until it holds still): how
much frame the other axes have does not move a cut. The rule looks at slabs, never at the order of
pixels in one, so it commutes with every flip, rotation and transposition of the content: a copy
turned inside its frame gets the turned box. It is decided on a small copy (:data:`WORK_SIDE` per
axis, area-averaged), each cut then refined at full resolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

WORK_SIDE: dict[int, int] = {2: 128, 3: 32}  # content boxes are found on a copy this size (at most)
FLAT_TOLERANCE: float = 0.04  # of the work image's intensity range: what counts as one value
FLAT_SHARE: float = 0.95  # a border slab is flat when this share of its pixels is within tolerance
# a frame starts only at a border slab this flat (padding is written, not imaged: a noisy dark
# background, or one that a copy's resampling smoothed, never starts one)
PADDING_TOLERANCE: float = 0.01
PADDING_SHARE: float = 0.99
BOX_ROUNDS: int = 3  # the box is found again within itself at most this often
_CV_ROWS = 16384  # rows per cv2.resize call (its images are at most 32767 pixels a side)

Box = tuple[tuple[float, float], ...]  # per spatial axis: (start, stop) as fractions of its length


def _area_last(x: np.ndarray, m: int) -> np.ndarray:
    """Area resampling along the last axis to ``m`` samples: cv2 on the rows (the other axes
    flattened, so nothing else is resampled), in chunks of the rows cv2 takes at once."""
    rows = x.reshape(-1, x.shape[-1])
    out = [
        cv2.resize(
            np.ascontiguousarray(rows[r : r + _CV_ROWS]),
            (m, len(rows[r : r + _CV_ROWS])),
            interpolation=cv2.INTER_AREA,
        )
        for r in range(0, len(rows), _CV_ROWS)
    ]
    return np.concatenate(out).reshape(*x.shape[:-1], m)


def resize(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Area resize of the trailing ``len(shape)`` axes of ``x`` to ``shape`` (leading axes kept);
    float32, or uint8 kept as uint8 (rounded averages).

    A single image: cv2's area interpolation. Otherwise the same, one axis at a time.
    """
    if x.ndim == 2:
        return cv2.resize(x, (shape[1], shape[0]), interpolation=cv2.INTER_AREA).reshape(shape)
    out, lead = x, x.ndim - len(shape)
    for k in reversed(range(len(shape))):  # each axis moved last, resampled, moved back
        axis = lead + k
        if out.shape[axis] != shape[k]:
            out = np.moveaxis(_area_last(np.moveaxis(out, axis, -1), shape[k]), -1, axis)
    return np.ascontiguousarray(out)


def gray_of(image: np.ndarray) -> np.ndarray:
    """Channel mean as float32, non-finite values as 0. Shape: ``(C, *S)`` -> ``S``."""
    x = np.asarray(image)
    if x.dtype.kind not in "uib":
        x = np.nan_to_num(x.astype(np.float32, copy=False), nan=0.0, posinf=0.0, neginf=0.0)
    return x.mean(axis=0, dtype=np.float32) if x.shape[0] > 1 else x[0].astype(np.float32, copy=False)


def _flat_runs(x: np.ndarray, axis: int, tolerance: float) -> tuple[int, int, list[float]]:
    """How many flat slabs lie at the start and at the end of ``axis``, and their outermost values."""
    slabs = np.moveaxis(x, axis, 0).reshape(x.shape[axis], -1)
    ends = slabs[[0, -1]]
    ends_med = np.median(ends, axis=1, keepdims=True)
    strict = tolerance * PADDING_TOLERANCE / FLAT_TOLERANCE
    starts = (np.abs(ends - ends_med) <= strict).mean(axis=1) >= PADDING_SHARE
    if not starts.any():
        return 0, 0, []  # the usual case, decided on two slabs
    med = np.median(slabs, axis=1)
    runs = []
    for end, start in zip((0, -1), starts, strict=True):  # slabs flat at the value of the outermost
        flat = (np.abs(slabs - med[end]) <= tolerance).mean(axis=1) >= FLAT_SHARE
        flat = flat if end == 0 else flat[::-1]
        runs.append(0 if not start else len(flat) if flat.all() else int(np.argmin(flat)))
    if runs[0] + runs[1] >= len(med):  # all flat: no frame to cut
        return 0, 0, []
    return runs[0], runs[1], [float(med[0])] * bool(runs[0]) + [float(med[-1])] * bool(runs[1])


def _ends_flat(x: np.ndarray, axis: int, tolerance: float) -> bool:
    """Whether the first or the last slab along ``axis`` is mostly (90 %) within ``tolerance`` of
    its mean: the full-resolution pre-check, looser than the rule on the small copy (whose
    averaging quiets noise and JPEG ringing in a band) so that it never misses a frame."""
    for end in (0, -1):
        slab = np.take(x, end, axis=axis)
        if (np.abs(slab - slab.mean()) <= tolerance).mean() >= 0.9:
            return True
    return False


def _refine(
    gray: np.ndarray, axis: int, box: list[tuple[float, float]], values: list[float], tolerance: float
) -> tuple[float, float]:
    """The box along ``axis`` at full resolution. A work pixel where the frame meets the content is
    a blend of both, so up to two work pixels' worth of full-resolution slabs next to each cut are
    cut too while they are flat at the frame's value (within the box along the other axes).
    Returns ``(start, stop)`` as fractions."""
    n, (lo, hi) = gray.shape[axis], box[axis]
    start, stop = int(np.floor(lo * n + 1e-6)), int(np.ceil(hi * n - 1e-6))
    region = cut(gray, [(0.0, 1.0) if a == axis else b for a, b in enumerate(box)])
    reach = 2 * int(np.ceil(n / min(n, WORK_SIDE[gray.ndim])))
    it = iter(values)
    for side, trimmed in ((0, lo > 0), (1, hi < 1)):
        if not trimmed:
            continue
        value = next(it)
        for _ in range(reach):
            if stop - start <= 1:
                break
            slab = np.take(region, start if side == 0 else stop - 1, axis=axis)
            if (np.abs(slab - value) <= tolerance).mean() < FLAT_SHARE:
                break
            start, stop = (start + 1, stop) if side == 0 else (start, stop - 1)
    return start / n, stop / n


def find_content_box(gray: np.ndarray) -> Box:
    """The box left when the flat slabs at every border are cut off (module docstring).

    Flatness is a share of a slab's pixels, so it is judged within the box along the other axes
    (found again until it holds still, at most :data:`BOX_ROUNDS` times): how much frame the other
    axes have then does not change where an axis is cut.

    Args:
        gray: One channel, ``(H, W)`` or ``(Z, Y, X)``, float32.

    Returns:
        Per axis ``(start, stop)`` as fractions of its length; ``(0, 1)`` everywhere when no border
        is flat, and along an axis whose slabs are all flat (a constant image).
    """
    ndim = gray.ndim
    whole = [(0.0, 1.0)] * ndim
    loose = 3 * PADDING_TOLERANCE * float(gray.max() - gray.min())  # a cheap look at the outermost
    if not any(_ends_flat(gray, axis, loose) for axis in range(ndim)):  # slabs first: most images
        return tuple(whole)  # have no flat border
    work = resize(gray, tuple(min(n, WORK_SIDE[ndim]) for n in gray.shape))
    tolerance = FLAT_TOLERANCE * float(work.max() - work.min())
    if not tolerance > 0:
        return tuple(whole)
    box: list[tuple[float, float]] = list(whole)
    values: list[list[float]] = [[] for _ in range(ndim)]
    for _ in range(BOX_ROUNDS):
        new = []
        for axis in range(ndim):  # every axis from the same box: the same rule for rows and columns
            region = cut(work, [(0.0, 1.0) if a == axis else b for a, b in enumerate(box)])
            lo, hi, values[axis] = _flat_runs(region, axis, tolerance)
            n = work.shape[axis]
            new.append((lo / n, (n - hi) / n))
        if new == box:
            break
        box = new
    return tuple(_refine(gray, axis, box, values[axis], tolerance) for axis in range(ndim))


def cut(x: np.ndarray, box: Sequence[tuple[float, float]]) -> np.ndarray:
    """The part of ``x`` (spatial axes first) inside ``box``, at least one voxel per axis."""
    index = []
    for n, (lo, hi) in zip(x.shape, box, strict=False):
        start = min(int(np.floor(lo * n + 1e-6)), n - 1)
        index.append(slice(start, max(start + 1, int(np.ceil(hi * n - 1e-6)))))
    return x[tuple(index)]
