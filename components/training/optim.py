"""Optimisers selected by name (``train.optimizer``), thin over ``torch.optim``.

Each name maps to a torch class plus defaults that suit segmentation training (e.g. SGD with momentum
0.99 and Nesterov as in nnU-Net is one ``kwargs`` away; the default is momentum 0.9). Unknown keyword
arguments are errors naming the optimiser and the argument.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

import torch

from components.core.registry import Registry

OPTIMIZERS: Registry[torch.optim.Optimizer] = Registry("optimizer")

_SPECS: dict[str, tuple[type[torch.optim.Optimizer], dict[str, Any], str]] = {
    "sgd": (torch.optim.SGD, {"lr": 0.01, "momentum": 0.9}, "SGD with momentum (nesterov=True optional)"),
    "rmsprop": (torch.optim.RMSprop, {"lr": 1e-3}, "RMSprop"),
    "adam": (torch.optim.Adam, {"lr": 1e-3}, "Adam"),
    "adamw": (torch.optim.AdamW, {"lr": 1e-3, "weight_decay": 1e-2}, "AdamW (decoupled weight decay)"),
    "nadam": (torch.optim.NAdam, {"lr": 2e-3}, "Adam with Nesterov momentum"),
    "adamax": (torch.optim.Adamax, {"lr": 2e-3}, "Adamax (infinity-norm Adam)"),
    "adagrad": (torch.optim.Adagrad, {"lr": 1e-2}, "Adagrad"),
    "adadelta": (torch.optim.Adadelta, {"lr": 1.0}, "Adadelta"),
}


def _factory(cls: type[torch.optim.Optimizer], defaults: dict[str, Any], name: str) -> Any:
    accepted = {p for p in inspect.signature(cls).parameters if p != "params"}

    def make(params: Iterable[Any], **kwargs: Any) -> torch.optim.Optimizer:
        unknown = sorted(set(kwargs) - accepted)
        if unknown:
            raise ValueError(
                f"optimizer '{name}' got unknown argument(s) {unknown}; accepted: {sorted(accepted)}"
            )
        return cls(params, **{**defaults, **kwargs})

    return make


for _name, (_cls, _defaults, _desc) in _SPECS.items():
    OPTIMIZERS.add(_name, _factory(_cls, _defaults, _name), f"{_desc}; defaults {_defaults}")


def build_optimizer(name: str, params: Iterable[Any], **kwargs: Any) -> torch.optim.Optimizer:
    """Build a registered optimiser.

    Args:
        name: Registered name (sgd, rmsprop, adam, adamw, nadam, adamax, adagrad, adadelta).
        params: Model parameters or parameter groups.
        **kwargs: Optimiser arguments (``lr``, ``weight_decay``, ``momentum``, ``nesterov``, ...),
            overriding the registered defaults.

    Raises:
        RegistryError: Unknown name.
        ValueError: Unknown argument, or a value torch rejects (message names the optimiser).
    """
    factory = OPTIMIZERS.get(name)
    try:
        return factory(params, **kwargs)
    except ValueError as err:
        if str(err).startswith(f"optimizer '{name}'"):
            raise
        raise ValueError(f"optimizer '{name}': {err}") from err
