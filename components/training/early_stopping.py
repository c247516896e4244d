"""Early stopping on a validation metric."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal


class EarlyStopping:
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    Call :meth:`update` once per epoch after validation. A NaN metric never counts as an improvement.

    Args:
        monitor: Metric key, e.g. "val_dice" or "val_loss".
        mode: "max" (higher is better) or "min".
        patience: Epochs without improvement tolerated before stopping (>= 1).
        min_delta: Minimum change that counts as an improvement (>= 0).

    Attributes:
        best: Best value so far (None before the first update).
        best_epoch: 0-based index of the update that gave ``best`` (-1 before the first).
        epoch: Number of updates so far.
    """

    def __init__(
        self, monitor: str, mode: Literal["max", "min"], patience: int, min_delta: float = 0.0
    ) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"early stopping mode must be 'max' or 'min', got {mode!r}")
        if int(patience) < 1 or min_delta < 0:
            raise ValueError(
                f"early stopping needs patience >= 1 and min_delta >= 0, got {patience}, {min_delta}"
            )
        self.monitor, self.mode, self.patience, self.min_delta = (
            monitor,
            mode,
            int(patience),
            float(min_delta),
        )
        self.best: float | None = None
        self.best_epoch = -1
        self.epoch = 0
        self.bad_epochs = 0

    def improved(self, value: float) -> bool:
        """Whether ``value`` beats the best by more than ``min_delta``."""
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        delta = value - self.best if self.mode == "max" else self.best - value
        return delta > self.min_delta

    def update(self, metrics: Mapping[str, float]) -> bool:
        """Record one epoch's metrics; return True when training should stop.

        Raises:
            KeyError: ``monitor`` missing from ``metrics`` (message lists the available keys).
        """
        if self.monitor not in metrics:
            raise KeyError(f"early stopping monitor '{self.monitor}' not in metrics {sorted(metrics)}")
        value = float(metrics[self.monitor])
        if self.improved(value):
            self.best, self.best_epoch, self.bad_epochs = value, self.epoch, 0
        else:
            self.bad_epochs += 1
        self.epoch += 1
        return self.bad_epochs >= self.patience

    def state_dict(self) -> dict[str, Any]:
        """Resumable state (plain data): best value, its update index, updates and bad epochs so far."""
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "epoch": self.epoch,
            "bad_epochs": self.bad_epochs,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` (monitor, mode, patience and min_delta come from the constructor)."""
        best = state["best"]
        self.best = None if best is None else float(best)
        self.best_epoch, self.epoch = int(state["best_epoch"]), int(state["epoch"])
        self.bad_epochs = int(state["bad_epochs"])
