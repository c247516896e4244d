"""What every configuration rule reads: the decisions so far, the dataset, the budget."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from components.params.config import Params
from components.params.user import user_values
from components.planning.budget import Budget
from components.planning.decision import Decision
from components.planning.facts import DatasetFacts
from components.planning.measure import MeasureFn, Measurement, MeasurementCache
from components.planning.plan import PlannedValue
from components.planning.schedule import Costs, Workload, step_seconds


class Values:
    """The decisions so far: planned value, reason, and the user's value where set."""

    def __init__(self, user: Params) -> None:
        self.yours = user_values(user)
        self.out: dict[str, PlannedValue] = {}

    def set(self, key: str, d: Decision) -> Any:
        """Record ``d`` for ``key``; returns the value used (the user's where set)."""
        given = key in self.yours
        self.out[key] = PlannedValue(d.value, d.reason, self.yours.get(key), given)
        return self.out[key].used

    def given(self, key: str) -> Any:
        """The user's value, or None."""
        return self.yours.get(key)


@dataclass(frozen=True)
class Context:
    """The dataset on the planned grid, the budget, and where measurements are kept."""

    values: Values
    facts: DatasetFacts
    budget: Budget
    cache: MeasurementCache | None
    measure_fn: MeasureFn | None  # None: measure on the device (tests pass a cost model)
    n_folds: int
    num_classes: int
    channels: int
    spacing: tuple[float, ...]  # the planned grid (1.0 per axis for 2D)
    median_shape: tuple[float, ...]  # a median case on that grid
    total_voxels: float  # the training cases on that grid
    coarse_axis: int
    anisotropic: bool
    folds_fixed: bool = False  # n_folds may not shrink (a second configuration trains the first's folds)


@dataclass(frozen=True)
class Trained:
    """What a configuration will train and what it costs."""

    name: str  # "3d" | "2d"
    measurement: Measurement
    workload: Workload
    costs: Costs
    epochs: int
    steps_per_epoch: int
    val_every: int
    val_s: float
    tta_variants: int
    candidates: list[dict[str, Any]] = field(default_factory=list)

    @property
    def fold_s(self) -> float:
        """Expected seconds of one fold's training and validation."""
        return (
            self.epochs * self.steps_per_epoch * step_seconds(self.costs)
            + -(-self.epochs // self.val_every) * self.val_s
        )
