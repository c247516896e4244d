"""Which axes augmentation may mirror: every axis (nnU-Net's rule), except one along which two
classes keep one order in (nearly) every case.

Mirroring assumes the task does not change when an axis is reversed. Where two foreground classes
keep their order along an axis (the head of an organ always before its tail, say), a mirrored patch
shows an arrangement no case has, and the network must learn to name each class from its shape
alone; test-time mirroring then averages predictions that disagree about which class is which.
An axis is *directional* when, for some pair of classes present together in at least
:data:`MIN_CASES` cases, the reverse order occurs in at most :data:`REVERSE_SHARE` of them (cases
where the two centres are level count against the order). Axes with the reverse order in more
cases are mirrored: the network meets both arrangements in real cases anyway.

Reads the fingerprint's ``class_layout`` (:mod:`components.validation.class_layout`); a fingerprint
without one (a single foreground class, or written before it existed) mirrors every axis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from components.planning.decision import Decision

MIN_CASES = 10  # cases holding both classes before an order counts as evidence
REVERSE_SHARE = 0.05  # at most this share of those cases in the other order (or level)


@dataclass(frozen=True)
class Order:
    """Two classes' order along one axis: ``first`` before ``second`` in ``share`` of ``cases``."""

    axis: int
    first: str
    second: str
    share: float
    cases: int


def directional_axes(layout: Mapping[str, Any] | None, ndim: int) -> dict[int, Order]:
    """The array axes along which some pair of classes keeps one order, with the clearest pair."""
    found: dict[int, Order] = {}
    if not layout:
        return found
    keys = ("pairs", "cases", "before", "after")
    rows = zip(*(layout.get(k, []) for k in keys), strict=True)
    for (a, b), n, before, after in rows:
        if n < MIN_CASES or len(before) != ndim:
            continue
        for axis in range(ndim):
            share, first, second = max((before[axis] / n, a, b), (after[axis] / n, b, a))
            if share >= 1.0 - REVERSE_SHARE and (axis not in found or share > found[axis].share):
                found[axis] = Order(axis, str(first), str(second), share, int(n))
    return found


def plan_mirror_axes(layout: Mapping[str, Any] | None, ndim: int, volume_axes: Sequence[int]) -> Decision:
    """The patch axes augmentation may mirror, for data of ``ndim`` axes whose patch axis ``i``
    runs along the data's axis ``volume_axes[i]`` (2D slices of volumes leave one out)."""
    orders = directional_axes(layout, ndim)
    kept = [i for i, a in enumerate(volume_axes) if a not in orders]
    if len(kept) == len(volume_axes):
        return Decision(kept, "every axis: no pair of classes keeps one order along any of them")
    why = "; ".join(
        f"not axis {i}: {o.first} lies before {o.second} along it in {o.share:.0%} of the {o.cases} "
        "cases with both (a mirrored patch would show an order no case has)"
        for i, a in enumerate(volume_axes)
        if (o := orders.get(a)) is not None
    )
    return Decision(kept, f"axes {kept} only; {why}" if kept else f"none; {why}")
