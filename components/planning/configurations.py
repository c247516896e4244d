"""Which configurations a volume dataset trains: 3D, 2D on slices along the coarse axis, or both
(as nnU-Net does, to pick the best or their ensemble on cross-validation), and the plan of each
with the time budget split between them.

The rule (``plan.configurations: auto`` on volumes): split what the budget leaves for training in
two and plan each configuration in its half; train both only when each then gets at least
:data:`BOTH_MIN_STEPS` optimiser steps per fold, else 3D alone with the whole budget.
:data:`BOTH_MIN_STEPS` is :data:`CONFIGURATION_STEP_FACTOR` x the planner's ``MIN_FOLD_STEPS``
(10,000): the length from which the plan calls a schedule long (``recipe.SGD_MIN_STEPS``,
nnU-Net's own recipe). Below it each extra step still gains Dice quickly, so half the budget
spent on a second configuration costs the first more than the choice between them gains
(nnU-Net's ensembles and 2D-vs-3D picks gain about a point of Dice, measured after 250,000
steps); and two under-trained configurations compare how fast each converges, not how good it
is. On a CPU with an hour the answer is 3D alone; on a GPU with a day both usually fit.

``[3d, 2d]`` set by the user trains both in any case (an error when the split budget cannot
hold them); ``[3d]`` or ``[2d]`` trains that one; a ``train.patch_size`` of the user's fixes one.
2D images have one configuration (2d).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from components.core.layout import RESOLVED_PARAMS, configuration_params
from components.params.config import AUTO
from components.planning.budget import format_duration
from components.planning.configure import plan_patch, workload
from components.planning.context import Context, Trained
from components.planning.decision import PlanError
from components.planning.plan import Configured
from components.planning.schedule import MIN_FOLD_STEPS, STAGE_START_S, Costs, fixed_seconds

CONFIGURATION_STEP_FACTOR = 10
BOTH_MIN_STEPS = MIN_FOLD_STEPS * CONFIGURATION_STEP_FACTOR  # steps per fold each, to train both
SHARED_STAGES = ("validate", "plan", "preprocess")  # run once for every configuration
PER_CONFIGURATION_STAGES = ("train", "evaluate", "ensemble")

# plan_one(ctx, patch_ndim) -> the configuration in ctx's budget and its context (as many folds as fit)
PlanOne = Callable[[Context, int], tuple[Trained, Context]]


@dataclass(frozen=True)
class Request:
    """The configurations to consider, the first being the one plans/params.yaml holds."""

    names: tuple[str, ...]
    forced: bool  # the user asked for these (or their patch fixes one): no rule decides
    reason: str

    @property
    def first_ndim(self) -> int:
        """The first configuration's patch dimension."""
        return 3 if self.names[0] == "3d" else 2


def requested(setting: Any, ndim: int, user_patch: Sequence[int] | None) -> Request:
    """What ``plan.configurations`` (``setting``) asks for on data of ``ndim`` axes.

    Raises:
        PlanError: A configuration the data cannot have, or one that contradicts the user's patch.
    """
    names = tuple(sorted(setting, reverse=True)) if setting != AUTO else None  # 3d before 2d
    yours = f"plan.configurations [{', '.join(setting)}] (yours)" if names else ""
    if ndim == 2:
        if names not in (None, ("2d",)):
            raise PlanError(
                f"{yours} names a 3D configuration, but the dataset holds 2D images; use auto or [2d]"
            )
        return Request(("2d",), True, "2D images: one 2d configuration")
    if user_patch is not None:
        own = f"{len(user_patch)}d"
        if names not in (None, (own,)):
            raise PlanError(
                f"{yours} and train.patch_size {list(user_patch)} (yours, {own}) disagree: a patch of "
                f"yours fixes one configuration; give train.patch_size auto, or plan.configurations [{own}]"
            )
        return Request(
            (own,), True, f"train.patch_size {list(user_patch)} (yours) is {own}: that configuration only"
        )
    if names is None:
        return Request(("3d", "2d"), False, "auto")
    return Request(names, True, yours)


def worth_both(steps: dict[str, int]) -> tuple[bool, str]:
    """The rule: both configurations train when each gets :data:`BOTH_MIN_STEPS` steps per fold in
    its half of the budget; ``steps`` maps each planned one to its steps (2d may be missing)."""
    got = ", ".join(f"{n} {s}" for n, s in steps.items())
    if len(steps) == 2 and all(s >= BOTH_MIN_STEPS for s in steps.values()):
        return True, (
            f"3d and 2d: with the budget split in two each trains a long schedule ({got} steps per fold, "
            f">= {BOTH_MIN_STEPS}); evaluate picks 3d, 2d or their ensemble on the out-of-fold cases"
        )
    return False, (
        f"3d only: with the budget split in two, {got} steps per fold (< {BOTH_MIN_STEPS}, the least "
        f"for a long schedule each); below that the budget is worth more as steps of the one "
        "configuration than as a second one to choose from"
    )


