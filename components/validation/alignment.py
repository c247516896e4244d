"""Alignment of two thumbnails for the near-duplicate score (``near_duplicates``): per-axis scale
and shift fitted by Gauss-Newton, coarse to fine, so that mild crops, rescales and aspect changes
of a copy are undone before its detail is compared; and the masks' agreement under that alignment.

Arrays are batches of thumbnails ``(C, *S)`` (C pairs, S the square/cubic thumbnail shape).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
from scipy.ndimage import gaussian_filter

ALIGN_PRUNE: dict[int, float] = {4: 0.75, 2: 0.85}  # per reduction: plain correlation a pair keeps
MAX_SCALE, MAX_SHIFT = 1.25, 0.15  # alignment bounds: per-axis scale, shift as a fraction of the side


def downsample(batch: np.ndarray, factor: int) -> np.ndarray:
    """Block means of ``factor`` per spatial axis. Shape: ``(N, *S)`` -> ``(N, *(S // factor))``."""
    ndim, side = batch.ndim - 1, batch.shape[1] // factor
    if factor <= 1:
        return batch
    x = batch[(slice(None), *(slice(0, side * factor),) * ndim)]
    x = x.reshape(len(x), *itertools.chain.from_iterable((side, factor) for _ in range(ndim)))
    return x.mean(axis=tuple(range(2, 2 * ndim + 1, 2)))


def blur(batch: np.ndarray, sigma: float) -> np.ndarray:
    return gaussian_filter(batch, (0.0, *(sigma,) * (batch.ndim - 1)), mode="nearest") if sigma else batch


def coords(scale: np.ndarray, shift: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Source positions ``c + scale (o - c) + shift side`` of the output voxels, and which are inside."""
    c = (side - 1) / 2.0
    x = c + np.asarray(scale)[..., None] * (np.arange(side) - c) + np.asarray(shift)[..., None] * side
    return x, (x > -0.5) & (x < side - 0.5)


def warp(batch: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Linear resampling per axis, and where the result has data.

    Shape: batch ``(C, *S)``, scale and shift ``(ndim, C)`` -> warped and inside ``(C, *S)``.
    """
    ndim, side, n = batch.ndim - 1, batch.shape[1], len(batch)
    out, inside = batch, np.ones(batch.shape, np.float32)
    rows, cols = np.arange(n)[:, None], np.arange(side)[None, :]
    for d in range(ndim):
        x, valid = coords(scale[d], shift[d], side)
        x = np.clip(x, 0, side - 1)
        lo = np.minimum(np.floor(x).astype(np.intp), max(side - 2, 0))
        m = np.zeros((n, side, side), np.float32)  # m[c, output, source]
        m[rows, cols, lo] += 1.0 - (x - lo)
        m[rows, cols, np.minimum(lo + 1, side - 1)] += x - lo
        moved = np.moveaxis(out, d + 1, -1)
        flat = moved.reshape(n, int(np.prod(moved.shape[1:-1])), side) @ m.transpose(0, 2, 1)
        out = np.moveaxis(flat.reshape(moved.shape), -1, d + 1)
        inside = inside * valid.reshape(n, *(side if k == d else 1 for k in range(ndim)))
    return out, inside


def centred(x: np.ndarray, w: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    return x - (x * w).sum(axes, keepdims=True) / np.maximum(w.sum(axes, keepdims=True), 1e-12)


def wcorr(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted correlation of each pair of items. Shape: ``(C, *S)`` three times -> ``(C,)``."""
    axes = tuple(range(1, a.ndim))
    da, db = centred(a, w, axes), centred(b, w, axes)
    den = np.sqrt((w * da * da).sum(axes) * (w * db * db).sum(axes))
    return np.divide((w * da * db).sum(axes), den, out=np.zeros(len(a)), where=den > 1e-12)


def align(
    a: np.ndarray,
    b: np.ndarray,
    screen: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    floor: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-axis scale and shift mapping ``b`` onto ``a``: Gauss-Newton from the identity.

    Fits ``a ~ gain warp(b) + bias`` over the overlap on block means of 4, 2, then 1 voxels
    (levels with a side under 8 skipped). Items are dropped after a coarse level whose aligned
    correlation is under ``ALIGN_PRUNE`` (copies: >= 0.85 at 16^2, >= 0.91 at 32^2), and before
    the full-resolution level where ``screen(items, scale, shift)`` is under ``floor``.

    Shape: ``(C, *S)`` twice -> scale, shift ``(ndim, C)``, indices of the items kept ``(K,)``.
    """
    ndim, n = a.ndim - 1, len(a)
    axes, live = tuple(range(1, ndim + 1)), np.arange(n)
    scale, shift = np.ones((ndim, n)), np.zeros((ndim, n))
    for factor in [f for f in (4, 2) if a.shape[1] // f >= 8] + [1]:
        if factor == 1 and len(live):
            live = live[screen(live, scale[:, live], shift[:, live]) >= floor]
        if not len(live):
            break
        al, bl = downsample(a[live], factor), downsample(b[live], factor)
        side, k = al.shape[1], len(live)
        offset = (np.arange(side, dtype=np.float32) - (side - 1) / 2.0).reshape(-1, *(1,) * (ndim - 1))
        for _ in range(3):  # Gauss-Newton steps per level
            bw, w = warp(bl, scale[:, live], shift[:, live])
            da, db = centred(al, w, axes), centred(bw, w, axes)
            num, den = np.sum(w * db * da, axes, keepdims=True), np.sum(w * db * db, axes, keepdims=True)
            gain = num / np.maximum(den, 1e-12)
            grads = [gain * g for g in np.gradient(bw, axis=axes)]
            terms = [g * side for g in grads] + [g * np.moveaxis(offset, 0, d) for d, g in enumerate(grads)]
            jac = np.stack([v.reshape(k, -1) for v in (*terms, db, np.ones_like(db))], axis=1)
            jw = jac * w.reshape(k, 1, -1)
            hess = jw @ jac.transpose(0, 2, 1)
            hess += np.eye(hess.shape[1]) * (1e-6 * np.trace(hess, axis1=1, axis2=2) + 1e-9)[:, None, None]
            step = np.linalg.solve(hess, jw @ (da - gain * db).reshape(k, -1, 1))[..., 0]
            shift[:, live] = np.clip(shift[:, live] + step[:, :ndim].T, -MAX_SHIFT, MAX_SHIFT)
            scale[:, live] = np.clip(scale[:, live] + step[:, ndim : 2 * ndim].T, 1 / MAX_SCALE, MAX_SCALE)
        if factor > 1:
            live = live[wcorr(al, *warp(bl, scale[:, live], shift[:, live])) >= ALIGN_PRUNE[factor]]
    return scale, shift, live


def detail_score(
    a: np.ndarray, b: np.ndarray, sigma: float, items: np.ndarray, scale: np.ndarray, shift: np.ndarray
) -> np.ndarray:
    """Correlation of the details (``x - blur(x, sigma)``) of ``a[items]`` and ``b[items]`` aligned.

    The magnified one of the two (the crop) is resampled: interpolation loses less detail so.

    Shape: ``(C, *S)`` twice, items ``(K,)``, scale and shift ``(ndim, K)`` -> ``(K,)``.
    """
    da, db = a[items] - blur(a[items], sigma), b[items] - blur(b[items], sigma)
    out, fw, bw = np.empty(len(items)), np.prod(scale, axis=0) >= 1.0, np.prod(scale, axis=0) < 1.0
    out[fw] = wcorr(da[fw], *warp(db[fw], scale[:, fw], shift[:, fw]))
    out[bw] = wcorr(db[bw], *warp(da[bw], 1 / scale[:, bw], -shift[:, bw] / scale[:, bw]))
    return out


def mask_dice(a: np.ndarray, b: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> float:
    """Mean Dice over the foreground classes of ``a`` and of ``b`` aligned (nearest); 1.0 if none."""
    side, inside, index = b.shape[0], np.ones(b.shape, bool), []
    for d in range(b.ndim):
        x, valid = coords(scale[d], shift[d], side)
        index.append(np.clip(np.rint(x), 0, side - 1).astype(np.intp))
        inside &= valid.reshape([side if k == d else 1 for k in range(b.ndim)])
    a, b = np.where(inside, a, 0), np.where(inside, b[np.ix_(*index)], 0)
    dice = [
        2.0 * np.sum((a == c) & (b == c)) / (np.sum(a == c) + np.sum(b == c))
        for c in np.union1d(a[a > 0], b[b > 0])
    ]
    return float(np.mean(dice)) if dice else 1.0
