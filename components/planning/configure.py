"""Plan one configuration's network, schedule and inference.

- :func:`plan_patch` (native resolution, the plan's own mode): nnU-Net's recipe, the network chosen
  and measured by :mod:`components.planning.network`, epochs and steps fitted to the budget.
- :func:`plan_resized` (``preprocess.spatial_mode`` resize / pad / letterbox, set by the user): every
  image brought to ``preprocess.image_size``; the plan fills in what is still ``auto`` (a 2D U-Net with
  a ResNet-18 encoder, the batch, the epochs in the budget).
"""

from __future__ import annotations

import math
from typing import Any

from components.planning import encoder, recipe
from components.planning.context import Context, Trained
from components.planning.decision import Decision, PlanError
from components.planning.measure import Measurement
from components.planning.mirroring import plan_mirror_axes
from components.planning.network import WINDOW_BATCH, Measurer, Space, choose_network, plan_batch
from components.planning.schedule import (
    Costs,
    Schedule,
    Workload,
    fit_schedule,
    fixed_seconds,
    inference_seconds,
    minimum_seconds,
    step_seconds,
    too_short,
)

TTA_SHARE = 0.15  # test-time mirroring may take at most this share of the budget


def workload(ctx: Context, shape: tuple[float, ...], patch: list[int], overlap: float, tta: int) -> Workload:
    """The run's work for a median case of ``shape`` in windows of ``patch`` (none: whole)."""
    from components.windowing import WindowSettings, count_windows

    size = [round(s) for s in shape]
    windows = count_windows(size, WindowSettings(tuple(patch), overlap=overlap)) if patch else 1
    facts = ctx.facts
    return Workload(
        n_folds=ctx.n_folds,
        n_train=facts.n_train,
        n_test=facts.n_test,
        windows_per_case=float(windows),
        megavoxels=float(facts.shapes.prod(axis=1).sum()) * facts.channels / 1e6,
        tta_variants=tta,
        window_batch=WINDOW_BATCH,
        measuring_s=ctx.cache.measuring_seconds() if ctx.cache is not None else 0.0,
    )


def _per_fold(ctx: Context, w: Workload, costs: Costs, tta: int) -> float:
    """Seconds one fold may train once everything else is paid for (the error when none)."""
    fixed = sum(fixed_seconds(w, costs, ctx.budget.device, tta).values())
    per_fold = (ctx.budget.seconds - fixed) / ctx.n_folds
    if per_fold <= 0:
        raise too_short(
            ctx.budget.seconds, minimum_seconds(w, costs, ctx.budget.device), f"{ctx.n_folds} fold(s)"
        )
    return per_fold


def _mirroring(ctx: Context, w: Workload, costs: Costs, n: int) -> tuple[float, bool]:
    """Seconds the test set's inference takes with ``n`` mirrored variants by every fold, and
    whether that is within :data:`TTA_SHARE` of the budget."""
    full = inference_seconds(w, costs, w.n_test, n, w.n_folds)
    return full, full <= TTA_SHARE * ctx.budget.seconds


def _plan_tta(ctx: Context, m: Measurement, w: Workload, batch: int, mirror: list[int], room: bool) -> int:
    """``ensemble.tta`` / ``tta_axes``: mirroring along the augmentation's axes unless it would take
    more than :data:`TTA_SHARE` of the budget, or leave no ``room`` for one epoch per fold; returns
    the variants per window."""
    v = ctx.values
    n = 2 ** len(mirror)
    full, within = _mirroring(ctx, w, Costs(m.step_s, m.aug_s, batch, m.window_s), n)
    if not mirror:
        d = Decision(False, "the augmentation mirrors no axis")
    elif within and room:
        d = Decision(True, f"{n} mirrored variants (the axes the augmentation mirrored): about {full:.0f} s")
    elif not room:
        d = Decision(False, f"{n} mirrored variants (about {full:.0f} s) would leave no time for training")
    else:
        d = Decision(
            False, f"{n} mirrored variants would take about {full:.0f} s, over {TTA_SHARE:.0%} of the budget"
        )
    on = bool(v.set("ensemble.tta", d))
    axes = v.set("ensemble.tta_axes", Decision(mirror or None, "the axes the augmentation mirrored"))
    return 2 ** len(list(axes if axes is not None else mirror)) if on else 1