def entries(names: Sequence[str], trained: Sequence[str], reason: str) -> list[dict[str, Any]]:
    """plan.json's ``configurations``: each one's status, why, and the params file of those this
    run trains (``trained``, the first one's being plans/params.yaml)."""
    out = []
    for name in names:
        entry = {"name": name, "status": "not trained in this run", "reason": reason}
        if name in trained:
            first = name == trained[0]
            entry["status"] = "planned and trained"
            entry["params"] = configuration_params(name, first, RESOLVED_PARAMS).as_posix()
        out.append(entry)
    return out


def split_budget(ctx: Context) -> Context:
    """``ctx`` with the budget of one of two configurations: the shared stages (validate, plan,
    preprocess: reading the data, whatever trains) once, and half of what is left."""
    no_costs = Costs(step_s=0.0, aug_s=0.0, batch=1, window_s=0.0)
    shared = fixed_seconds(workload(ctx, ctx.median_shape, [], 0.5, 1), no_costs, ctx.budget.device, 1)
    once = sum(shared[s] for s in SHARED_STAGES)
    half = once + (ctx.budget.seconds - once) / 2
    return replace(ctx, budget=replace(ctx.budget, seconds=half))


def _fresh(ctx: Context, shared: dict[str, Any]) -> Context:
    """``ctx`` with its own decisions, starting from the ones every configuration shares."""
    values = copy.copy(ctx.values)
    values.out = dict(shared)
    return replace(ctx, values=values)


@dataclass(frozen=True)
class Both:
    """The two configurations, each planned in its half of the budget."""

    first: tuple[Trained, Context]
    second: tuple[Trained, Context]


def plan_both(
    ctx: Context, shared: dict[str, Any], plan_one: PlanOne, forced: bool
) -> tuple[Both | None, str]:
    """Plan 3D and 2D in half the budget each (the same folds); returns them when they are to be
    trained (``forced``, or :func:`worth_both`), else None, with the reason either way.

    Raises:
        PlanError: ``forced`` and the split budget cannot hold both (names the split).
    """
    half = split_budget(ctx)
    steps: dict[str, int] = {}
    try:
        t3, c3 = plan_one(_fresh(half, shared), 3)
        steps["3d"] = t3.epochs * t3.steps_per_epoch
        if not forced and steps["3d"] < BOTH_MIN_STEPS:  # 2d need not be measured
            return None, worth_both(steps)[1]
        c2 = replace(_fresh(half, shared), n_folds=c3.n_folds, folds_fixed=True)  # the same folds, to compare
        t2 = plan_patch(c2, 2)
        c2.values.out["train.folds"] = c3.values.out["train.folds"]
        steps["2d"] = t2.epochs * t2.steps_per_epoch
    except PlanError as err:
        if forced:
            raise PlanError(f"plan.configurations [3d, 2d] (yours) splits the budget in two: {err}") from None
        return None, (
            f"3d only: with the budget split in two ({format_duration(half.budget.seconds)} for each, the "
            "shared stages included) one of them has no time for one epoch per fold"
        )
    if forced:
        got = f"3d {steps['3d']}, 2d {steps['2d']} steps per fold with the budget split in two"
        return Both((t3, c3), (t2, c2)), f"yours (plan.configurations [3d, 2d]): {got}"
    ok, why = worth_both(steps)
    return (Both((t3, c3), (t2, c2)) if ok else None), why


def combined_stages(first: dict[str, float], second: dict[str, float], device: str) -> dict[str, float]:
    """Expected seconds per stage of a run training both: the shared stages once, the others both
    configurations' work with one stage start."""
    out = dict(first)
    for stage in PER_CONFIGURATION_STAGES:
        out[stage] = first[stage] + second[stage] - STAGE_START_S[device]
    return out


def stage_seconds(t: Trained, n_folds: int, device: str) -> dict[str, float]:
    """One configuration's expected seconds per stage."""
    stages = fixed_seconds(t.workload, t.costs, device, t.tta_variants)
    stages["train"] += n_folds * t.fold_s
    return stages


def configured(name: str, t: Trained, ctx: Context, network: dict[str, Any]) -> Configured:
    """A second configuration as the plan holds it."""
    stages = stage_seconds(t, ctx.n_folds, ctx.budget.device)
    return Configured(
        name=name,
        values=dict(ctx.values.out),
        network=network,
        estimate={
            "fold_s": t.fold_s,
            "steps_per_fold": t.epochs * t.steps_per_epoch,
            "stages_s": {k: round(s, 1) for k, s in stages.items() if k in PER_CONFIGURATION_STAGES},
        },
    )
