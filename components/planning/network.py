"""Choose the network for one configuration: width, patch and batch, measured on the device.

For each width nnU-Net would consider (32 filters in the first level, then 16 and 8 for small
budgets), the patch is fitted to the memory budget (:func:`components.planning.topology.fit_patch`),
the batch follows (:func:`plan_batch`), and the candidate is measured; 2D images also measure a
U-Net with a ResNet-18 encoder (:mod:`components.planning.encoder`), ranked between 32 and 16
filters. The schedule each could train in the time budget decides:

- the widest candidate that reaches :data:`TARGET_STEPS` optimiser steps per fold (50 of nnU-Net's
  epochs: most of the way on its learning curves), else
- (2D) the ResNet-18-encoder U-Net when it trains :data:`MIN_FOLD_STEPS` per fold on at least
  :data:`ENCODER_COVERAGE` of the median image (a residual encoder learns more per step), with
  fewer folds where that keeps :data:`ENCODER_MIN_FOLDS` of them (the planner's fold rule then
  trains fewer folds further), else
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

from components.planning import encoder
from components.planning.decision import Decision, PlanError
from components.planning.measure import (
    Candidate,
    MeasureFn,
    Measurement,
    MeasurementCache,
    measured,
    transform_entries,
)
from components.planning.numerics import Numerics, choose_numerics
from components.planning.schedule import MIN_FOLD_STEPS, Schedule, TooShort
from components.planning.topology import MemoryModel, fit_patch, time_patch

WIDTHS = (32, 16, 8)
ENCODER_RANK = 16  # 2D: the residual-encoder U-Net is measured before this width (by parameters)
TARGET_STEPS = 12_500
# A whole case is worth more than more steps, down to this many per fold: below it the patch shrinks
# (towards it, at most to half a case per axis). MSD hippocampus reached 0.884 / 0.869 CV Dice with
# 750 steps per fold on about a whole case (README, hand-set run): context first, then steps.
TIME_TARGET_STEPS = 1000
KEEP_STEPS = 0.7
# 2D, short schedules: the residual-encoder U-Net is planned when it trains MIN_FOLD_STEPS per fold on
# a patch holding at least this share of the median image's pixels (about the whole image).
ENCODER_COVERAGE = 0.75
# ... and with fewer folds, down to this many, rather than on a patch shrunk for time: on COVID CT
# (50 slices, 45 min on 2 CPU cores) one fold of the encoder on whole images (1,160 steps) scored
# test threshold-averaged Dice 0.426 / 0.377 where the 8-filter U-Net's 5-fold ensemble (1,920 steps
# each) scored 0.364 / 0.254 (Inf-Net's protocol: 3 encoder folds 0.484 / 0.361, the 5 plain ones
# 0.413 / 0.212). Two, not three: at three the choice sat on the edge there (a step measured 0.60 s
# gave 3 folds of the encoder, 0.66 s the plain U-Net), so a 10 % timing difference flipped the
# network; two folds keep an ensemble and move the edge to two thirds of that budget.
ENCODER_MIN_FOLDS = 2
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
    folds: int = 1  # folds the schedules are planned for (fewer may train: the planner's fold rule)
    folds_yours: bool = False  # the user's train.folds: never fewer
    bf16: bool | None = None  # the user's train.bf16
    channels_last: bool | None = None  # the user's train.channels_last


@dataclass(frozen=True)
class Network:
    """The chosen network, its measurement and schedule, and the reasons."""

    model: Decision
    patch: Decision
    batch: Decision
    measurement: Measurement
    schedule: Schedule
    candidates: list[dict[str, Any]]
    numerics: Numerics


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


class Measurer:
    """Measures candidates of one configuration, each network family in its precision and layout
    (:mod:`components.planning.numerics`, decided on the family's first candidate)."""

    def __init__(self, space: Space, cache: MeasurementCache | None, measure_fn: MeasureFn | None) -> None:
        self.space, self.cache, self.measure_fn = space, cache, measure_fn
        self.families: dict[str, Numerics] = {}

    def _candidate(
        self, model: dict[str, Any], patch: tuple[int, ...], batch: int, mode: tuple[bool, bool], probe: bool
    ) -> Candidate:
        space = self.space
        return Candidate(
            model=str(model["name"]),
            model_kwargs=json.dumps(model.get("kwargs", {}), sort_keys=True),
            patch=patch,
            spacing=space.spacing if len(space.spacing) == len(patch) else None,
            batch=batch,
            in_channels=space.in_channels,
            num_classes=space.num_classes,
            window_batch=0 if probe else WINDOW_BATCH,  # a probe times the training step only
            transforms=() if probe else transform_entries(space.transforms),
            bf16=mode[0],
            channels_last=mode[1],
        )

    def numerics(self, model: dict[str, Any], patch: tuple[int, ...], batch: int) -> Numerics:
        """The family's precision and layout, measured on its first candidate (this one)."""
        family = str(model["name"])
        if family not in self.families:

            def step_at(bf16: bool, channels_last: bool) -> float:
                c = self._candidate(model, patch, batch, (bf16, channels_last), probe=True)
                return measured(c, self.space.device, self.cache, self.measure_fn)[0].step_s

            what = f"the {_label(model)} step on {' x '.join(map(str, patch))} (batch {batch})"
            self.families[family] = choose_numerics(
                self.space.device, step_at, what, self.space.bf16, self.space.channels_last
            )
        return self.families[family]

    def __call__(
        self, model: dict[str, Any], patch: tuple[int, ...], batch: int
    ) -> tuple[Measurement, Numerics]:
        """The candidate's measurement in its family's precision and layout."""
        numerics = self.numerics(model, patch, batch)
        c = self._candidate(model, patch, batch, numerics.mode, probe=False)
        return measured(c, self.space.device, self.cache, self.measure_fn)[0], numerics


def _label(model: dict[str, Any]) -> str:
    width = model.get("kwargs", {}).get("base_filters") if model["name"] == "dynunet" else None
    return f"dynunet {width}" if width else str(model["name"])


@dataclass(frozen=True)
class Option:
    """One measured candidate and the schedule it would train in the budget."""

    width: int  # base filters of a dynamic U-Net; 0: another network (the encoder's, or yours)
    model: dict[str, Any]
    patch: Decision
    batch: Decision
    measurement: Measurement
    schedule: Schedule
    numerics: Numerics
    shrunk: bool = False  # its patch was shrunk for time (less than the whole median case)
    coverage: float = 1.0  # the encoder: its patch's share of the whole median image (widths: `shrunk`)

    @property
    def label(self) -> str:
        """How the plan's table names it."""
        return f"dynunet {self.width}" if self.width else str(self.model["name"])

    @property
    def described(self) -> str:
        """How the plan's reasons name it."""
        if self.model == encoder.ENCODER_MODEL:
            return (
                f"a U-Net with a ResNet-18 encoder ({encoder.ENCODER_PARAMETERS} parameters, residual, "
                "random weights)"
            )
        return f"nnU-Net's dynamic U-Net, {self.width} base filters"

    @property
    def supervision(self) -> str:
        return ", deep supervision" if self.model["name"] == "dynunet" else ""


def _width_option(
    space: Space,
    width: int,
    is_narrowest: bool,
    schedule_for: Callable[[Measurement, int, list[int]], Schedule],
    measure: Measurer,
) -> Option | None:
    """The dynamic U-Net of ``width`` (or the user's network) fitted to memory and time; None when
    its schedule does not fit the budget at all and a narrower width may."""
    calibration = 1.0
    for _ in range(MEASURE_ROUNDS):
        model, patch, patch_d, batch_d = _candidate(space, width, calibration)
        m, numerics = measure(model, patch, int(batch_d.value))
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
        option = Option(width, model, patch_d, batch_d, m, sched, numerics)
    except PlanError as exc:
        if not is_narrowest:
            return None  # this width does not fit the budget at all: a narrower one may
        if space.patch is not None or time_patch(patch, space.spacing, 0, TIME_TARGET_STEPS) == patch:
            raise
        whole = exc  # the narrowest has no time on a whole case: its smallest patch may
    steps = option.schedule.steps if option is not None else 0
    smaller = time_patch(patch, space.spacing, steps, TIME_TARGET_STEPS) if space.patch is None else patch
    if smaller != patch:  # too few steps on the whole case: a smaller patch, measured again
        model, patch, patch_d, batch_d = _candidate(space, width, calibration, smaller)
        m, numerics = measure(model, patch, int(batch_d.value))
        try:
            sched = schedule_for(m, int(batch_d.value), list(patch))
            if sched.steps > steps:  # kept only when it trains more (its windows cost time too)
                option = Option(width, model, patch_d, batch_d, m, sched, numerics, shrunk=True)
        except TooShort as exc:
            if option is None:  # neither fits: the error of the one that needs less
                less = exc if not isinstance(whole, TooShort) or exc.minimum_s < whole.minimum_s else whole
                raise less from None
    assert option is not None
    return option


def _encoder_option(
    space: Space,
    schedule_for: Callable[[Measurement, int, list[int]], Schedule],
    measure: Measurer,
) -> Option | None:
    """The ResNet-18-encoder U-Net (:mod:`components.planning.encoder`) on the whole median image,
    shrunk to fit memory, then for time; None when it fits neither."""
    model = encoder.ENCODER_MODEL
    whole = encoder.whole_patch(space.median_shape)

    def option_at(patch: tuple[int, ...], extent: str, shrunk: bool) -> tuple[Option | None, Measurement]:
        batch = Decision(space.batch, "yours") if space.batch else plan_batch(space, patch, lambda _: True)
        m, numerics = measure(model, patch, int(batch.value))
        reason = (
            f"{extent}, each axis a multiple of {encoder.DIVISOR} (the encoder halves five times); "
            f"{m.memory_bytes / 2**30:.2f} GB of the {space.memory_bytes / 2**30:.1f} GB budget (measured)"
        )
        try:
            sched = schedule_for(m, int(batch.value), list(patch))
        except PlanError:
            return None, m
        coverage = math.prod(patch) / math.prod(whole)
        return Option(0, model, Decision(list(patch), reason), batch, m, sched, numerics, shrunk, coverage), m

    patch = whole
    extent = "the median image"
    for _ in range(MEASURE_ROUNDS):
        option, m = option_at(patch, extent, False)
        if m.memory_bytes <= space.memory_bytes:
            break
        fitted = encoder.memory_patch(patch, m.memory_bytes * 1.05, space.memory_bytes)
        if fitted is None:
            return None
        patch, extent = fitted, "the median image shrunk to fit memory"
    if m.memory_bytes > space.memory_bytes:
        return None
    steps = option.schedule.steps if option is not None else 0
    if option is not None and _with_fewer_folds(steps, space.folds, space.folds_yours) is not None:
        return option  # context first: fewer folds train the whole image rather than all on less of it
    # too few steps on the whole image: smaller patches, each measured (a step's time does not shrink
    # quite with its pixels, so the first guess may fall short of the target)
    extent = "the median image shrunk for time (at most to half per axis; sliding windows cover the rest)"
    current = patch
    for _ in range(MEASURE_ROUNDS):
        smaller = encoder.time_patch(current, steps, TIME_TARGET_STEPS, whole=patch)
        found = option_at(smaller, extent, True)[0] if smaller != current else None
        if found is None:
            break
        if option is None or found.schedule.steps > option.schedule.steps:
            option = found
        current, steps = smaller, found.schedule.steps
    return option


def choose_network(
    space: Space,
    schedule_for: Callable[[Measurement, int, list[int]], Schedule],
    cache: MeasurementCache | None,
    measure_fn: MeasureFn | None = None,
) -> Network:
    """Measure every width's candidate (2D: and the residual-encoder U-Net) and pick one (see the
    module docstring).

    Args:
        space: The configuration's choices and fixed values.
        schedule_for: The schedule a candidate gets in the time budget (its measurement, batch, patch).
        cache: Where measurements of this machine are kept.

    Raises:
        PlanError: Even the smallest patch does not fit the memory budget.
    """
    widths = _widths(space)
    measure = Measurer(space, cache, measure_fn)
    options: list[Option] = []
    no_time: list[str] = []  # candidates whose schedule does not fit the budget at all
    for width in widths:
        if width == ENCODER_RANK and space.model is None and encoder.applies(space.median_shape):
            found = _encoder_option(space, schedule_for, measure)
            if found is None:
                no_time.append("the ResNet-18-encoder U-Net")
            else:
                options.append(found)
        option = _width_option(space, width, width == widths[-1], schedule_for, measure)
        if option is None:
            no_time.append(f"{width} base filters")
        else:
            options.append(option)
    chosen, reason = _pick(options, space.model is not None, no_time, (space.folds, space.folds_yours))
    table = [
        {
            "network": o.label,
            "base_filters": o.width or None,
            "patch": o.patch.value,
            "batch": o.batch.value,
            "step_s": round(o.measurement.step_s, 4),
            "steps_per_fold": o.schedule.steps,
            "bf16": o.numerics.mode[0],
            "channels_last": o.numerics.mode[1],
        }
        for o in options
    ]
    return Network(
        Decision(chosen.model, reason),
        chosen.patch,
        chosen.batch,
        chosen.measurement,
        chosen.schedule,
        table,
        chosen.numerics,
    )


def _with_fewer_folds(steps: int, folds: int, fixed: bool) -> int | None:
    """Folds (>= ENCODER_MIN_FOLDS) that would each train MIN_FOLD_STEPS where ``folds`` train
    ``steps`` each; ``folds`` itself when they do; None when not even ENCODER_MIN_FOLDS would (or
    ``fixed``: the user's folds, never fewer)."""
    if steps >= MIN_FOLD_STEPS:
        return folds
    if fixed:
        return None
    fewer = steps * folds // MIN_FOLD_STEPS
    return fewer if fewer >= min(folds, ENCODER_MIN_FOLDS) else None


def _preferred_encoder(options: Sequence[Option], folds: int, fixed: bool) -> tuple[Option, str] | None:
    """On a short schedule, the residual-encoder U-Net when it trains MIN_FOLD_STEPS per fold (with
    ``folds``, or with fewer, down to ENCODER_MIN_FOLDS) on at least ENCODER_COVERAGE of the median
    image: it learns more per step than the plain U-Net."""
    for option in options:
        if option.model != encoder.ENCODER_MODEL or option.coverage < ENCODER_COVERAGE:
            continue
        k = _with_fewer_folds(option.schedule.steps, folds, fixed)
        if k is None:
            continue
        steps = (
            f"{option.schedule.steps} steps per fold (>= {MIN_FOLD_STEPS})"
            if k == folds
            else f"about {option.schedule.steps * folds // k} steps per fold with {k} folds instead of "
            f"{option.schedule.steps} with {folds} (fewer folds trained further: train.folds)"
        )
        return option, (
            f"{option.described}: no candidate reaches {TARGET_STEPS} steps per fold in the budget; "
            f"on a short schedule a residual encoder learns more per step than the plain U-Net, and "
            f"it trains {steps} on {option.coverage:.0%} of the median image"
        )
    return None


def _pick(
    options: list[Option], yours: bool, no_time: Sequence[str] = (), folds: tuple[int, bool] = (1, True)
) -> tuple[Option, str]:
    """The widest option reaching TARGET_STEPS, else the widest keeping KEEP_STEPS of the narrowest's
    (never under MIN_FOLD_STEPS where the narrowest reaches them) and, with its patch shrunk for
    time, only when no narrower option trains a whole case (``yours``: the user's train.model, the
    one option; ``no_time``: wider candidates left out)."""
    if len(options) == 1 and yours:
        width = options[0].width
        return options[0], "yours" if width == 0 else f"yours ({width} base filters)"
    if len(options) == 1:
        only = options[0]
        return only, (
            f"{only.described}: the only candidate whose schedule fits the budget (wider: "
            f"{', '.join(no_time)}, too slow for one epoch per fold){only.supervision}"
        )
    for option in options:  # widest first
        if option.schedule.steps >= TARGET_STEPS:
            return option, (
                f"{option.described}: the widest that trains {option.schedule.steps} steps per fold in "
                f"the budget (>= {TARGET_STEPS}){option.supervision}"
            )
    preferred = _preferred_encoder(options, *folds)
    if preferred is not None:
        return preferred
    narrowest = options[-1].schedule.steps
    for i, option in enumerate(options[:-1]):
        if option.shrunk and any(not o.shrunk for o in options[i + 1 :]):
            continue  # context first: half a case only where no narrower option trains a whole one
        if option.schedule.steps >= max(KEEP_STEPS * narrowest, min(MIN_FOLD_STEPS, narrowest)):
            return option, (
                f"{option.described}: no candidate reaches {TARGET_STEPS} steps per fold in the budget; "
                f"the widest keeping {KEEP_STEPS:.0%} of the narrowest's steps ({option.schedule.steps} "
                f"vs {narrowest}){option.supervision}"
            )
    wider = ", ".join(
        f"{o.label}: {o.schedule.steps}" + (f" on a patch shrunk for time, {o.patch.value}" * o.shrunk)
        for o in options[:-1]
    )
    last = options[-1]
    return last, (
        f"{last.described} (the narrowest): {narrowest} steps per fold in the budget; wider networks "
        f"would train under {KEEP_STEPS:.0%} of that or on less of a case ({wider}){last.supervision}"
    )
