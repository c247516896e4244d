"""Geometry checks of one case: image, mask and every image channel on one voxel grid.

A mask only labels its image when both lie on the same grid: equal shape (the ``size_match``
check owns that), and equal spacing, origin and direction (the ``geometry_match`` check), within
the tolerances of :func:`components.io.grid_mismatches`. Each problem is one message naming the
case and both values, e.g. ``case hip_003: mask spacing (1.0, 1.0, 2.0) != image spacing
(1.0, 1.0, 1.0)``. 2D formats carry no geometry, so only volume pairs are compared beyond shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from components.io import ChannelGridError, Geometry, GridMismatch, grid_mismatches

GEOMETRY_FIELDS: tuple[str, ...] = ("spacing", "origin", "direction")


@dataclass(frozen=True)
class Grid:
    """Where one file's voxels lie.

    Attributes:
        shape: Spatial shape, array-axis order (no channel axis).
        geometry: Spacing (array order), origin and direction.
        volume: Read from a volume format (NIfTI/NRRD/MHA); False for 2D formats, whose
            geometry is the identity by convention and not compared.
    """

    shape: tuple[int, ...]
    geometry: Geometry
    volume: bool


def join_values(values: Sequence[float]) -> str:
    """A manifest cell for a shape or spacing: ``"35,51,35"``, ``"1.0,1.0,2.5"``."""
    return ",".join(str(v) if isinstance(v, int) else str(round(float(v), 6)) for v in values)


def split_shape(cell: object) -> tuple[int, ...] | None:
    """Inverse of ``join_values`` for a shape cell; None for an empty or null cell."""
    if not isinstance(cell, str) or not cell:
        return None
    return tuple(int(v) for v in cell.split(","))


def shape_problem(case_id: str, mask_shape: Sequence[int], image_shape: Sequence[int]) -> str:
    """The message for a mask whose shape differs from its image's ("" when they agree)."""
    mask, image = tuple(int(v) for v in mask_shape), tuple(int(v) for v in image_shape)
    if mask == image:
        return ""
    return f"case {case_id}: " + GridMismatch("shape", mask, image).describe("mask", "image")


def mask_geometry_problems(case_id: str, mask: Grid, image: Grid) -> list[str]:
    """Spacing/origin/direction differences between a volume mask and its volume image."""
    if not (mask.volume and image.volume) or len(mask.shape) != len(image.shape):
        return []
    found = grid_mismatches(mask.shape, mask.geometry, image.shape, image.geometry, GEOMETRY_FIELDS)
    return [f"case {case_id}: {m.describe('mask', 'image')}" for m in found]


def channel_problems(case_id: str, error: ChannelGridError, channel_file: str) -> list[str]:
    """One message per grid field in which a case's channel differs from its first channel.

    Args:
        case_id: The case.
        error: What ``read_case_channels`` raised.
        channel_file: The offending file as the manifest names it.
    """
    name = f"channel {error.channel} ({channel_file})"
    return [f"case {case_id}: {m.describe(name, 'channel 0')}" for m in error.mismatches]
