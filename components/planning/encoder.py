"""The residual-encoder candidate for 2D images: a U-Net whose encoder is a ResNet-18.

nnU-Net's own revisit of its benchmarks (Isensee et al., 2024) found U-Nets with residual encoders
ahead of the plain one for the same compute. On a CPU a ResNet-18 encoder is cheap for its 14 M
parameters: its stem halves the image twice before the first residual stage, so its wide layers run
on a sixteenth of the pixels, and a step on a 2D patch costs about what a 16-filter dynamic U-Net's
does. The planner measures it beside the dynamic U-Net's widths and the same rules choose
(:mod:`components.planning.network`), ranked between 32 and 16 filters by its parameters.

Its patch: every axis a multiple of :data:`DIVISOR` (the encoder halves five times), the median
image rounded up, shrunk by one multiple at a time along the longer axis for memory or for time
(for time at most to half the image per axis, as the dynamic U-Net's). Images narrower than
:data:`MIN_SIDE` on an axis get no encoder candidate: its deepest features would be under 2 pixels
across and most of the patch padding. Volumes get none (the encoder is 2D).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

ENCODER_MODEL: dict[str, Any] = {"name": "unet_resnet18", "kwargs": {"encoder_weights": None}}
ENCODER_PARAMETERS = "14 M"
DIVISOR = 32
MIN_SIDE = 2 * DIVISOR


def applies(median_shape: Sequence[float]) -> bool:
    """Whether images of ``median_shape`` get the encoder candidate (2D, >= MIN_SIDE per axis)."""
    return len(median_shape) == 2 and min(median_shape) >= MIN_SIDE


def whole_patch(median_shape: Sequence[float]) -> tuple[int, ...]:
    """The median image, each axis rounded up to a multiple of :data:`DIVISOR`."""
    return tuple(DIVISOR * max(1, math.ceil(round(s) / DIVISOR)) for s in median_shape)


def _shrink(patch: Sequence[int], floor: Sequence[int]) -> tuple[int, ...] | None:
    """``patch`` one multiple smaller along its longest axis that stays above ``floor``."""
    for axis in sorted(range(len(patch)), key=lambda a: -patch[a]):
        if patch[axis] - DIVISOR >= floor[axis]:
            return tuple(p - DIVISOR if a == axis else p for a, p in enumerate(patch))
    return None


def memory_patch(patch: Sequence[int], measured_bytes: float, budget_bytes: float) -> tuple[int, ...] | None:
    """The largest smaller patch whose memory, scaled from ``measured_bytes`` at ``patch`` by its
    pixels, fits ``budget_bytes``; None when even :data:`MIN_SIDE` per axis does not."""
    current: tuple[int, ...] | None = tuple(patch)
    floor = [MIN_SIDE] * len(patch)
    while current is not None and measured_bytes * math.prod(current) / math.prod(patch) > budget_bytes:
        current = _shrink(current, floor)
    return current


def time_patch(
    patch: Sequence[int], steps: int, target: int, whole: Sequence[int] | None = None
) -> tuple[int, ...]:
    """A smaller patch when ``patch`` trains only ``steps`` of ``target`` in the budget: shrunk until
    the steps it would train (a step's time grows with its pixels) reach ``target``, at most to half
    of ``whole`` (default: ``patch``) per axis."""
    floor = [max(MIN_SIDE, DIVISOR * math.ceil(p / 2 / DIVISOR)) for p in (whole or patch)]
    current = tuple(patch)
    while steps * math.prod(patch) / math.prod(current) < target:
        smaller = _shrink(current, floor)
        if smaller is None:
            break
        current = smaller
    return current
