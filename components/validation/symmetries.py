"""The symmetries near-duplicate search tries: how a copy may have been turned relative to its original.

2D: the 8 symmetries of the square (flips, rotations by 90/180/270, transpositions). 3D: the 8 of the
square acting on the in-plane axes (Y, X), each with or without a flip of Z: 16. A copy turned onto
another axis (Z swapped with Y or X) is not searched: volumes are usually anisotropic along Z, and
such a copy would come with another spacing.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

NAMES_2D = ("identity", "flip_v", "flip_h", "rot180", "transpose", "rot90", "rot270", "anti_transpose")


@dataclass(frozen=True)
class Symmetry:
    """``x -> flip(transpose(x, perm), flips)`` on the spatial axes of a batch ``(N, *S)``.

    Attributes:
        name: 2D: ``identity, flip_v`` (upside down), ``flip_h`` (left-right), ``rot180, transpose,
            rot90`` (``np.rot90``), ``rot270, anti_transpose``. 3D: ``identity``, ``flip_`` + the
            flipped axes (``flip_zx``), ``transpose_yx`` (Y and X swapped) or both
            (``transpose_yx+flip_z``: swapped, then flipped).
        perm: Spatial axis order.
        flips: Spatial axes flipped after the transposition.
    """

    name: str
    perm: tuple[int, ...]
    flips: tuple[int, ...]

    def apply(self, batch: np.ndarray) -> np.ndarray:
        """Shape: ``(N, *S)`` -> ``(N, *S)`` (the spatial axes permuted and flipped)."""
        out = np.transpose(batch, (0, *(p + 1 for p in self.perm)))
        return np.flip(out, tuple(f + 1 for f in self.flips)) if self.flips else out


def symmetries(ndim: int) -> list[Symmetry]:
    """The symmetries searched for ``ndim`` (2 or 3) spatial axes, the identity first."""
    flips = [f for k in range(ndim + 1) for f in itertools.combinations(range(ndim), k)]
    if ndim == 2:
        perms = [p for p in ((0, 1), (1, 0)) for _ in flips]
        return [Symmetry(n, p, f) for n, p, f in zip(NAMES_2D, perms, flips * 2, strict=True)]
    out = []
    for perm in ((0, 1, 2), (0, 2, 1)):
        for f in flips:
            parts = (["transpose_yx"] if perm != (0, 1, 2) else []) + (
                ["flip_" + "".join("zyx"[a] for a in f)] if f else []
            )
            out.append(Symmetry("+".join(parts) or "identity", perm, f))
    return out


def inverses(syms: list[Symmetry], ndim: int) -> np.ndarray:
    """Index of each symmetry's inverse in ``syms`` (found by applying them to an index grid)."""
    grid = np.arange(3**ndim).reshape(1, *(3,) * ndim)
    images = [g.apply(grid) for g in syms]
    out = np.empty(len(syms), np.intp)
    for k, g in enumerate(images):
        out[k] = next(h for h, sym in enumerate(syms) if np.array_equal(sym.apply(g), grid))
    return out
