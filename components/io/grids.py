"""Do two voxel grids agree? Shape, spacing, origin and direction compared within tolerances.
And is a header's geometry a voxel grid at all (:func:`grid_problems`)?

Works on anything with ``spacing``, ``origin`` and ``direction`` tuples (a
:class:`components.io.volumes.Geometry`), so that channel stacking and the validation stage
share one rule and one wording.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np


class HasGeometry(Protocol):
    """Spacing (array-axis order), origin and flattened direction of a grid."""

    @property
    def spacing(self) -> tuple[float, ...]: ...

    @property
    def origin(self) -> tuple[float, ...]: ...

    @property
    def direction(self) -> tuple[float, ...]: ...


# Two grids are "the same" within these tolerances (nnU-Net's and ITK's usual slack for values
# that went through float32 headers): spacing relative, origin in mm, direction cosines absolute.
SPACING_RTOL = 1e-3
ORIGIN_ATOL = 1e-3
DIRECTION_ATOL = 1e-4
GRID_FIELDS: tuple[str, ...] = ("shape", "spacing", "origin", "direction")


@dataclass(frozen=True)
class GridMismatch:
    """One way in which a voxel grid differs from a reference grid.

    Attributes:
        field: ``"shape"``, ``"spacing"``, ``"origin"`` or ``"direction"``.
        value: The compared grid's value.
        reference: The reference grid's value.
    """

    field: str
    value: tuple[float, ...]
    reference: tuple[float, ...]

    def describe(self, name: str, reference_name: str) -> str:
        """E.g. ``"mask spacing (1.0, 1.0, 2.0) != image spacing (1.0, 1.0, 1.0)"``."""
        return (
            f"{name} {self.field} {_fmt(self.value)} != {reference_name} {self.field} {_fmt(self.reference)}"
        )


def _fmt(values: tuple[float, ...]) -> str:
    return str(tuple(v if isinstance(v, int) else round(float(v), 6) for v in values))


def grid_mismatches(
    shape: Sequence[int],
    geometry: HasGeometry,
    reference_shape: Sequence[int],
    reference: HasGeometry,
    fields: Sequence[str] = GRID_FIELDS,
) -> list[GridMismatch]:
    """How the grid ``(shape, geometry)`` differs from ``(reference_shape, reference)``.

    Shapes are spatial (no channel axis). Spacing is compared with relative tolerance
    ``SPACING_RTOL``, origin with ``ORIGIN_ATOL`` mm, direction with ``DIRECTION_ATOL``; values of
    different lengths (a 2D grid against a 3D one) always differ.

    Args:
        shape: Spatial shape of the compared grid, array-axis order.
        geometry: Its geometry.
        reference_shape: Spatial shape of the reference grid.
        reference: The reference geometry.
        fields: Which of ``GRID_FIELDS`` to compare.

    Returns:
        One entry per differing field, in ``fields`` order (empty when the grids agree).
    """
    unknown = sorted(set(fields) - set(GRID_FIELDS))
    if unknown:
        raise ValueError(f"unknown grid fields {unknown}; choose from {GRID_FIELDS}")
    pairs: dict[str, tuple[tuple[float, ...], tuple[float, ...], bool]] = {}
    a_shape, b_shape = tuple(int(s) for s in shape), tuple(int(s) for s in reference_shape)
    pairs["shape"] = (a_shape, b_shape, a_shape == b_shape)
    for name, rtol, atol in (
        ("spacing", SPACING_RTOL, 0.0),
        ("origin", 0.0, ORIGIN_ATOL),
        ("direction", 0.0, DIRECTION_ATOL),
    ):
        a, b = getattr(geometry, name), getattr(reference, name)
        same = len(a) == len(b) and bool(np.allclose(a, b, rtol=rtol, atol=atol))
        pairs[name] = (a, b, same)
    return [GridMismatch(f, pairs[f][0], pairs[f][1]) for f in fields if not pairs[f][2]]


def grid_problems(geometry: HasGeometry) -> list[str]:
    """What makes a header's geometry no voxel grid: spacing that is not a positive finite size,
    an origin or direction with NaN/Inf, a direction whose axes are not unit and orthogonal."""
    spacing = np.asarray(geometry.spacing, dtype=np.float64)
    problems = []
    if not (np.isfinite(spacing).all() and (spacing > 0).all()):
        problems.append(
            f"spacing {geometry.spacing} (array order) is not a positive finite size in mm along every "
            "axis; expected positive voxel sizes: fix the header's spacing or re-export the volume"
        )
    if not np.isfinite(geometry.origin).all():
        problems.append(f"origin {geometry.origin} holds NaN/Inf; expected a position in mm")
    n = len(geometry.spacing)
    direction = np.asarray(geometry.direction, dtype=np.float64).reshape(n, n)
    if not np.isfinite(direction).all() or not np.allclose(direction.T @ direction, np.eye(n), atol=1e-3):
        problems.append(
            f"direction {tuple(round(float(v), 4) for v in direction.ravel())} is not a rotation (axes "
            "not unit length and orthogonal, or NaN/Inf); expected direction cosines: fix the header"
        )
    return problems
