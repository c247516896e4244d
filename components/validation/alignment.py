"""Alignment of two thumbnails for the near-duplicate score (``near_duplicates``): per-axis scale
and shift fitted by Gauss-Newton, coarse to fine, so that mild crops, rescales and aspect changes
of a copy are undone before its detail is compared; and the masks' agreement under that alignment
(:func:`mask_agreement`).

Arrays are batches of thumbnails ``(C, *S)`` (C pairs, S the square/cubic thumbnail shape).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
from scipy.ndimage import gaussian_filter

ALIGN_PRUNE: dict[int, float] = {4: 0.75, 2: 0.85}  # per reduction: plain correlation a pair keeps
MAX_SCALE, MAX_SHIFT = 1.25, 0.15  # alignment bounds: per-axis scale, shift as a fraction of the side
MASK_SIGMA: float = 1.0  # mask shares are compared blurred by this (thumbnail pixels)


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


def _levels(side: int, finest: int = 1) -> list[int]:
    """Block sizes of the coarse-to-fine levels: 4, 2, 1 (those leaving a side under 8 skipped)."""
    return [f for f in (4, 2) if side // f >= 8 and f >= finest] + ([1] if finest <= 1 else [])


def _gauss_newton(al: np.ndarray, bl: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> None:
    """Three Gauss-Newton steps of ``al ~ gain warp(bl) + bias`` on one level, updating ``scale``
    and ``shift`` (``(ndim, K)``) in place. Shape: ``al``, ``bl`` ``(K, *S)``."""
    ndim, k, side = al.ndim - 1, len(al), al.shape[1]
    axes = tuple(range(1, ndim + 1))
    offset = (np.arange(side, dtype=np.float32) - (side - 1) / 2.0).reshape(-1, *(1,) * (ndim - 1))
    for _ in range(3):
        bw, w = warp(bl, scale, shift)
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
        shift[:] = np.clip(shift + step[:, :ndim].T, -MAX_SHIFT, MAX_SHIFT)
        scale[:] = np.clip(scale + step[:, ndim : 2 * ndim].T, 1 / MAX_SCALE, MAX_SCALE)


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
    live = np.arange(n)
    scale, shift = np.ones((ndim, n)), np.zeros((ndim, n))
    for factor in _levels(a.shape[1]):
        if factor == 1 and len(live):
            live = live[screen(live, scale[:, live], shift[:, live]) >= floor]
        if not len(live):
            break
        al, bl = downsample(a[live], factor), downsample(b[live], factor)
        sc, sh = scale[:, live], shift[:, live]
        _gauss_newton(al, bl, sc, sh)
        scale[:, live], shift[:, live] = sc, sh
        if factor > 1:
            live = live[wcorr(al, *warp(bl, scale[:, live], shift[:, live])) >= ALIGN_PRUNE[factor]]
    return scale, shift, live


def fit_template(
    x: np.ndarray, template: np.ndarray, finest: int = 2, chunk: int = 2048
) -> tuple[np.ndarray, np.ndarray]:
    """Per-axis scale and shift mapping ``template`` onto each of ``x``, on the coarse levels down to
    block means of ``finest`` (4 and 2 by default; levels with a side under 8 skipped, but one level
    always kept): where a shared structure sits in each case.

    Shape: x ``(N, *S)``, template ``S`` -> scale, shift ``(ndim, N)``.
    """
    ndim, n = x.ndim - 1, len(x)
    scale, shift = np.ones((ndim, n)), np.zeros((ndim, n))
    levels = _levels(x.shape[1], finest=finest) or _levels(x.shape[1], finest=2)
    for factor in levels:
        t = downsample(template[None], factor)
        for c0 in range(0, n, chunk):
            xl = downsample(x[c0 : c0 + chunk], factor)
            sc, sh = scale[:, c0 : c0 + chunk], shift[:, c0 : c0 + chunk]
            _gauss_newton(xl, np.broadcast_to(t, xl.shape), sc, sh)
    return scale, shift


def placed(template: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``template`` moved by each scale and shift (:func:`fit_template`), edges extended.

    Shape: template ``S``, scale and shift ``(ndim, K)`` -> ``(K, *S)``.
    """
    return warp(np.broadcast_to(template, (scale.shape[1], *template.shape)), scale, shift)[0]


