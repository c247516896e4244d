"""Fit the training into the time budget: epochs, steps per epoch, validation interval, and the
expected wall time of every stage.

The budget covers the whole run (validate to registration). Inference and fixed costs are
estimated first from measured seconds per window (the sliding windows each case needs), the plan
stage with the time its own measuring of the candidate networks takes (on a CPU a wide network's
steps on whole photographs take a minute or more of a short budget); what is left trains the
folds, split evenly:

- steps per fold = the fold's seconds / (measured step + augmentation of the batch);
- 250 steps per epoch (nnU-Net's) when that leaves at least :data:`MIN_EPOCHS` epochs, else fewer
  steps per epoch (never below :data:`MIN_STEPS_PER_EPOCH`), so the learning-rate schedule and the
  best-checkpoint choice keep their granularity;
- validation (sliding windows over the fold's validation cases) every ``val_every`` epochs, so that
  it costs at most :data:`VALIDATION_SHARE` of the fold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from components.planning.budget import format_duration
from components.planning.decision import PlanError

STEPS_PER_EPOCH = 250  # nnU-Net
MIN_FOLD_STEPS = 1000  # steps a fold needs to be worth training (else fewer folds, trained further)
MIN_EPOCHS = 20
MIN_STEPS_PER_EPOCH = 10
VALIDATION_SHARE = 0.1
STAGE_START_S = {"cpu": 6.0, "cuda": 10.0}  # a stage's start (warm: < 1 s), Prefect flow run, DVC hashing
FOLD_SETUP_S = 5.0  # loading a fold's cases, building its model, writing its checkpoints
READ_S_PER_MVOXEL = 0.6  # validate and preprocess: read, check, resample and write a million voxels
METRICS_S_PER_CASE = 0.05  # the metric panel of one case: a fixed part ...
METRICS_S_PER_MVOXEL = 1.0  # ... and surface distances, growing with the case's voxels
PLAN_S = 15.0  # the plan stage besides measuring: the fingerprint, torch's import, the reports
PACKAGE_S = 20.0  # the ensemble's MLflow model, registry and reports
# The training loop around the measured step: patch sampling with foreground oversampling, deep-
# supervision targets, loss logging, checkpoints. Measured (quiet 2-core CPU): real loop steps took
# 1.10-1.15x the timed step on generated 3D phantoms; on ISBI's 512^2 images the ResNet-18-encoder
# U-Net's loop step (0.33 s) was 1.11x the median of its timed AdamW steps (0.30 s).
LOOP_OVERHEAD = 1.1


@dataclass(frozen=True)
class Workload:
    """How much work the run holds, in the units the measurements are in."""

    n_folds: int
    n_train: int  # cases in the folds
    n_test: int
    windows_per_case: float  # sliding windows of a median case at the planned overlap
    megavoxels: float  # the whole dataset, as read
    tta_variants: int
    window_batch: int
    measuring_s: float = 0.0  # the plan's measurements of candidate networks so far


@dataclass(frozen=True)
class Costs:
    """Measured seconds on the device."""

    step_s: float  # one training step (forward, backward, optimiser)
    aug_s: float  # augmentation of one sample
    batch: int
    window_s: float  # one forward of ``window_batch`` windows


def inference_seconds(w: Workload, c: Costs, cases: float, variants: int, models: int) -> float:
    """Sliding-window inference of ``cases`` median cases by ``models`` models x ``variants`` mirrors."""
    forwards = cases * w.windows_per_case * variants * models / w.window_batch
    return forwards * c.window_s


def metrics_seconds(w: Workload) -> float:
    """The metric panel of one median case (its surface distances grow with its voxels)."""
    per_case = w.megavoxels / max(w.n_train + w.n_test, 1)
    return METRICS_S_PER_CASE + METRICS_S_PER_MVOXEL * per_case


def fixed_seconds(w: Workload, c: Costs, device: str, tta_variants: int) -> dict[str, float]:
    """Expected seconds of everything but training steps, per stage."""
    start = STAGE_START_S[device]
    read = w.megavoxels * READ_S_PER_MVOXEL
    return {
        "validate": start + read,
        "plan": start + PLAN_S + w.measuring_s,
        "preprocess": start + read,
        "train": start + w.n_folds * FOLD_SETUP_S,
        "evaluate": start + inference_seconds(w, c, w.n_train, 1, 1) + w.n_train * metrics_seconds(w) * 2,
        "ensemble": start
        + PACKAGE_S
        + inference_seconds(w, c, w.n_test, tta_variants, w.n_folds)
        + w.n_test * metrics_seconds(w),
    }


@dataclass(frozen=True)
class Schedule:
    """Epochs, steps and validation for one fold, and its expected seconds."""

    epochs: int
    steps_per_epoch: int
    val_every: int
    fold_s: float
    val_s: float  # one validation pass

    @property
    def steps(self) -> int:
        """Optimiser steps of the fold."""
        return self.epochs * self.steps_per_epoch


def validation_seconds(w: Workload, c: Costs) -> float:
    """One validation pass: sliding windows over the fold's validation cases (no mirroring)."""
    return inference_seconds(w, c, w.n_train / w.n_folds, 1, 1)