def _schedule_values(ctx: Context, sched: Schedule, m: Measurement) -> tuple[int, int, int]:
    """``train.epochs``, ``iterations_per_epoch`` and ``val_every`` from the schedule."""
    v = ctx.values
    why = f"{sched.steps} steps per fold fit the budget at {m.step_s:.3f} s per step (measured)"
    epochs = int(
        v.set(
            "train.epochs", Decision(sched.epochs, f"{sched.epochs} of {sched.steps_per_epoch} steps: {why}")
        )
    )
    steps = int(
        v.set(
            "train.iterations_per_epoch",
            Decision(sched.steps_per_epoch, "nnU-Net's 250 per epoch, fewer when under 20 epochs fit"),
        )
    )
    val_every = int(
        v.set(
            "train.val_every",
            Decision(sched.val_every, f"validation ({sched.val_s:.0f} s a pass) within 10 % of the fold"),
        )
    )
    return epochs, steps, val_every


def _mirror_axes(ctx: Context, patch_ndim: int) -> Decision:
    """The patch axes augmentation may mirror (2D slices of volumes leave the coarse axis out)."""
    ndim = ctx.facts.ndim
    axes = [a for a in range(ndim) if not (ndim == 3 and patch_ndim == 2 and a == ctx.coarse_axis)]
    return plan_mirror_axes(ctx.facts.fingerprint.get("class_layout"), ndim, axes)


def plan_patch(ctx: Context, patch_ndim: int) -> Trained:
    """The native-resolution configuration with ``patch_ndim``-D patches (2D on volumes: slices
    along the coarse axis)."""
    v, facts = ctx.values, ctx.facts
    shape, spacing = ctx.median_shape, ctx.spacing
    if facts.ndim == 3 and patch_ndim == 2:
        shape = tuple(s for i, s in enumerate(shape) if i != ctx.coarse_axis)
        spacing = tuple(s for i, s in enumerate(spacing) if i != ctx.coarse_axis)
    v.set("train.loss", recipe.plan_loss())
    aniso = ctx.coarse_axis if ctx.anisotropic and patch_ndim == 3 else None
    mirror = _mirror_axes(ctx, patch_ndim)
    transforms = list(
        v.set("train.augment.transforms", recipe.plan_augmentation(patch_ndim, aniso, mirror=mirror))
    )
    overlap = float(
        v.set(
            "evaluate.overlap",
            Decision(recipe.OVERLAP, "nnU-Net's: windows overlap by half, Gaussian-weighted"),
        )
    )
    mirror_axes = recipe.mirrored_axes(transforms, patch_ndim)
    given_patch = v.given("train.patch_size")
    space = Space(
        median_shape=shape,
        spacing=spacing,
        total_voxels=ctx.total_voxels,
        in_channels=ctx.channels,
        num_classes=ctx.num_classes,
        transforms=transforms,
        device=ctx.budget.device,
        memory_bytes=ctx.budget.memory_gb * 2**30,
        model=v.given("train.model"),
        patch=tuple(given_patch) if given_patch else None,
        batch=v.given("train.batch_size"),
        folds=ctx.n_folds,
        folds_yours="train.folds" in v.yours or ctx.folds_fixed,
        bf16=v.given("train.bf16"),
        channels_last=v.given("train.channels_last"),
    )

    def schedule_for(m: Measurement, batch: int, patch: list[int], tta: int | None = None) -> Schedule:
        """The schedule in the budget with ``tta`` variants; None (choosing a network): with the
        variants the TTA rule would give the candidate (mirroring within its share of the budget and
        leaving time for training, else none), so candidates compare fairly and the minimum is one."""
        costs = Costs(m.step_s, m.aug_s, batch, m.window_s)
        n = 2 ** len(mirror_axes)
        if tta is None:  # choosing a network: the variants the TTA rule would give this candidate
            share = _mirroring(ctx, workload(ctx, shape, patch, overlap, n), costs, n)[1]
        for variants in [tta] if tta is not None else ([n, 1] if share and n > 1 else [1]):
            w = workload(ctx, shape, patch, overlap, variants)
            try:
                return fit_schedule(_per_fold(ctx, w, costs, variants), w, costs)
            except PlanError:
                continue
        raise too_short(
            ctx.budget.seconds, minimum_seconds(w, costs, ctx.budget.device), f"{ctx.n_folds} fold(s)"
        )

    network = choose_network(space, schedule_for, ctx.cache, ctx.measure_fn)
    v.set("train.model", network.model)
    v.set("train.bf16", network.numerics.bf16)
    v.set("train.channels_last", network.numerics.channels_last)
    patch = [int(p) for p in v.set("train.patch_size", network.patch)]
    batch = int(v.set("train.batch_size", network.batch))
    m = network.measurement
    room = True  # for one epoch per fold with mirrored inference
    try:
        schedule_for(m, batch, patch, 2 ** len(mirror_axes))
    except PlanError:
        room = False
    full = workload(ctx, shape, patch, overlap, 2 ** len(mirror_axes))
    tta = _plan_tta(ctx, m, full, batch, mirror_axes, room)
    sched = schedule_for(m, batch, patch, tta)
    epochs, steps, val_every = _schedule_values(ctx, sched, m)
    v.set("train.optimizer", recipe.plan_optimizer(epochs * steps))
    v.set("train.scheduler", recipe.plan_scheduler(epochs * steps))
    # measured with nnU-Net's full set (the costlier one); a short schedule trains with the light one
    v.set("train.augment.transforms", recipe.plan_augmentation(patch_ndim, aniso, epochs * steps, mirror))
    w = workload(ctx, shape, patch, overlap, tta)
    costs = Costs(m.step_s, m.aug_s, batch, m.window_s)
    return Trained(
        f"{patch_ndim}d", m, w, costs, epochs, steps, val_every, sched.val_s, tta, network.candidates
    )