def detail_score(
    a: np.ndarray,
    b: np.ndarray,
    sigma: float,
    items: np.ndarray,
    scale: np.ndarray,
    shift: np.ndarray,
    common: np.ndarray | None = None,
) -> np.ndarray:
    """Correlation of the details (``x - blur(x, sigma)``) of ``a[items]`` and ``b[items]`` aligned.

    The magnified one of the two (the crop) is resampled: interpolation loses less detail so. With
    ``common`` (what the set shares, placed where it sits in each ``a``), its detail, scaled to fit
    ``a``'s, is subtracted from both after the alignment, in the frame they are compared in: a copy
    then keeps matching its original, while two distinct cases lose what they share. ``b`` is first
    scaled by its least-squares gain onto ``a`` so that the subtraction is fair to both.

    Shape: ``(C, *S)`` twice (and common), items ``(K,)``, scale and shift ``(ndim, K)`` -> ``(K,)``.
    """
    da, db = a[items] - blur(a[items], sigma), b[items] - blur(b[items], sigma)
    dc = None if common is None else common[items] - blur(common[items], sigma)
    out, fw = np.empty(len(items)), np.prod(scale, axis=0) >= 1.0
    inverse = (1 / scale, -shift / scale)
    for sel, forward in ((fw, True), (~fw, False)):
        if not sel.any():
            continue
        s, t = (scale[:, sel], shift[:, sel]) if forward else (inverse[0][:, sel], inverse[1][:, sel])
        if forward:  # compare in a's frame: b moved onto it
            fixed_a, (other, w) = da[sel], warp(db[sel], s, t)
            shared = None if dc is None else dc[sel]
        else:  # compare in b's frame: a (and what it shares) moved onto b
            (fixed_a, w), other = warp(da[sel], s, t), db[sel]
            shared = None if dc is None else warp(dc[sel], s, t)[0]
        if shared is None:
            out[sel] = wcorr(fixed_a, other, w)
            continue
        axes = tuple(range(1, other.ndim))
        fit = (1, *(1,) * len(axes))
        gain = (w * fixed_a * other).sum(axes) / np.maximum((w * other * other).sum(axes), 1e-12)
        part = (w * fixed_a * shared).sum(axes) / np.maximum((w * shared * shared).sum(axes), 1e-12)
        gain, part = gain.reshape(-1, *fit[1:]), part.reshape(-1, *fit[1:])
        out[sel] = wcorr(fixed_a - part * shared, gain * other - part * shared, w)
    return out


def mask_agreement(a: np.ndarray, b: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> float:
    """How well two cases' masks agree, ``b`` moved like its image: per label, the correlation over
    the overlap of the label-share maps blurred by :data:`MASK_SIGMA` thumbnail pixels (half a pixel
    of residual misalignment costs little); the lowest over the labels, since a copy agrees on every
    label. A label present in the overlap in one mask only scores 0; one absent from it in both is
    skipped, and 1.0 is returned if none is left (no foreground in either: nothing disagrees).

    Shape: a, b ``(L, *S)`` float label shares (one label order), scale and shift ``(ndim,)``.
    """
    if not len(a):
        return 1.0
    n, axes = len(a), tuple(range(1, a.ndim))
    moved, w = warp(b, np.repeat(scale[:, None], n, 1), np.repeat(shift[:, None], n, 1))
    pa, pb = blur(a, MASK_SIGMA), blur(moved, MASK_SIGMA)
    total = np.maximum(w.sum(axes), 1e-12)
    mass_a, mass_b = (w * pa).sum(axes) / total, (w * pb).sum(axes) / total
    da, db = centred(pa, w, axes), centred(pb, w, axes)
    var_a, var_b = (w * da * da).sum(axes) / total, (w * db * db).sum(axes) / total
    scores = []
    for k in range(n):
        if max(mass_a[k], mass_b[k]) < 1e-4:
            continue  # the label is in neither mask over the overlap
        if min(var_a[k], var_b[k]) > 1e-8:
            scores.append(float((w[k] * da[k] * db[k]).sum() / total[k] / np.sqrt(var_a[k] * var_b[k])))
        else:  # one label share is constant over the overlap: agreeing only if both are, alike
            same = max(var_a[k], var_b[k]) <= 1e-8 and abs(mass_a[k] - mass_b[k]) < 0.1
            scores.append(1.0 if same else 0.0)
    return max(0.0, min(scores)) if scores else 1.0
