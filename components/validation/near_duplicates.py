"""Near-duplicate cases: copies of one case that byte hashes miss, told apart from look-alikes.

Datasets often ship a case twice: mirrored, rotated, transposed, re-encoded as JPEG, cropped or
padded, rescaled, with brightness/contrast changed, as 16 instead of 8 bits, or turned *inside* a
letterbox frame; copies in train and test inflate the score. And images of one modality and one
anatomy look alike without being copies. Each case is reduced once, while it is decoded, to a
z-scored thumbnail of its content (``content.image_thumbnail``: the frame cut off, then 64^2 for
images, 16^3 for volumes; with a frame, of the whole image too) and its mask's label shares on the
same box (``content.mask_thumbnails``). :func:`find_near_duplicates` then

1. searches (``candidates``): coarse thumbnails (blurred, block means to 8^2 / 8^3) of every pair
   of views under every symmetry (``symmetries``: 8 in 2D, 16 in 3D), blocked float32 matrix
   products, exact: each case's ``RAW_TOP`` best partners at ``CANDIDATE_THRESHOLD`` or more, and,
   in sets of ``candidates.MIN_CASES_FOR_COMMON`` cases or more, every pair over it once what the
   whole set shares (a field of view, one anatomy in one place) is taken out of each (placed
   where it sits in that case: a crop moves it);
2. scores each candidate: the symmetry is applied, a per-axis scale and shift is fitted
   (Gauss-Newton, coarse to fine: crops of ~5% per side, aspect changes), and the image similarity
   is the correlation of the thumbnails' *detail* (thumbnail minus its blur) over the overlap,
   the set's shared structure subtracted from both after the alignment. Plain correlation of small
   thumbnails is not enough: neighbouring slices of one CT scan correlate at 0.98 at 32^2, more
   than a slice with a 4% crop of itself;
3. weighs the masks as evidence: a copy's mask moves with its image, so for a pair over
   ``threshold`` the masks are compared under the same symmetry, scale and shift
   (``alignment.mask_agreement``). Masks that agree (>= ``MASK_AGREEMENT``) confirm the copy; masks
   that disagree make the pair a look-alike, kept apart (``copy=False``), unless the images match
   so closely (>= ``EXACT_SIMILARITY``) that only the labelling can differ: such a pair is a copy
   whose masks disagree (a labelling warning). A pair where a mask is missing is judged on its
   images alone.

Calibration: ``MASK_AGREEMENT`` and ``EXACT_SIMILARITY`` lie between what copies and look-alikes
reach in ``bench/near_duplicates.py`` (results in ``bench/results/near_duplicates-*.json``; the
docs/benchmarks.md, "Near-duplicates", has the numbers). True copies' masks agree at 0.97 or more
(crops and rescales of thin vessels included), look-alike patients' at 0.12 or less; one CT slice
shipped twice with swapped labels (covid_ct_infnet 010/043) scores r=0.984 with agreement 0.63.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from components.validation.alignment import (
    align,
    blur,
    detail_score,
    downsample,
    fit_template,
    mask_agreement,
    placed,
)
from components.validation.candidates import candidates, common_structure, remove_common_structure
from components.validation.content import MaskThumbnail
from components.validation.symmetries import Symmetry, inverses, symmetries

DEFAULT_THRESHOLD: float = 0.82
MASK_AGREEMENT: float = 0.8  # masks of a copy agree at least this much (alignment.mask_agreement)
EXACT_SIMILARITY: float = 0.96  # images this alike are a copy whatever the masks say
# per number of spatial dims: the search compares block means of the blurred thumbnails
COARSE_SIDE: dict[int, int] = {2: 8, 3: 8}
COARSE_BLUR: dict[int, float] = {2: 2.0, 3: 0.0}  # Gaussian sigma, thumbnail pixels
CANDIDATE_THRESHOLD: dict[int, float] = {2: 0.75, 3: 0.85}  # coarse correlation to be scored
RAW_TOP = 4  # candidates of each case on the thumbnails as they are: its best partners only
DETAIL_PRUNE: float = 0.15  # not refined at full resolution: score before it under threshold - this
DETAIL_SIGMA: dict[int, float] = {2: 1.0, 3: 0.7}  # the score correlates thumbnail - blur(sigma)
_CHUNK = 256


@dataclass(frozen=True)
class NearDuplicatePair:
    """Two cases whose images match under a symmetry (and a mild crop, pad or rescale).

    Attributes:
        a: Case id, the smaller of the two (string order).
        b: The other case id.
        similarity: Correlation in ``[-1, 1]`` of the aligned thumbnails' detail.
        transform: The symmetry of ``b``'s content that matches ``a``'s (``transform(b) ~ a``), a
            ``symmetries.Symmetry`` name.
        mask_agreement: Agreement in ``[0, 1]`` of the two masks, ``b``'s moved like its image
            (``alignment.mask_agreement``); None when a case has no mask.
        copy: True: one case shipped twice (the splits keep them together). False: a look-alike
            whose masks disagree, kept apart.
        view: ``content``: the two contents compared (flat borders cut off); ``frame``: one case's
            whole frame against the other's image (see ``content.ImageThumbnail.frame``).
    """

    a: str
    b: str
    similarity: float
    transform: str
    mask_agreement: float | None
    copy: bool
    view: str = "content"

    @property
    def masks_disagree(self) -> bool:
        """The masks of the pair disagree (a look-alike, or a copy labelled differently)."""
        return self.mask_agreement is not None and self.mask_agreement < MASK_AGREEMENT


def is_copy(similarity: float, agreement: float | None) -> bool:
    """The verdict on a pair over the threshold: images alone without masks; with masks, agreeing
    masks or an exact image match (module docstring, step 3)."""
    return agreement is None or agreement >= MASK_AGREEMENT or similarity >= EXACT_SIMILARITY


Frame = tuple[np.ndarray, "MaskThumbnail | None"]  # a whole-frame thumbnail and its mask's


@dataclass
class _Views:
    """Every thumbnail compared: each case's content, then the whole frames of the framed cases."""

    x: np.ndarray  # (V, *S)
    owner: np.ndarray  # (V,) case index
    frame: np.ndarray  # (V,) bool: a whole-frame view
    masks: list[MaskThumbnail | None]
    framed: np.ndarray  # (N,) bool: the case has a frame view

    def allowed(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Pairs of views of two cases: content with content, or a frame with an unframed case."""
        fi, fj = self.frame[i], self.frame[j]
        ok = (self.owner[i] != self.owner[j]) & ~(fi & fj)
        return ok & ~(fi & self.framed[self.owner[j]]) & ~(fj & self.framed[self.owner[i]])


def _views(x: np.ndarray, masks: list[MaskThumbnail | None], frames: list[Frame | None]) -> _Views:
    extra = [(k, f) for k, f in enumerate(frames) if f is not None]
    framed = np.zeros(len(x), bool)
    framed[[k for k, _ in extra]] = True
    if not extra:
        return _Views(x, np.arange(len(x)), np.zeros(len(x), bool), masks, framed)
    xs = np.concatenate([x, np.stack([np.asarray(f[0], np.float32) for _, f in extra])])
    owner = np.concatenate([np.arange(len(x)), [k for k, _ in extra]])
    frame = np.arange(len(xs)) >= len(x)
    return _Views(xs, owner, frame, masks + [f[1] for _, f in extra], framed)


def _coarse(x: np.ndarray, ndim: int) -> np.ndarray:
    """Block means of the blurred thumbnails (what the candidate search compares), in chunks."""
    factor = max(1, x.shape[1] // COARSE_SIDE[ndim])
    return np.concatenate(
        [downsample(blur(x[c0 : c0 + 4096], COARSE_BLUR[ndim]), factor) for c0 in range(0, len(x), 4096)]
    )


def _checked(
    ids: Sequence[str],
    thumbs: np.ndarray,
    masks: Sequence[MaskThumbnail | None] | None,
    frames: Sequence[Frame | None] | None,
    threshold: float,
) -> tuple[list[str], np.ndarray, list[MaskThumbnail | None], list[Frame | None]]:
    names, x = [str(i) for i in ids], np.asarray(thumbs, dtype=np.float32)
    if x.ndim not in (3, 4) or len(set(x.shape[1:])) != 1 or x.shape[1] < 2:
        raise ValueError(f"thumbs: expected (N, S, S) or (N, S, S, S), got shape {x.shape}")
    if len(names) != len(x) or len(set(names)) != len(names):
        raise ValueError(
            f"need one unique case id per thumbnail: {len(set(names))} unique ids, {len(x)} thumbnails"
        )
    m: list[MaskThumbnail | None] = list(masks) if masks is not None else [None] * len(x)
    f: list[Frame | None] = list(frames) if frames is not None else [None] * len(x)
    all_masks = m + [v[1] for v in f if v is not None]
    if len(m) != len(x) or any(t is not None and t.fractions.shape[1:] != x.shape[1:] for t in all_masks):
        raise ValueError(f"masks: need one mask thumbnail (or None) of shape (L, *{x.shape[1:]}) per case")
    if len(f) != len(x) or any(v is not None and np.shape(v[0]) != x.shape[1:] for v in f):
        raise ValueError(f"frames: need one (thumbnail of shape {x.shape[1:]}, mask) or None per case")
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [-1, 1], got {threshold}")
    return names, x, m, f


def find_near_duplicates(
    ids: Sequence[str],
    thumbs: np.ndarray,
    threshold: float = DEFAULT_THRESHOLD,
    masks: Sequence[MaskThumbnail | None] | None = None,
    frames: Sequence[Frame | None] | None = None,
) -> list[NearDuplicatePair]:
    """Every pair of cases whose images match under a symmetry and a mild crop, pad or rescale.

    Args:
        ids: Case ids, unique, one per thumbnail.
        thumbs: Content thumbnails (``content.image_thumbnail(...).content``), stacked.
        threshold: Smallest image similarity reported; one under ``DEFAULT_THRESHOLD`` also
            lowers the search's cut (``CANDIDATE_THRESHOLD``) by as much (slower: for calibration).
        masks: One mask thumbnail (``content.mask_thumbnail`` on the content box) or None per case,
            or None for all.
        frames: Per case, None or (whole-frame thumbnail, its mask thumbnail or None) for a case
            whose content box is smaller than the image; compared with unframed cases only.

    Returns:
        Pairs sorted by ``(a, b)``, each with its best symmetry and its verdict (``copy``); the same
        for any order of ``ids``.

    Shape:
        thumbs: ``(N, S, S)`` or ``(N, S, S, S)``; each mask's fractions ``(L, *S)``.

    Raises:
        ValueError: Shapes that do not fit, repeated ids, a threshold outside ``[-1, 1]``.
    """
    names, x, m, f = _checked(ids, thumbs, masks, frames, threshold)
    if len(names) < 2:
        return []
    order = sorted(range(len(names)), key=names.__getitem__)  # work in id order: order-invariant
    names = [names[k] for k in order]
    views = _views(x[order], [m[k] for k in order], [f[k] for k in order])
    ndim, syms, v = x.ndim - 1, symmetries(x.ndim - 1), views.x
    common = common_structure(v[~views.frame], syms)

    def shared(idx: np.ndarray) -> np.ndarray | None:  # the common structure where it sits in v[idx]
        if common is None:
            return None
        unique, back = np.unique(idx, return_inverse=True)  # fitted once per view of the chunk
        return placed(common, *fit_template(v[unique], common))[back]

    cut = CANDIDATE_THRESHOLD[ndim] - max(0.0, DEFAULT_THRESHOLD - threshold)
    found = candidates(_coarse(v, ndim), syms, cut, top=RAW_TOP)
    if common is not None:
        chunks = (np.arange(c0, min(c0 + 4096, len(v))) for c0 in range(0, len(v), 4096))
        residual = np.concatenate(  # the common structure placed in each view, at 16^2 (8^3) only
            [
                _coarse(remove_common_structure(v[c], placed(common, *fit_template(v[c], common, 4))), ndim)
                for c in chunks
            ]
        )
        found = np.unique(np.concatenate([found, candidates(residual, syms, cut)]), axis=0)
    found = found[views.allowed(found[:, 0], found[:, 1])]
    best: dict[tuple[int, int], tuple[float, int, int, int, np.ndarray, np.ndarray]] = {}
    for c0 in range(0, len(found), _CHUNK):
        i, j, g = found[c0 : c0 + _CHUNK].T
        moved = np.empty((len(i), *v.shape[1:]), np.float32)
        for k in np.unique(g):
            moved[g == k] = syms[k].apply(v[j[g == k]])
        score = partial(detail_score, v[i], moved, DETAIL_SIGMA[ndim], common=shared(i))
        scale, shift, live = align(v[i], moved, score, threshold - DETAIL_PRUNE)
        i, j, g, scale, shift = i[live], j[live], g[live], scale[:, live], shift[:, live]
        sim = score(live, scale, shift)
        for t in np.flatnonzero(sim >= threshold):
            oi, oj = int(views.owner[i[t]]), int(views.owner[j[t]])
            key = (min(oi, oj), max(oi, oj))
            if key not in best or sim[t] > best[key][0]:
                best[key] = (float(sim[t]), int(i[t]), int(j[t]), int(g[t]), scale[:, t], shift[:, t])
    inverse = inverses(syms, ndim)
    pairs = []
    for (a, b), (s, vi, vj, k, scale_b, shift_b) in sorted(best.items()):
        agreement = _masks_agree(views.masks[vi], views.masks[vj], syms[k], scale_b, shift_b)
        name = syms[k if views.owner[vi] == a else inverse[k]].name  # transform(b) ~ a
        similarity = min(s, 1.0)
        view = "frame" if views.frame[vi] or views.frame[vj] else "content"
        pairs.append(
            NearDuplicatePair(
                names[a], names[b], similarity, name, agreement, is_copy(similarity, agreement), view
            )
        )
    return pairs


def _masks_agree(
    a: MaskThumbnail | None, b: MaskThumbnail | None, g: Symmetry, scale: np.ndarray, shift: np.ndarray
) -> float | None:
    """``alignment.mask_agreement`` of two mask thumbnails, ``b`` turned by ``g``; None without both."""
    if a is None or b is None:
        return None
    labels = tuple(sorted(set(a.labels) | set(b.labels)))
    return mask_agreement(a.dense(labels), g.apply(b.dense(labels)), scale, shift)


def near_duplicate_groups(ids: Sequence[str], pairs: Sequence[NearDuplicatePair]) -> dict[str, str]:
    """Connected components of the copies (pairs with ``copy``; look-alikes kept apart are not edges).

    Args:
        ids: All case ids.
        pairs: From :func:`find_near_duplicates` on those ids.

    Returns:
        Case id -> group id (the smallest case id of its group) for every case with at least one
        copy; the others are absent.

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
    copies = [p for p in pairs if p.copy]
    for p in copies:
        ra, rb = root(p.a), root(p.b)
        parent[max(ra, rb)] = min(ra, rb)
    return {v: root(v) for v in sorted({v for p in copies for v in (p.a, p.b)})}