def plan_resized(ctx: Context, image_size: tuple[int, int]) -> Trained:
    """A resize / pad / letterbox configuration: whole images at ``image_size``."""
    v = ctx.values
    if ctx.facts.ndim == 3:
        raise PlanError(
            "preprocess.spatial_mode resize / pad / letterbox apply to 2D images; "
            "for volumes use auto (patch)"
        )
    v.set("train.loss", recipe.plan_loss())
    mirror = _mirror_axes(ctx, 2)
    transforms = list(v.set("train.augment.transforms", recipe.plan_augmentation(2, None, mirror=mirror)))
    v.set("evaluate.overlap", Decision(recipe.OVERLAP, "unused: whole images"))
    v.set("train.patch_size", Decision(None, "whole images at preprocess.image_size"))
    v.set("train.iterations_per_epoch", Decision(None, "one pass over the fold's images per epoch"))
    resnet = Decision(encoder.ENCODER_MODEL, "a 2D U-Net with a ResNet-18 encoder, random weights")
    model = dict(v.set("train.model", resnet))
    space = Space(
        tuple(float(s) for s in image_size),
        (1.0, 1.0),
        ctx.total_voxels,
        ctx.channels,
        ctx.num_classes,
        transforms,
        ctx.budget.device,
        ctx.budget.memory_gb * 2**30,
        bf16=v.given("train.bf16"),
        channels_last=v.given("train.channels_last"),
    )
    batch = int(v.set("train.batch_size", plan_batch(space, image_size, lambda _: True)))
    m, numerics = Measurer(space, ctx.cache, ctx.measure_fn)(model, tuple(image_size), batch)
    v.set("train.bf16", numerics.bf16)
    v.set("train.channels_last", numerics.channels_last)
    flip = 1 in mirror.value
    tta = Decision(True, "horizontal flip (resize modes)") if flip else Decision(False, mirror.reason)
    flips = 2 if v.set("ensemble.tta", tta) else 1
    v.set("ensemble.tta_axes", Decision(None, "unused: resize modes flip horizontally"))
    w = workload(ctx, tuple(float(s) for s in image_size), [], 0.5, flips)
    costs = Costs(m.step_s, m.aug_s, batch, m.window_s)
    per_epoch = math.ceil(ctx.facts.n_train * (ctx.n_folds - 1) / ctx.n_folds / batch)
    val_s = inference_seconds(w, costs, ctx.facts.n_train / ctx.n_folds, 1, 1)
    epoch_s = per_epoch * step_seconds(costs) + val_s
    fold = _per_fold(ctx, w, costs, flips)
    epochs = max(1, int(fold // epoch_s))
    reason = f"{epochs} passes over the fold's images fit the budget at {m.step_s:.3f} s per step (measured)"
    epochs = int(v.set("train.epochs", Decision(epochs, reason)))
    val_every = int(v.set("train.val_every", Decision(1, "validation every epoch (whole images, cheap)")))
    v.set("train.optimizer", recipe.plan_optimizer(epochs * per_epoch))
    v.set("train.scheduler", recipe.plan_scheduler(epochs * per_epoch))
    return Trained("2d", m, w, costs, epochs, per_epoch, val_every, val_s, flips, [])


def configuration_summary(t: Trained) -> dict[str, Any]:
    """The measured costs of the chosen configuration (plan.json's ``network.measured``)."""
    m = t.measurement
    return {
        "step_s": m.step_s,
        "window_s": m.window_s,
        "window_batch": WINDOW_BATCH,
        "memory_gb": m.memory_bytes / 2**30,
        "aug_s_per_sample": m.aug_s,
        "parameters": m.parameters,
    }
