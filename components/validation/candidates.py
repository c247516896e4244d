"""Which pairs of cases near-duplicate search scores: an exact blocked search on coarse thumbnails,
after the structure the whole set shares is taken out of each (``near_duplicates``, steps 0-1)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from components.validation.symmetries import Symmetry, inverses, symmetries

MIN_CASES_FOR_COMMON = 10  # sets this large have their shared structure removed first
MIN_COMMON_SHARE = 0.05  # ... if it explains this share of their variance
SYMMETRY_TOLERANCE: float = 0.05  # symmetries scored for a pair: within this of its best one
_BLOCK_BYTES = 64 * 2**20


def candidates(coarse: np.ndarray, syms: list[Symmetry], cut: float, top: int | None = None) -> np.ndarray:
    """Every ``(i < j, g)`` with ``coarse_i . g(coarse_j) >= cut``, near the pair's best ``g``; with
    ``top``, only each ``i``'s ``top`` best partners ``j > i``.

    Exact blocked search: ``u_i . g u_j = g^-1 u_i . u_j``, so a block of rows is transformed by
    every symmetry and multiplied with the rows from the block on; only the hits are kept.

    Shape: coarse ``(N, *s)`` -> ``(M, 3)`` rows ``(i, j, g)``.
    """
    n, inv, n_sym = len(coarse), inverses(syms, coarse.ndim - 1), len(syms)
    flat = coarse.reshape(n, -1)
    flat = (flat - flat.mean(1, keepdims=True)) / np.maximum(
        np.linalg.norm(flat, axis=1, keepdims=True), 1e-12
    )
    step = max(1, _BLOCK_BYTES // (4 * n_sym * n))
    hits = [np.zeros((0, 3), np.intp)]
    for r0 in range(0, n, step):
        blk = flat[r0 : r0 + step].reshape(-1, *coarse.shape[1:])
        k = len(blk)
        sim = (np.concatenate([h.apply(blk).reshape(k, -1) for h in syms]) @ flat[r0:].T).reshape(
            n_sym, k, -1
        )
        sim[
            :, np.tril_indices(k, m=sim.shape[2])[0], np.tril_indices(k, m=sim.shape[2])[1]
        ] = -np.inf  # j <= i
        best = sim.max(axis=0)  # (k, n - r0)
        keep = best >= cut
        if top is not None and best.shape[1] > top:
            rank = np.argpartition(-best, top - 1, axis=1)[:, :top]
            chosen = np.zeros_like(keep)
            np.put_along_axis(chosen, rank, True, axis=1)
            keep &= chosen
        gg, ii, jj = np.nonzero((sim >= best[None] - SYMMETRY_TOLERANCE) & keep[None])
        hits.append(np.stack([r0 + ii, r0 + jj, inv[gg]], axis=1))
    return np.concatenate(hits)


def common_structure(x: np.ndarray, syms: Sequence[Symmetry] | None = None) -> np.ndarray | None:
    """What the whole set shares: its mean thumbnail, averaged over the symmetries so that it is
    unchanged by any of them. None for sets under ``MIN_CASES_FOR_COMMON`` cases (their mean is
    mostly the images themselves), and when it explains under ``MIN_COMMON_SHARE`` of the cases'
    variance (mean squared correlation with it): distinct random images share nothing (about 1/N).

    A structure every image has (a circular field of view, a scanner overlay, one anatomy in the
    same place) makes distinct cases look alike, and every pair of such a set a candidate.

    Shape: ``(N, *S)`` -> ``S``.
    """
    if len(x) < MIN_CASES_FOR_COMMON:
        return None
    syms = list(syms) if syms is not None else symmetries(x.ndim - 1)
    mean = x.mean(axis=0, keepdims=True)
    common = np.mean([g.apply(mean) for g in syms], axis=0)[0].astype(np.float32)
    flat, c = x.reshape(len(x), -1), common.ravel() - common.mean()
    xc = flat - flat.mean(axis=1, keepdims=True)
    corr = (xc @ c) / np.maximum(np.linalg.norm(xc, axis=1) * np.linalg.norm(c), 1e-12)
    return common if float(np.mean(corr**2)) >= MIN_COMMON_SHARE else None


def remove_common_structure(x: np.ndarray, common: np.ndarray | None) -> np.ndarray:
    """Thumbnails minus the common structure placed in each (scaled to fit it), re-standardised;
    unchanged without one.

    Shape: ``(N, *S)`` twice -> ``(N, *S)``.
    """
    if common is None:
        return x
    axes = tuple(range(1, x.ndim))
    xc = x - x.mean(axis=axes, keepdims=True)
    cc = common - common.mean(axis=axes, keepdims=True)
    gain = (xc * cc).sum(axes, keepdims=True) / np.maximum((cc * cc).sum(axes, keepdims=True), 1e-12)
    r = xc - gain * cc
    sd = r.std(axis=axes, keepdims=True)
    return np.where(sd > 1e-6, r / np.maximum(sd, 1e-6), 0.0).astype(np.float32)