def step_seconds(c: Costs) -> float:
    """A training step with its batch's augmentation (the loader runs in the training process on
    the CPU; on CUDA loader workers overlap it, which this leaves as headroom), times the loop's
    own work around it (:data:`LOOP_OVERHEAD`)."""
    return (c.step_s + c.aug_s * c.batch) * LOOP_OVERHEAD


def fit_schedule(fold_seconds: float, w: Workload, c: Costs) -> Schedule:
    """The most training one fold gets in ``fold_seconds`` (see the module docstring).

    Raises:
        PlanError: Not even one epoch of :data:`MIN_STEPS_PER_EPOCH` steps fits.
    """
    per_step = step_seconds(c)
    val_s = validation_seconds(w, c)
    steps = int((fold_seconds - val_s) * (1 - VALIDATION_SHARE) / per_step)
    if steps < MIN_STEPS_PER_EPOCH:
        raise PlanError("too little time per fold")
    per_epoch = (
        STEPS_PER_EPOCH
        if steps >= STEPS_PER_EPOCH * MIN_EPOCHS
        else max(MIN_STEPS_PER_EPOCH, steps // MIN_EPOCHS)
    )
    epochs = max(1, steps // per_epoch)
    val_every = max(1, math.ceil(epochs * val_s / (VALIDATION_SHARE * fold_seconds)))
    val_every = min(val_every, epochs)
    passes = math.ceil(epochs / val_every)  # every val_every epochs and after the last
    fold_s = epochs * per_epoch * per_step + passes * val_s
    return Schedule(epochs, per_epoch, val_every, fold_s, val_s)


def minimum_seconds(w: Workload, c: Costs, device: str) -> float:
    """The shortest sensible run: one epoch of :data:`MIN_STEPS_PER_EPOCH` steps and one validation
    per fold, no test-time mirroring, plus the fixed costs."""
    fixed = sum(fixed_seconds(w, c, device, 1).values())
    per_fold = MIN_STEPS_PER_EPOCH * step_seconds(c) / (1 - VALIDATION_SHARE) + validation_seconds(w, c)
    return fixed + w.n_folds * per_fold


class TooShort(PlanError):
    """A time budget under the minimum: ``minimum_s`` is what the smallest sensible run needs."""

    def __init__(self, message: str, minimum_s: float) -> None:
        super().__init__(message)
        self.minimum_s = minimum_s


def too_short(budget_s: float, minimum_s: float, what: str) -> TooShort:
    """The error for a budget under the minimum, naming the key and the minimum."""
    return TooShort(
        f"plan.time_budget {format_duration(budget_s)} is too short for {what}: the smallest sensible run "
        f"(one epoch of {MIN_STEPS_PER_EPOCH} steps per fold, measured on this device) needs about "
        f"{format_duration(minimum_s)}; give at least {format_duration(math.ceil(minimum_s / 60) * 60)} "
        "(or fewer folds: preprocess.splits.n_folds, train.folds)",
        minimum_s,
    )
