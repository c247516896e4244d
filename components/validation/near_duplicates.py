"""Near-duplicate cases: augmented copies of one image that byte hashes miss.

Datasets often ship a case twice: mirrored, rotated by 90/180/270, transposed, re-encoded as
JPEG, cropped by a few percent or rescaled, with brightness/contrast changed; copies in train and
test inflate the score. Each case is reduced once, while it is decoded, to a z-scored thumbnail
(:func:`image_thumbnail`: 64^2 for images, 16^3 for volumes); :func:`find_near_duplicates` then

0. removes what the whole set shares (:func:`remove_common_structure`: a circular field of view,
   a frame, an overlay; sets of ``MIN_CASES_FOR_COMMON`` cases or more), without which distinct
   fundus-like images with one field of view correlate at 0.98 and every pair is a candidate;
1. searches: coarse thumbnails (blurred, block means to 8^2 / 8^3) of every pair under every
   symmetry (the 8 of the square in 2D, the 8 axis flips in 3D), one blocked float32 matrix
   product, keeping the pairs at ``CANDIDATE_THRESHOLD`` or more (exact, no approximate index;
   10,000 images of 256^2: ~9 s on 2 busy CPU cores, ``bench/results/near_duplicates-*.json``);
2. scores each candidate: the symmetry is applied, a per-axis scale and shift is fitted
   (Gauss-Newton, coarse to fine: crops of ~5% per side, aspect changes), and the similarity is
   the correlation of the thumbnails' *detail* (thumbnail minus its blur) over the overlap.
   Plain correlation of small thumbnails is not enough: neighbouring slices of one CT scan
   correlate at 0.98 at 32^2, more than a slice with a 4% crop of itself. A candidate costs
   ~1.5 ms; sets whose cases all look alike at 8^2 (the synthetic phantoms: 60 cases, every pair
   a candidate) take seconds, and time grows with the square of their size.

Calibration of ``DEFAULT_THRESHOLD`` = 0.82: highest similarity of two distinct cases, every pair
scored (no search cut, no pruning): covid_ct_infnet 0.762 (neighbouring slices of one patient,
005/046; its one real copy, 010 and 043, one slice at two scales, scores 0.985), isbi2012_em
0.353 (consecutive sections), msd_hippocampus 0.672, synthetic phantoms of different patients
0.676 (2D) and 0.741 (3D; two cases of one 3D patient reach 0.875: 6 such pairs of the default
3D set are grouped, harmless as each is one patient). Lowest similarity of a true copy in the
generated sets: 0.881 (2D: JPEG q70, crops of 2-6% per side or 3-5% of one side, rescales,
intensity changes, any symmetry, on smooth synthetic, CT and EM images; 3D: 3-4% crops, flips
alone score 1.0). Missed: crops beyond ~5% per side of texture-only images (EM: 3 of 20 at 6%),
other rotation angles, images without structure at 64^2 (a constant image has a zero thumbnail
and matches nothing).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import cv2
import numpy as np

from components.validation.alignment import align, blur, detail_score, downsample, mask_dice

THUMB_SIDE_2D: int = 64
THUMB_SIDE_3D: int = 16
DEFAULT_THRESHOLD: float = 0.82
MIN_CASES_FOR_COMMON = 10  # sets this large have their shared structure removed first
# per number of spatial dims: the search compares block means of the blurred thumbnails
COARSE_SIDE: dict[int, int] = {2: 8, 3: 8}
COARSE_BLUR: dict[int, float] = {2: 2.0, 3: 0.0}  # Gaussian sigma, thumbnail pixels
CANDIDATE_THRESHOLD: dict[int, float] = {2: 0.75, 3: 0.85}  # coarse correlation to be scored
SYMMETRY_TOLERANCE: float = 0.05  # symmetries scored for a pair: within this of its best one
DETAIL_PRUNE: float = 0.15  # not refined at full resolution: score before it under threshold - this
DETAIL_SIGMA: dict[int, float] = {2: 1.0, 3: 0.7}  # the score correlates thumbnail - blur(sigma)
_NAMES_2D = ("identity", "flip_v", "flip_h", "rot180", "transpose", "rot90", "rot270", "anti_transpose")
_BLOCK_BYTES, _CHUNK = 64 * 2**20, 256


@dataclass(frozen=True)
class NearDuplicatePair:
    """Two cases whose thumbnails match under a symmetry (and a mild crop or rescale).

    Attributes:
        a: Case id, the smaller of the two (string order).
        b: The other case id.
        similarity: Correlation in ``[-1, 1]`` of the aligned thumbnails' detail.
        transform: The symmetry of ``b`` that matches ``a`` (``transform(b) ~ a``). 2D: ``identity,
            rot90`` (``np.rot90``), ``rot180, rot270, flip_h`` (left-right), ``flip_v, transpose,
            anti_transpose``; 3D: ``identity`` or ``flip_`` + the flipped axes (``flip_zx``).
        mask_dice: Mean foreground Dice of the mask thumbnails, ``b``'s moved like its image, over
            their overlap (``None`` without masks).
    """

    a: str
    b: str
    similarity: float
    transform: str
    mask_dice: float | None


@dataclass(frozen=True)
class _Symmetry:
    """``x -> flip(transpose(x, perm), flips)`` on the spatial axes of a batch ``(N, *S)``."""

    name: str
    perm: tuple[int, ...]
    flips: tuple[int, ...]

    def apply(self, batch: np.ndarray) -> np.ndarray:
        out = np.transpose(batch, (0, *(p + 1 for p in self.perm)))
        return np.flip(out, tuple(f + 1 for f in self.flips)) if self.flips else out


def _symmetries(ndim: int) -> list[_Symmetry]:
    """2D: the dihedral group of the square; 3D: the 8 combinations of axis flips."""
    flips = [f for k in range(ndim + 1) for f in itertools.combinations(range(ndim), k)]
    if ndim == 2:
        perms = [p for p in ((0, 1), (1, 0)) for _ in flips]
        return [_Symmetry(n, p, f) for n, p, f in zip(_NAMES_2D, perms, flips * 2, strict=True)]
    same = tuple(range(ndim))
    return [_Symmetry("flip_" + "".join("zyx"[a] for a in f) if f else "identity", same, f) for f in flips]


def _area(plane: np.ndarray, width: int, height: int) -> np.ndarray:
    """Area-interpolated resize of one plane (mean over a leading channel axis first, NaN/inf as 0)."""
    x = np.nan_to_num(plane.astype(np.float32, copy=False), nan=0.0, posinf=0.0, neginf=0.0)
    x = x.mean(axis=0, dtype=np.float32) if x.ndim == 3 else x
    return cv2.resize(x, (width, height), interpolation=cv2.INTER_AREA).reshape(height, width)


def image_thumbnail(image: np.ndarray) -> np.ndarray:
    """Reduce an image or volume to the z-scored thumbnail that near-duplicate search compares.

    The mean over channels is resized to a common side by area interpolation (volumes plane by
    plane, then along Z), so any size and aspect ratio compare; non-finite values count as 0.

    Args:
        image: Channels-first image ``(C, H, W)`` or volume ``(C, Z, Y, X)``, any dtype.

    Returns:
        float32, mean 0 and sd 1; all zeros for a constant image.

    Shape:
        ``(C, H, W)`` -> ``(THUMB_SIDE_2D,) * 2``; ``(C, Z, Y, X)`` -> ``(THUMB_SIDE_3D,) * 3``.

    Raises:
        ValueError: Not 3 or 4 dimensions, or an empty axis.
    """
    arr = np.asarray(image)
    if arr.ndim not in (3, 4) or 0 in arr.shape:
        raise ValueError(f"expected a (C, H, W) image or (C, Z, Y, X) volume, got shape {arr.shape}")
    if arr.ndim == 3:
        small = _area(arr, THUMB_SIDE_2D, THUMB_SIDE_2D)
    else:
        s = THUMB_SIDE_3D
        planes = np.stack([_area(arr[:, z], s, s).ravel() for z in range(arr.shape[1])])
        small = _area(planes, s * s, s).reshape(s, s, s)
    x = np.nan_to_num(small.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    sd = float(x.std())
    if not sd > 1e-6 * float(np.abs(x).max()):
        return np.zeros(x.shape, np.float32)
    return ((x - x.mean()) / sd).astype(np.float32)


def mask_thumbnail(mask: np.ndarray) -> np.ndarray:
    """Nearest-neighbour thumbnail of a class-index mask, on the grid of :func:`image_thumbnail`.

    Args:
        mask: ``(H, W)`` or ``(Z, Y, X)``; a leading channel axis of 1 is dropped (so a
            3-dimensional mask whose first axis is 1 is taken as ``(1, H, W)``).

    Returns:
        int32 class indices (non-finite values count as 0).

    Shape:
        ``(H, W)`` -> ``(THUMB_SIDE_2D,) * 2``; ``(Z, Y, X)`` -> ``(THUMB_SIDE_3D,) * 3``.

    Raises:
        ValueError: Not 2 or 3 spatial dimensions, or an empty axis.
    """
    arr = np.asarray(mask)
    arr = arr[0] if arr.ndim in (3, 4) and arr.shape[0] == 1 else arr
    if arr.ndim not in (2, 3) or 0 in arr.shape:
        raise ValueError(f"expected a (H, W) or (Z, Y, X) mask, got shape {np.asarray(mask).shape}")
    side = THUMB_SIDE_2D if arr.ndim == 2 else THUMB_SIDE_3D
    x, left = (np.arange(side) + 0.5) / side, np.arange(side) < side / 2  # ties towards the centre
    index = [
        np.where(left, np.floor(x * n), np.ceil(x * n) - 1).clip(0, n - 1).astype(np.intp) for n in arr.shape
    ]
    small = arr[np.ix_(*index)]
    return (
        np.rint(np.nan_to_num(small, nan=0.0, posinf=0.0, neginf=0.0)) if small.dtype.kind == "f" else small
    ).astype(np.int32)


def _candidates(coarse: np.ndarray, syms: list[_Symmetry], cut: float) -> np.ndarray:
    """Every ``(i < j, g)`` with ``coarse_i . g(coarse_j) >= cut``, near the pair's best ``g``.

    Exact blocked search: ``u_i . g u_j = g^-1 u_i . u_j``, so a block of rows is transformed by
    every symmetry and multiplied with the rows from the block on; only the hits are kept.

    Shape: coarse ``(N, *s)`` -> ``(M, 3)`` rows ``(i, j, g)``.
    """
    n, names = len(coarse), [s.name for s in syms]
    inv = np.array([names.index({"rot90": "rot270", "rot270": "rot90"}.get(s, s)) for s in names])
    flat = coarse.reshape(n, -1)
    flat = (flat - flat.mean(1, keepdims=True)) / np.maximum(
        np.linalg.norm(flat, axis=1, keepdims=True), 1e-12
    )
    step = max(1, _BLOCK_BYTES // (4 * len(syms) * n))
    hits, sims = [np.zeros((0, 3), np.intp)], [np.zeros(0, np.float32)]
    for r0 in range(0, n, step):
        blk = flat[r0 : r0 + step].reshape(-1, *coarse.shape[1:])
        sim = np.concatenate([h.apply(blk).reshape(len(blk), -1) for h in syms]) @ flat[r0:].T
        rows = np.flatnonzero(sim.max(axis=1) >= cut)  # hits are rare: search only rows with one
        hb, jj = np.nonzero(sim[rows] >= cut)
        hb = rows[hb]
        i, j = r0 + hb % len(blk), r0 + jj
        hits.append(np.stack([i, j, inv[hb // len(blk)]], axis=1)[j > i])
        sims.append(sim[hb, jj][j > i])
    found, sim = np.concatenate(hits), np.concatenate(sims)
    _, pair = np.unique(found[:, 0] * n + found[:, 1], return_inverse=True)
    best = np.full(len(found), -np.inf, np.float32)
    np.maximum.at(best, pair, sim)
    return found[sim >= best[pair] - SYMMETRY_TOLERANCE]


def remove_common_structure(x: np.ndarray, syms: Sequence[_Symmetry] | None = None) -> np.ndarray:
    """Thumbnails minus what the whole set shares, re-standardised.

    A structure every image has (a circular field of view, a black frame, a scanner overlay, one
    anatomy in the same place) makes distinct cases look alike, and every pair of such a set a
    candidate. The set's mean thumbnail, averaged over the symmetries so that it is unchanged by
    any of them (a copy's residual is then the transformed residual of its original), is
    subtracted. Sets under ``MIN_CASES_FOR_COMMON`` cases are returned unchanged: their mean is
    mostly the images themselves.

    Shape: ``(N, *S)`` -> ``(N, *S)``.
    """
    if len(x) < MIN_CASES_FOR_COMMON:
        return x
    syms = list(syms) if syms is not None else _symmetries(x.ndim - 1)
    mean = x.mean(axis=0, keepdims=True)
    common = np.mean([g.apply(mean) for g in syms], axis=0)
    r = x - common
    axes = tuple(range(1, x.ndim))
    sd = r.std(axis=axes, keepdims=True)
    return np.where(sd > 1e-6, (r - r.mean(axis=axes, keepdims=True)) / np.maximum(sd, 1e-6), 0.0).astype(
        np.float32
    )


def find_near_duplicates(
    ids: Sequence[str],
    thumbs: np.ndarray,
    threshold: float = DEFAULT_THRESHOLD,
    masks: np.ndarray | None = None,
) -> list[NearDuplicatePair]:
    """Every pair of cases whose thumbnails match under a symmetry and a mild crop or rescale.

    Args:
        ids: Case ids, unique, one per thumbnail.
        thumbs: Thumbnails from :func:`image_thumbnail`, stacked.
        threshold: Smallest similarity reported; one under ``CANDIDATE_THRESHOLD`` also lowers
            the search's cut to it (slower: for calibration).
        masks: Mask thumbnails from :func:`mask_thumbnail`, stacked like ``thumbs``, or None.

    Returns:
        Pairs sorted by ``(a, b)``, each with its best symmetry; the same for any order of ``ids``.

    Shape:
        thumbs, masks: ``(N, S, S)`` or ``(N, S, S, S)``.

    Raises:
        ValueError: Shapes that do not fit, repeated ids, a threshold outside ``[-1, 1]``.
    """
    names, x = [str(i) for i in ids], np.asarray(thumbs, dtype=np.float32)
    m = None if masks is None else np.asarray(masks)
    if x.ndim not in (3, 4) or len(set(x.shape[1:])) != 1 or x.shape[1] < 2:
        raise ValueError(f"thumbs: expected (N, S, S) or (N, S, S, S), got shape {x.shape}")
    if len(names) != len(x) or len(set(names)) != len(names):
        raise ValueError(
            f"need one unique case id per thumbnail: {len(set(names))} unique ids, {len(x)} thumbnails"
        )
    if m is not None and m.shape != x.shape:
        raise ValueError(f"masks: shape {m.shape} differs from the thumbnails' {x.shape}")
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [-1, 1], got {threshold}")
    if len(names) < 2:
        return []
    order = sorted(range(len(names)), key=names.__getitem__)  # work in id order: order-invariant
    names, x = [names[k] for k in order], x[order]
    ndim, syms = x.ndim - 1, _symmetries(x.ndim - 1)
    x = remove_common_structure(x, syms)
    factor = max(1, x.shape[1] // COARSE_SIDE[ndim])
    coarse = np.concatenate(
        [downsample(blur(x[c : c + 4096], COARSE_BLUR[ndim]), factor) for c in range(0, len(x), 4096)]
    )
    found = _candidates(coarse, syms, min(CANDIDATE_THRESHOLD[ndim], threshold))
    best: dict[tuple[int, int], tuple[float, int, np.ndarray, np.ndarray]] = {}
    for c0 in range(0, len(found), _CHUNK):
        i, j, g = found[c0 : c0 + _CHUNK].T
        moved = np.empty((len(i), *x.shape[1:]), np.float32)
        for k in np.unique(g):
            moved[g == k] = syms[k].apply(x[j[g == k]])
        score = partial(detail_score, x[i], moved, DETAIL_SIGMA[ndim])
        scale, shift, live = align(x[i], moved, score, threshold - DETAIL_PRUNE)
        i, j, g, scale, shift = i[live], j[live], g[live], scale[:, live], shift[:, live]
        sim = score(live, scale, shift)
        for t in np.flatnonzero(sim >= threshold):
            key = (int(i[t]), int(j[t]))
            if key not in best or sim[t] > best[key][0]:
                best[key] = (float(sim[t]), int(g[t]), scale[:, t], shift[:, t])
    pairs = []
    for (a, b), (s, k, scale_b, shift_b) in sorted(best.items()):
        dice = (
            None
            if m is None
            else mask_dice(m[order[a]], syms[k].apply(m[order[b]][None])[0], scale_b, shift_b)
        )
        pairs.append(NearDuplicatePair(names[a], names[b], min(s, 1.0), syms[k].name, dice))
    return pairs


def near_duplicate_groups(ids: Sequence[str], pairs: Sequence[NearDuplicatePair]) -> dict[str, str]:
    """Connected components of the near-duplicate graph (union-find).

    Args:
        ids: All case ids.
        pairs: From :func:`find_near_duplicates` on those ids.

    Returns:
        Case id -> group id (the smallest case id of its group) for every case with at least one
        near-duplicate; the others are absent.

    Raises:
        ValueError: A pair names a case that is not in ``ids``.
    """
    parent = {str(i): str(i) for i in ids}

    def root(v: str) -> str:
        while parent[v] != v:
            parent[v] = parent[parent[v]]
            v = parent[v]
        return v

    for p in pairs:
        if p.a not in parent or p.b not in parent:
            raise ValueError(f"near-duplicate pair ({p.a}, {p.b}) names a case not in ids")
        ra, rb = root(p.a), root(p.b)
        parent[max(ra, rb)] = min(ra, rb)
    return {v: root(v) for v in sorted({v for p in pairs for v in (p.a, p.b)})}
