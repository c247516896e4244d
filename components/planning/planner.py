"""Apply the planning rules in order and return the :class:`~components.planning.plan.Plan`.

Order: classes and channels; spatial mode; target spacing; intensity and crop; the configuration
(3D for volumes, 2D for images, or what the user's ``train.patch_size`` says) with its recipe,
network (width, patch and batch measured on the device), schedule in the time budget and
inference. Each step reads the values used before it, so a value the user set is planned around.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from components.params.config import Params
from components.planning import configurations, intensity
from components.planning.budget import Budget
from components.planning.configure import configuration_summary, plan_patch, plan_resized
from components.planning.context import Context, Trained, Values
from components.planning.decision import Decision, PlanError
from components.planning.facts import DatasetFacts, resampled_shapes
from components.planning.measure import MeasureFn, MeasurementCache
from components.planning.naming import experiment_name, registered_name
from components.planning.plan import Plan
from components.planning.schedule import MIN_FOLD_STEPS
from components.preprocessing.native import median_target_spacing

__all__ = ["MIN_FOLD_STEPS", "folds_for_budget", "make_plan"]


def _classes(facts: DatasetFacts, v: Values) -> dict[str, int]:
    source = facts.fingerprint.get("class_source", "the dataset")
    by_value = dict(sorted(facts.classes.items(), key=lambda kv: kv[1]))  # the fingerprint sorts by name
    return dict(v.set("data.classes", Decision(by_value, f"from {source}")))


def _spacing(facts: DatasetFacts, v: Values) -> tuple[float, ...]:
    """``preprocess.target_spacing`` (volumes: nnU-Net's rule); returns the grid's spacing."""
    if facts.ndim != 3:
        v.set("preprocess.target_spacing", Decision(None, "2D images keep their pixels"))
        return (1.0, 1.0)
    target, why = median_target_spacing(facts.fingerprint)
    used = v.set("preprocess.target_spacing", Decision([float(s) for s in target], why))
    if used is None:  # the user keeps each case's own spacing: plan on the median
        return tuple(float(s) for s in facts.fingerprint["spacing"]["median"])
    return tuple(float(s) for s in (target if used == "median" else used))


def _check_patch(facts: DatasetFacts, v: Values) -> None:
    given = v.given("train.patch_size")
    if given is not None and facts.ndim == 2 and len(given) == 3:
        raise PlanError(
            f"train.patch_size {given} (yours) is 3D, but the dataset holds 2D images; "
            "give 2 ints (H, W) or auto"
        )


def make_plan(
    user: Params,
    facts: DatasetFacts,
    budget: Budget,
    cache: MeasurementCache | None,
    measure_fn: MeasureFn | None = None,
) -> Plan:
    """Plan every plannable key for ``facts`` on ``budget`` (see the module docstring).

    Raises:
        PlanError: The budget or memory cannot hold the smallest sensible run, or the user's
            values contradict the data.
    """
    v = Values(user)
    classes = _classes(facts, v)
    channels = int(
        v.set("data.channels", Decision(facts.channels, f"{facts.channels} channel(s) in every case"))
    )
    if channels != facts.channels:
        raise PlanError(f"data.channels {channels} (yours), but the images have {facts.channels} channel(s)")
    mode = v.set(
        "preprocess.spatial_mode",
        Decision("patch", "native resolution: patches train, sliding windows predict"),
    )
    spacing = _spacing(facts, v)
    v.set("preprocess.intensity", intensity.plan_intensity(facts))
    v.set("preprocess.crop_nonzero", intensity.plan_crop_nonzero(facts))
    v.set("preprocess.slice_axis", Decision("coarsest", "2D on volumes: slices along the coarsest axis"))
    v.set("ensemble.registered_model", registered_name(facts.name, facts.folder))
    v.set("tracking.experiment", experiment_name(facts.name, facts.folder))
    shapes = resampled_shapes(facts, spacing if facts.ndim == 3 else None)
    n_all = user.preprocess.splits.n_folds
    folds_yours = "train.folds" in v.yours
    n_folds = len(v.yours["train.folds"] or range(n_all)) if folds_yours else n_all
    ctx = Context(
        values=v,
        facts=facts,
        budget=budget,
        cache=cache,
        measure_fn=measure_fn,
        n_folds=n_folds,
        num_classes=len(classes),
        channels=channels,
        spacing=spacing,
        median_shape=tuple(float(s) for s in np.median(shapes, axis=0)),
        total_voxels=float(np.prod(shapes, axis=1).sum()) * facts.n_train / max(facts.n_cases, 1),
        coarse_axis=int(facts.fingerprint.get("coarsest_axis", 0)),
        anisotropic=facts.ndim == 3 and max(spacing) > 3 * min(spacing),
    )
    _check_patch(facts, v)
    request = configurations.requested(user.plan.configurations, facts.ndim, v.given("train.patch_size"))
    kinds = ("3d", "2d") if facts.ndim == 3 else ("2d",)
    if mode != "patch":
        v.set("train.folds", Decision(None, "every fold"))
        t = plan_resized(ctx, tuple(int(s) for s in user.preprocess.image_size))  # type: ignore[arg-type]
        return _plan(ctx, t, configurations.entries(kinds, ["2d"], request.reason))
    shared = dict(v.out)  # what every configuration shares (classes ... slice axis)

    def plan_one(c: Context, patch_ndim: int) -> tuple[Trained, Context]:
        return _patch_configuration(c, patch_ndim, folds_yours, n_all)

    if len(request.names) == 1:
        trained, first = plan_one(ctx, request.first_ndim)
        return _plan(first, trained, configurations.entries(kinds, request.names, request.reason))
    alone = None if request.forced else plan_one(ctx, 3)  # 3d with the whole budget (as before)
    both, why = configurations.plan_both(ctx, shared, plan_one, request.forced)
    if both is None:
        assert alone is not None  # when forced, plan_both plans both or raises
        return _plan(alone[1], alone[0], configurations.entries(kinds, ["3d"], why))
    return _plan_both(ctx, both, configurations.entries(kinds, ["3d", "2d"], why))


def _plan_both(ctx: Context, both: configurations.Both, entries: list[dict[str, Any]]) -> Plan:
    """The plan of 3d (plans/params.yaml) and 2d (its own params), the time of both in its estimate."""
    (t3, c3), (t2, c2) = both.first, both.second
    plan = _plan(replace(c3, budget=ctx.budget), t3, entries)
    summary = {"candidates": t2.candidates, "measured": configuration_summary(t2)}
    plan.second = configurations.configured("2d", t2, c2, summary)
    stages = configurations.combined_stages(
        configurations.stage_seconds(t3, c3.n_folds, ctx.budget.device),
        configurations.stage_seconds(t2, c2.n_folds, ctx.budget.device),
        ctx.budget.device,
    )
    plan.estimate = {
        "stages_s": {k: round(s, 1) for k, s in stages.items()},
        "fold_s": t3.fold_s,
        "total_s": sum(stages.values()),
    }
    return plan


def _patch_configuration(
    ctx: Context, patch_ndim: int, folds_yours: bool, n_all: int
) -> tuple[Trained, Context]:
    """One native-resolution configuration in ``ctx``'s budget, with as many folds as it holds."""
    trained, ctx = _fitting_folds(ctx, patch_ndim, folds_yours)
    k, why = folds_for_budget(trained.epochs * trained.steps_per_epoch, ctx.n_folds, n_all)
    if k < ctx.n_folds and not folds_yours:  # fewer folds, each trained further: plan them again
        ctx = replace(ctx, n_folds=k)
        trained = plan_patch(ctx, patch_ndim)
    ctx.values.set("train.folds", Decision(None if k == n_all else list(range(k)), why))
    return trained, ctx


def _fitting_folds(ctx: Context, patch_ndim: int, fixed: bool) -> tuple[Trained, Context]:
    """The plan with as many folds as the budget holds at all (all of them, unless even one epoch
    of each does not fit; the user's folds are never reduced)."""
    while True:
        try:
            return plan_patch(ctx, patch_ndim), ctx
        except PlanError:
            if fixed or ctx.n_folds == 1:
                raise
            ctx = replace(ctx, n_folds=ctx.n_folds - 1)


def folds_for_budget(steps_per_fold: int, n_planned: int, n_folds: int) -> tuple[int, str]:
    """How many of ``n_folds`` to train, given ``steps_per_fold`` each when ``n_planned`` train: all,
    unless each would train fewer than :data:`MIN_FOLD_STEPS` steps; then as many as can each train
    that many (at least one)."""
    if steps_per_fold >= MIN_FOLD_STEPS and n_planned == n_folds:
        return n_folds, f"all {n_folds}: {steps_per_fold} steps each in the budget"
    k = max(1, min(n_planned, steps_per_fold * n_planned // MIN_FOLD_STEPS))
    few = f"{k} of {n_folds}: "
    if n_planned < n_folds:
        few += f"the budget has no time for one epoch of all {n_folds}; "
    if steps_per_fold < MIN_FOLD_STEPS:
        few += (
            f"{n_planned} folds would train only {steps_per_fold} steps each (< {MIN_FOLD_STEPS}, too few "
            "for a U-Net from scratch); "
        )
    else:
        few += f"{n_planned} train {steps_per_fold} steps each; "
    return k, few + (
        "fewer folds trained further give a better ensemble (the CV report covers their validation cases)"
    )


def _plan(ctx: Context, t: Trained, entries: list[dict[str, Any]]) -> Plan:
    stages = configurations.stage_seconds(t, ctx.n_folds, ctx.budget.device)
    return Plan(
        values=ctx.values.out,
        budget=ctx.budget.describe(),
        dataset=_summary(ctx),
        configuration=t.name,
        configurations=entries,
        network={"candidates": t.candidates, "measured": configuration_summary(t)},
        estimate={
            "stages_s": {k: round(s, 1) for k, s in stages.items()},
            "fold_s": t.fold_s,
            "total_s": sum(stages.values()),
        },
        notes=_notes(ctx.values),
    )


def _summary(ctx: Context) -> dict[str, Any]:
    facts = ctx.facts
    kind = "volumes" if facts.ndim == 3 else "images"
    shape = " x ".join(f"{s:.0f}" for s in ctx.median_shape)
    unit = " mm" if facts.ndim == 3 else " px"
    return {
        "summary": f"{facts.n_cases} {kind} ({facts.n_test} test), {facts.channels} channel(s), "
        f"{ctx.num_classes} classes, median {shape} at {' x '.join(f'{s:g}' for s in ctx.spacing)}{unit}",
        "n_cases": facts.n_cases,
        "n_test": facts.n_test,
        "ndim": facts.ndim,
        "median_shape": list(ctx.median_shape),
        "spacing": list(ctx.spacing),
    }


def _notes(v: Values) -> list[str]:
    notes = []
    for key in sorted(v.yours):
        planned = v.out[key].planned if key in v.out else None
        if key not in v.out:
            notes.append(f"{key}: yours is kept (no rule plans it in this configuration)")
        elif planned != v.yours[key]:
            notes.append(f"{key}: yours ({_short(v.yours[key])}) is used, the plan had {_short(planned)}")
    return notes


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, Mapping) else str(dict(value))
    return text if len(text) <= 60 else text[:57] + "..."
