"""Learning-rate schedulers selected by name (``train.scheduler``) behind one stepping interface.

Every :class:`Scheduler` steps in exactly one place: ``step_batch()`` (after each optimiser step) for
per-iteration schedules (cosine, poly, cyclic, onecycle) or ``step_epoch(metrics)`` (after validation)
for per-epoch ones (step, plateau). The training loop calls both; the other is a no-op.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

import torch
from torch.optim import lr_scheduler as lrs

from components.core.registry import Registry

SCHEDULERS: Registry[Scheduler] = Registry("scheduler")


class Scheduler:
    """A torch LR scheduler plus when to step it.

    Args:
        optimizer: The optimiser whose LR is scheduled.
        scheduler: Torch scheduler (None: constant LR).
        interval: "batch", "epoch" or "none".
        monitor: Metric key for reduce-on-plateau.
        max_steps: Batch steps beyond this are ignored (OneCycleLR raises past its total).
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        scheduler: lrs.LRScheduler | None,
        interval: Literal["batch", "epoch", "none"],
        monitor: str | None = None,
        max_steps: int | None = None,
    ) -> None:
        self.optimizer, self.scheduler, self.interval = optimizer, scheduler, interval
        self.monitor, self.max_steps, self.steps = monitor, max_steps, 0

    @property
    def lr(self) -> list[float]:
        """Current learning rate of each parameter group."""
        return [float(g["lr"]) for g in self.optimizer.param_groups]

    def step_batch(self) -> None:
        """Advance per-iteration schedules (call after each ``optimizer.step()``)."""
        if self.interval != "batch":
            return
        if self.max_steps is not None and self.steps >= self.max_steps:
            return
        self.steps += 1
        assert self.scheduler is not None  # interval "batch" comes with a scheduler
        self.scheduler.step()

    def step_epoch(self, metrics: Mapping[str, float]) -> None:
        """Advance per-epoch schedules (call after validation).

        Raises:
            KeyError: Reduce-on-plateau's monitor is missing from ``metrics``.
        """
        if self.interval != "epoch":
            return
        assert self.scheduler is not None  # interval "epoch" comes with a scheduler
        if self.monitor is None:
            self.scheduler.step()
            return
        if self.monitor not in metrics:
            raise KeyError(f"scheduler monitor '{self.monitor}' not in metrics {sorted(metrics)}")
        assert isinstance(self.scheduler, lrs.ReduceLROnPlateau)  # the only one stepped with a metric
        self.scheduler.step(float(metrics[self.monitor]))

    def state_dict(self) -> dict[str, Any]:
        """Resumable state: batch steps taken and the torch scheduler's own state (plain data)."""
        return {
            "steps": self.steps,
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` (into a scheduler built with the same name and arguments)."""
        self.steps = int(state["steps"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(dict(state["scheduler"]))


def _lambda(optimizer: torch.optim.Optimizer, fn: Callable[[int, float], float], total: int) -> Scheduler:
    """Per-batch LambdaLR; ``fn(step, base_lr)`` returns the LR factor."""
    bases = [g["lr"] for g in optimizer.param_groups]

    def factor(base: float) -> Callable[[int], float]:
        return lambda s: fn(min(s, total), base)

    lambdas = [factor(b) for b in bases]
    return Scheduler(optimizer, lrs.LambdaLR(optimizer, lambdas), "batch")


@SCHEDULERS.register("cosine", "Linear warm-up then cosine decay to min_lr, per batch")
def cosine(
    optimizer: torch.optim.Optimizer,
    epochs: int,
    steps_per_epoch: int,
    warmup_epochs: float = 0.0,
    min_lr: float = 0.0,
) -> Scheduler:
    """Cosine annealing with linear warm-up over ``warmup_epochs`` (may be fractional)."""
    total, warm = epochs * steps_per_epoch, round(warmup_epochs * steps_per_epoch)

    def fn(s: int, base: float) -> float:
        if s < warm:
            return (s + 1) / warm
        t = (s - warm) / max(1, total - warm)
        floor = min_lr / base if base > 0 else 0.0
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))

    return _lambda(optimizer, fn, total)


@SCHEDULERS.register("poly", "nnU-Net poly decay lr * (1 - t/T)^0.9, per batch")
def poly(
    optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int, exponent: float = 0.9
) -> Scheduler:
    """Polynomial decay to 0 at the last step."""
    total = epochs * steps_per_epoch
    return _lambda(optimizer, lambda s, _b: (1 - s / total) ** exponent, total)


@SCHEDULERS.register("step", "Multiply lr by gamma every step_size epochs")
def step(
    optimizer: torch.optim.Optimizer,
    epochs: int,
    steps_per_epoch: int,
    step_size: int | None = None,
    gamma: float = 0.1,
) -> Scheduler:
    """StepLR per epoch; ``step_size`` defaults to a third of the epochs."""
    size = step_size or max(1, epochs // 3)
    return Scheduler(optimizer, lrs.StepLR(optimizer, step_size=size, gamma=gamma), "epoch")


@SCHEDULERS.register("cyclic", "Cyclical lr between base_lr and max_lr (triangular), per batch")
def cyclic(
    optimizer: torch.optim.Optimizer,
    epochs: int,
    steps_per_epoch: int,
    base_lr: float | None = None,
    max_lr: float | None = None,
    step_size_up: int | None = None,
    **kwargs: Any,
) -> Scheduler:
    """CyclicLR; defaults: max_lr = optimiser lr, base_lr = max_lr / 10, half cycle = 2 epochs."""
    lr = optimizer.param_groups[0]["lr"]
    max_lr = lr if max_lr is None else max_lr
    base_lr = max_lr / 10 if base_lr is None else base_lr
    kwargs.setdefault("cycle_momentum", False)
    sched = lrs.CyclicLR(
        optimizer, base_lr=base_lr, max_lr=max_lr, step_size_up=step_size_up or 2 * steps_per_epoch, **kwargs
    )
    return Scheduler(optimizer, sched, "batch")


@SCHEDULERS.register("onecycle", "One-cycle policy (warm-up to max_lr, anneal), per batch")
def onecycle(
    optimizer: torch.optim.Optimizer,
    epochs: int,
    steps_per_epoch: int,
    max_lr: float | None = None,
    **kwargs: Any,
) -> Scheduler:
    """OneCycleLR over ``epochs * steps_per_epoch`` steps; max_lr defaults to the optimiser lr."""
    peak: float | list[float] = max_lr if max_lr is not None else [g["lr"] for g in optimizer.param_groups]
    has_momentum = "momentum" in optimizer.defaults or "betas" in optimizer.defaults
    kwargs.setdefault("cycle_momentum", has_momentum)
    total = epochs * steps_per_epoch
    sched = lrs.OneCycleLR(optimizer, max_lr=peak, total_steps=total, **kwargs)
    return Scheduler(optimizer, sched, "batch", max_steps=total - 1)


@SCHEDULERS.register("plateau", "Reduce lr by factor when a validation metric stops improving")
def plateau(
    optimizer: torch.optim.Optimizer,
    epochs: int,
    steps_per_epoch: int,
    monitor: str = "val_loss",
    mode: Literal["min", "max"] | None = None,
    factor: float = 0.5,
    patience: int = 2,
    **kwargs: Any,
) -> Scheduler:
    """ReduceLROnPlateau per epoch; mode defaults to "min" for monitors containing "loss", else "max"."""
    mode = mode or ("min" if "loss" in monitor else "max")
    sched = lrs.ReduceLROnPlateau(optimizer, mode=mode, factor=factor, patience=patience, **kwargs)
    return Scheduler(optimizer, sched, "epoch", monitor=monitor)


@SCHEDULERS.register("none", "Constant learning rate")
def none(optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int) -> Scheduler:
    """No schedule."""
    return Scheduler(optimizer, None, "none")


def build_scheduler(
    name: str, optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int, **kwargs: Any
) -> Scheduler:
    """Build a registered scheduler.

    Args:
        name: cosine, poly, step, cyclic, onecycle, plateau or none.
        optimizer: Optimiser to schedule (its current lr is the base / peak lr).
        epochs: Planned epochs.
        steps_per_epoch: Optimiser steps per epoch.
        **kwargs: Scheduler options (e.g. warmup_epochs, min_lr, monitor, mode, factor, patience).

    Raises:
        RegistryError: Unknown name.
        ValueError: Bad epochs/steps or an unknown or invalid argument (naming the scheduler).
    """
    if int(epochs) < 1 or int(steps_per_epoch) < 1:
        raise ValueError(
            f"scheduler '{name}' needs epochs >= 1 and steps_per_epoch >= 1, got {epochs}, {steps_per_epoch}"
        )
    factory = SCHEDULERS.get(name)
    try:
        return factory(optimizer, int(epochs), int(steps_per_epoch), **kwargs)
    except TypeError as err:
        match = re.search(r"unexpected keyword argument '(\w+)'", str(err))
        if match:
            raise ValueError(f"scheduler '{name}' got unknown argument '{match.group(1)}'") from err
        raise
    except ValueError as err:
        raise ValueError(f"scheduler '{name}': {err}") from err
