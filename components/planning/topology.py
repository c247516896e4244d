"""The network's shape: patch size, pooling per axis, width, and their memory.

The network is nnU-Net's: a dynamic U-Net (``dynunet``) whose strides and kernels per level follow
the patch and the spacing (:func:`components.models.monai_nets.dynunet_topology`: an axis pools
while its feature map stays >= 4 voxels, and a coarse axis waits until the in-plane spacing catches
up). The patch starts as the median case after resampling (the whole image where it fits), each
axis rounded up to a multiple of 2^(its poolings); while the estimated training memory exceeds the
budget, the axis with the largest extent in millimetres shrinks by one pooling step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from components.models.monai_nets import dynunet_topology

MAX_FILTERS = {2: 512, 3: 320}  # nnU-Net's caps per dimension
MIN_PATCH = {2: 32, 3: 16}  # below this on every axis a U-Net sees too little context
BYTES_PER_VALUE = 4  # float32 activations (bf16 autocast on CUDA keeps masters in float32)
# Activations a training step keeps per feature-map value of a level, encoder and decoder together
# (two conv blocks of conv + norm + activation each, the upsampled map and the skip concatenation);
# calibrated against measured saved tensors of MONAI's DynUNet (components/planning/measure.py).
SAVED_PER_VALUE = 12.0


@dataclass(frozen=True)
class Topology:
    """A candidate network: its patch, per-level strides and kernels, and per-level filters."""

    patch: tuple[int, ...]
    spacing: tuple[float, ...]
    strides: list[list[int]]
    kernels: list[list[int]]
    filters: list[int]

    @property
    def divisors(self) -> tuple[int, ...]:
        """2^(poolings) per axis: each patch axis must be a multiple of it."""
        return tuple(math.prod(s[a] for s in self.strides) for a in range(len(self.patch)))


def topology(patch: Sequence[int], spacing: Sequence[float], base_filters: int) -> Topology:
    """The dynamic U-Net for ``patch`` at ``spacing`` with ``base_filters`` in its first level."""
    kernels, strides = dynunet_topology(patch, spacing)
    cap = MAX_FILTERS[len(patch)]
    filters = [min(base_filters * 2**i, cap) for i in range(len(strides))]
    return Topology(tuple(int(p) for p in patch), tuple(float(s) for s in spacing), strides, kernels, filters)


def round_up(patch: Sequence[int], spacing: Sequence[float]) -> tuple[int, ...]:
    """Round each axis up to a multiple of 2^(its poolings) (the U-Net's down- and upsampling
    must meet); repeats until the topology of the rounded patch agrees with its divisors."""
    current = tuple(int(p) for p in patch)
    for _ in range(8):
        div = topology(current, spacing, 1).divisors
        rounded = tuple(int(math.ceil(p / d) * d) for p, d in zip(current, div, strict=True))
        if rounded == current:
            return current
        current = rounded
    return current


def activation_bytes(t: Topology, batch: int, in_channels: int, num_classes: int) -> float:
    """Estimated memory a training step keeps for the backward pass (activations, all levels).

    Shape: patch ``t.patch``; memory scales with batch x voxels x filters per level.
    """
    voxels = float(math.prod(t.patch))
    total = voxels * (in_channels + num_classes)
    for stride, f in zip(t.strides, t.filters, strict=True):
        voxels /= math.prod(stride)
        total += voxels * f * SAVED_PER_VALUE
    return total * batch * BYTES_PER_VALUE


def parameter_count(t: Topology, in_channels: int, num_classes: int) -> int:
    """Weights of the U-Net (two convs per level in the encoder and the decoder, transposed convs)."""
    n, previous = 0, in_channels
    for kernel, f in zip(t.kernels, t.filters, strict=True):
        k = math.prod(kernel)
        n += previous * f * k + f * f * k  # encoder block
        n += 2 * f * f * k + f * f * k  # decoder block (skip concatenation doubles the input)
        previous = f
    return n + t.filters[0] * num_classes


def training_bytes(t: Topology, batch: int, in_channels: int, num_classes: int, calibration: float) -> float:
    """Estimated peak memory of a training step: activations (times the measured calibration) plus
    weights, gradients and two optimiser buffers."""
    weights = parameter_count(t, in_channels, num_classes) * BYTES_PER_VALUE * 4
    return activation_bytes(t, batch, in_channels, num_classes) * calibration + weights


def initial_patch(median_shape: Sequence[float], spacing: Sequence[float]) -> tuple[int, ...]:
    """The median case after resampling, rounded up to the U-Net's divisors (the whole image)."""
    return round_up([max(1, round(s)) for s in median_shape], spacing)


def shrink_once(patch: Sequence[int], spacing: Sequence[float]) -> tuple[int, ...] | None:
    """The patch one step smaller: the axis with the largest extent in mm loses one divisor (and
    is rounded again); None when no axis can shrink without going below :data:`MIN_PATCH`."""
    floor = MIN_PATCH[len(patch)]
    div = topology(patch, spacing, 1).divisors
    for axis in sorted(range(len(patch)), key=lambda a: -patch[a] * spacing[a]):
        smaller = list(patch)
        smaller[axis] = patch[axis] - div[axis]
        if smaller[axis] < floor:
            continue
        shrunk = round_up(smaller, spacing)
        if math.prod(shrunk) < math.prod(patch):
            return shrunk
    return None


@dataclass(frozen=True)
class MemoryModel:
    """Estimated training memory of a patch for one network width and batch, against a budget."""

    budget_bytes: float
    batch: int
    base_filters: int
    in_channels: int
    num_classes: int
    spacing: tuple[float, ...]
    calibration: float = 1.0  # measured / estimated activations (components/planning/measure.py)

    def bytes(self, patch: Sequence[int]) -> float:
        """Estimated peak training memory at ``patch``."""
        t = topology(patch, self.spacing, self.base_filters)
        return training_bytes(t, self.batch, self.in_channels, self.num_classes, self.calibration)

    def fits(self, patch: Sequence[int]) -> bool:
        """Whether ``patch`` fits the budget."""
        return self.bytes(patch) <= self.budget_bytes


def fit_patch(
    median_shape: Sequence[float], spacing: Sequence[float], fits: Callable[[Sequence[int]], bool]
) -> tuple[tuple[int, ...], int]:
    """The largest patch from :func:`initial_patch` down that ``fits``; returns it and how many
    times it was shrunk. The smallest patch is returned even when it does not fit (the caller
    checks and says so)."""
    patch = initial_patch(median_shape, spacing)
    shrinks = 0
    while not fits(patch):
        smaller = shrink_once(patch, spacing)
        if smaller is None:
            break
        patch, shrinks = smaller, shrinks + 1
    return patch, shrinks


def time_patch(patch: Sequence[int], spacing: Sequence[float], steps: int, target: int) -> tuple[int, ...]:
    """A smaller patch when ``patch`` trains only ``steps`` of ``target`` steps in the budget.

    A step's time grows with the patch's voxels, so the patch shrinks (one pooling step at a time,
    largest extent in mm first) until the steps it would train reach ``target``, but never below half
    of ``patch`` on any axis: a network still sees at least half a median case at once, and the
    sliding window covers the rest at inference.
    """
    floor = [max(math.ceil(p / 2), min(MIN_PATCH[len(patch)], p)) for p in patch]
    current = tuple(int(p) for p in patch)
    while steps * math.prod(patch) / math.prod(current) < target:
        smaller = shrink_once(current, spacing)
        if smaller is None or any(s < f for s, f in zip(smaller, floor, strict=True)):
            break
        current = smaller
    return current
