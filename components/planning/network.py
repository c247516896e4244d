"""Choose the network for one configuration: width, patch and batch, measured on the device.

For each width nnU-Net would consider (32 filters in the first level, then 16 and 8 for small
budgets), the patch is fitted to the memory budget (:func:`components.planning.topology.fit_patch`),
the batch follows (:func:`plan_batch`), and the candidate is measured; the schedule each could train
in the time budget decides:

- the widest candidate that reaches :data:`TARGET_STEPS` optimiser steps per fold (50 of nnU-Net's
  epochs: most of the way on its learning curves), else
- the widest candidate that keeps at least :data:`KEEP_STEPS` of the narrowest's steps: a wider
  network pays only where its step is barely slower, as on small patches.

A candidate that trains fewer than :data:`TIME_TARGET_STEPS` steps on the whole (memory-fitted)
patch gets a smaller patch first, towards that many steps but at most down to half a case per axis
(:func:`components.planning.topology.time_patch`), kept when it trains more steps: context is worth
more than steps above it, so a wider candidate on such a patch loses to a narrower one that trains
the whole case. The narrowest with no time on a whole case tries its half-case patch before the
plan refuses; the refusal names the smaller minimum of the two.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from components.planning.decision import Decision, PlanError
from components.planning.measure import (
    Candidate,
    MeasureFn,
    Measurement,
    MeasurementCache,
    measured,
    transform_entries,
)
from components.planning.schedule import MIN_FOLD_STEPS, Schedule, TooShort
from components.planning.topology import MemoryModel, fit_patch, time_patch

WIDTHS = (32, 16, 8)
TARGET_STEPS = 12_500
# A whole case is worth more than more steps, down to this many per fold: below it the patch shrinks
# (towards it, at most to half a case per axis). MSD hippocampus reached 0.884 / 0.869 CV Dice with
# 750 steps per fold on about a whole case (README, hand-set run): context first, then steps.
TIME_TARGET_STEPS = 1000
KEEP_STEPS = 0.7
MIN_BATCH = 2
BATCH_SHARE = 0.05  # nnU-Net: one batch holds at most 5 % of the dataset's voxels
CPU_2D_PIXELS = 2 * 256 * 256  # CPU: small 2D patches are batched up to this many pixels
WINDOW_BATCH = 4
MEASURE_ROUNDS = 3  # measured memory over the budget: shrink, measure again (at most this often)


@dataclass(frozen=True)
class Space:
    """What one configuration may choose from, and what is fixed (by the user or the data)."""

    median_shape: tuple[float, ...]  # a median case on the network's grid
    spacing: tuple[float, ...]
    total_voxels: float  # every training case on the network's grid
    in_channels: int
    num_classes: int
    transforms: list[dict[str, Any]]
    device: str
    memory_bytes: float
    model: dict[str, Any] | None = None  # the user's train.model
    patch: tuple[int, ...] | None = None  # the user's train.patch_size
    batch: int | None = None  # the user's train.batch_size


@dataclass(frozen=True)
class Network:
    """The chosen network, its measurement and schedule, and the reasons."""

    model: Decision
    patch: Decision
    batch: Decision
    measurement: Measurement
    schedule: Schedule
    candidates: list[dict[str, Any]]


def plan_batch(space: Space, patch: Sequence[int], fits: Callable[[int], bool]) -> Decision:
    """``train.batch_size`` for ``patch``: at least 2, at most 5 % of the dataset's voxels."""
    voxels = float(math.prod(patch))
    cap = max(MIN_BATCH, int(BATCH_SHARE * space.total_voxels / voxels))
    if space.device == "cuda":
        batch = MIN_BATCH
        while batch < cap and fits(batch + 1):
            batch += 1
        return Decision(
            batch, f"fills the memory budget with {batch} patches (5 % of the data's voxels: {cap})"
        )
    if len(patch) == 3:
        return Decision(
            MIN_BATCH, "2: on the CPU a step's time grows with its batch; small batches give the most steps"
        )
    batch = max(MIN_BATCH, min(cap, CPU_2D_PIXELS // int(voxels)))
    return Decision(
        batch,
        f"{batch}: on the CPU, 2D patches are batched up to two 256 x 256 patches' pixels (5 % cap: {cap})",
    )


def _dynunet(width: int) -> dict[str, Any]:
    return {"name": "dynunet", "kwargs": {"base_filters": width, "deep_supervision": True}}


def _widths(space: Space) -> list[int]:
    if space.model is None:
        return list(WIDTHS)
    if space.model["name"] == "dynunet":
        return [int(space.model.get("kwargs", {}).get("base_filters", 32))]
    return [0]  # another network: measured as the user gave it


def _candidate(
    space: Space, width: int, calibration: float, for_time: tuple[int, ...] | None = None
) -> tuple[dict[str, Any], tuple[int, ...], Decision, Decision]:
    model = space.model or _dynunet(width)
    mem = MemoryModel(
        space.memory_bytes,
        space.batch or MIN_BATCH,
        max(width, 1),
        space.in_channels,
        space.num_classes,
        space.spacing,
        calibration,
    )
    if space.patch is not None:
        patch, patch_reason = space.patch, "yours"
    elif for_time is not None:
        patch = for_time
        patch_reason = (
            "the median case shrunk for time: the budget trains too few steps on a whole case, so the "
            f"patch halves at most per axis (sliding windows cover the rest); {mem.bytes(patch) / 2**30:.2f} "
            f"GB of the {space.memory_bytes / 2**30:.1f} GB budget"
        )
    else:
        patch, shrinks = fit_patch(space.median_shape, space.spacing, mem.fits)
        extent = "the median case" + (" after resampling" if len(patch) == 3 else "")
        how = "" if not shrinks else f", shrunk {shrinks} step(s) along the largest axis in mm to fit memory"
        patch_reason = (
            f"{extent}, each axis a multiple of 2^(its poolings){how}; "
            f"{mem.bytes(patch) / 2**30:.2f} GB of the {space.memory_bytes / 2**30:.1f} GB budget"
        )
    if space.batch is not None:
        batch = Decision(space.batch, "yours")
    else:
        batch = plan_batch(
            space,
            patch,
            lambda b: MemoryModel(
                space.memory_bytes,
                b,
                max(width, 1),
                space.in_channels,
                space.num_classes,
                space.spacing,
                calibration,
            ).fits(patch),
        )
    return model, tuple(patch), Decision(list(patch), patch_reason), batch


def _measure(
    space: Space,
    model: dict[str, Any],
    patch: tuple[int, ...],
    batch: int,
    cache: MeasurementCache | None,
    measure_fn: MeasureFn | None,
) -> Measurement:
    c = Candidate(
        model=str(model["name"]),
        model_kwargs=json.dumps(model.get("kwargs", {}), sort_keys=True),
        patch=patch,
        spacing=space.spacing if len(space.spacing) == len(patch) else None,
        batch=batch,
        in_channels=space.in_channels,
        num_classes=space.num_classes,
        window_batch=WINDOW_BATCH,
        transforms=transform_entries(space.transforms),
    )
    return measured(c, space.device, cache, measure_fn)[0]


def choose_network(
    space: Space,
    schedule_for: Callable[[Measurement, int, list[int]], Schedule],
    cache: MeasurementCache | None,
    measure_fn: MeasureFn | None = None,
) -> Network:
    """Measure every width's candidate and pick one (see the module docstring).

    Args:
        space: The configuration's choices and fixed values.
        schedule_for: The schedule a candidate gets in the time budget (its measurement, batch, patch).
        cache: Where measurements of this machine are kept.

    Raises:
        PlanError: Even the smallest patch does not fit the memory budget.
    """
    options = []
    no_time: list[int] = []  # widths whose schedule does not fit the budget at all
    shrunk: list[int] = []  # widths that train a patch shrunk for time
    for width in _widths(space):
        calibration = 1.0
        for _ in range(MEASURE_ROUNDS):
            model, patch, patch_d, batch_d = _candidate(space, width, calibration)
            m = _measure(space, model, patch, int(batch_d.value), cache, measure_fn)
            if m.memory_bytes <= space.memory_bytes or space.patch is not None:
                break
            calibration *= m.memory_bytes / space.memory_bytes * 1.05
        if m.memory_bytes > space.memory_bytes:
            raise PlanError(
                f"plan.memory_gb {space.memory_bytes / 2**30:.2f}: the smallest patch {list(patch)} needs "
                f"{m.memory_bytes / 2**30:.2f} GB to train; give at least "
                f"{math.ceil(m.memory_bytes / 2**30 * 1.2)}"
            )
        whole: PlanError | None = None
        option = None
        try:
            sched = schedule_for(m, int(batch_d.value), list(patch))
            option = (width, model, patch_d, batch_d, m, sched)
        except PlanError as exc:
            if width != _widths(space)[-1]:
                no_time.append(width)
                continue  # this width does not fit the budget at all: a narrower one may
            if space.patch is not None or time_patch(patch, space.spacing, 0, TIME_TARGET_STEPS) == patch:
                raise
            whole = exc  # the narrowest has no time on a whole case: its smallest patch may
        steps = option[5].steps if option is not None else 0
        smaller = time_patch(patch, space.spacing, steps, TIME_TARGET_STEPS) if space.patch is None else patch
        if smaller != patch:  # too few steps on the whole case: a smaller patch, measured again
            model, patch, patch_d, batch_d = _candidate(space, width, calibration, smaller)
            m = _measure(space, model, patch, int(batch_d.value), cache, measure_fn)
            try:
                sched = schedule_for(m, int(batch_d.value), list(patch))
                if sched.steps > steps:  # kept only when it trains more (its windows cost time too)
                    option = (width, model, patch_d, batch_d, m, sched)
                    shrunk.append(width)
            except TooShort as exc:
                if option is None:  # neither fits: the error of the one that needs less
                    less = (
                        exc if not isinstance(whole, TooShort) or exc.minimum_s < whole.minimum_s else whole
                    )
                    raise less from None
        assert option is not None
        options.append(option)
    chosen, reason = _pick(options, space.model is not None, no_time, shrunk)
    width, model, patch_d, batch_d, m, sched = chosen
    table = [
        {
            "base_filters": w,
            "patch": p.value,
            "batch": b.value,
            "step_s": round(mm.step_s, 4),
            "steps_per_fold": s.steps,
        }
        for w, _, p, b, mm, s in options
    ]
    return Network(Decision(model, reason), patch_d, batch_d, m, sched, table)


def _pick(
    options: list[Any], yours: bool, no_time: Sequence[int] = (), shrunk: Sequence[int] = ()
) -> tuple[Any, str]:
    """The widest option reaching TARGET_STEPS, else the widest keeping KEEP_STEPS of the narrowest's
    (never under MIN_FOLD_STEPS where the narrowest reaches them) and, with its patch ``shrunk`` for
    time, only when no narrower width trains a whole case (``yours``: the user's train.model, the
    one option; ``no_time``: wider widths left out)."""
    if len(options) == 1 and yours:
        width = options[0][0]
        return options[0], "yours" if width == 0 else f"yours ({width} base filters)"
    if len(options) == 1:
        wider = ", ".join(str(w) for w in no_time)
        return options[0], (
            f"nnU-Net's dynamic U-Net, {options[0][0]} base filters: the only width whose schedule fits "
            f"the budget (wider: {wider} base filters, too slow for one epoch per fold), deep supervision"
        )
    for option in options:  # widest first
        if option[5].steps >= TARGET_STEPS:
            return option, (
                f"nnU-Net's dynamic U-Net, {option[0]} base filters: the widest that trains "
                f"{option[5].steps} steps per fold in the budget (>= {TARGET_STEPS}), deep supervision"
            )
    narrowest = options[-1][5].steps
    for i, option in enumerate(options[:-1]):
        if option[0] in shrunk and any(o[0] not in shrunk for o in options[i + 1 :]):
            continue  # context first: half a case only where no narrower width trains a whole one
        if option[5].steps >= max(KEEP_STEPS * narrowest, min(MIN_FOLD_STEPS, narrowest)):
            return option, (
                f"nnU-Net's dynamic U-Net, {option[0]} base filters: no width reaches {TARGET_STEPS} "
                f"steps per fold in the budget; the widest keeping {KEEP_STEPS:.0%} of the narrowest's steps "
                f"({option[5].steps} vs {narrowest}), deep supervision"
            )
    wider = ", ".join(
        f"{o[0]}: {o[5].steps}" + (f" on a patch shrunk for time, {o[2].value}" if o[0] in shrunk else "")
        for o in options[:-1]
    )
    return options[-1], (
        f"nnU-Net's dynamic U-Net, {options[-1][0]} base filters (the narrowest): {narrowest} steps per fold "
        f"in the budget; wider networks would train under {KEEP_STEPS:.0%} of that or on less of a case "
        f"({wider}), deep supervision"
    )
