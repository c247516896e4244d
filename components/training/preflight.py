"""Build everything params.yaml names, cheaply on the CPU, before a run writes or deletes anything.

``segflow run`` and the Prefect pipeline flow call :func:`preflight` on the merged params before
params.yaml is written and before ``dvc repro`` starts: an unknown model name, a bad optimiser
argument or a missing dataset folder is then one error naming the params key, instead of a train
stage failure after validate and preprocess have replaced their outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from components.config import ConfigError, Params
from components.losses import build_loss
from components.models import build_model
from components.preprocessing.augment import build_augmentation, build_transform
from components.preprocessing.augment3d import build_augmentation_3d
from components.registry import RegistryError
from components.training.native_data import native_model_kwargs
from components.training.optim import build_optimizer
from components.training.schedulers import build_scheduler


def check_data_dir(params: Params, root: Path | None = None) -> list[str]:
    """Problems with ``data.dir`` (relative paths are taken from ``root``, default the cwd)."""
    raw = Path(params.data.dir)
    path = raw if raw.is_absolute() or root is None else root / raw
    expected = "a dataset folder holding images/ and masks/ (paired by file stem)"
    if not path.exists():
        return [f"data.dir: {path} does not exist; expected {expected}"]
    if not path.is_dir():
        return [f"data.dir: {path} is not a folder; expected {expected}"]
    missing = [f"{sub}/" for sub in ("images", "masks") if not (path / sub).is_dir()]
    if missing:
        return [f"data.dir: {path} has no {' or '.join(missing)}; expected {expected}"]
    return []


def _attempt(problems: list[str], key: str, build: Callable[[], Any], arg_key: str | None = None) -> Any:
    """``build()``, or None with ``"<key>.name: ..."`` (unknown name) or ``"<arg_key>: ..."`` (default
    ``<key>.kwargs``: anything else) appended to ``problems``.

    Any exception counts: what the registries, torch, smp or albumentations raise for a bad name
    or argument varies (RegistryError, ValueError, TypeError, KeyError, AssertionError...).
    """
    try:
        return build()
    except RegistryError as err:
        problems.append(f"{key}.name: {err}")
    except Exception as err:
        problems.append(f"{arg_key or key + '.kwargs'}: {type(err).__name__}: {err}")
    return None


def _parameters(model: nn.Module | None) -> Iterable[nn.Parameter]:
    """The model's parameters, or a stand-in when the model could not be built."""
    return model.parameters() if model is not None else [nn.Parameter(torch.zeros(1))]


def preflight(params: Params, root: Path | None = None) -> None:
    """Build the model, loss, optimiser, scheduler and augmentation that ``params`` names.

    Everything is built on the CPU with random weights (``encoder_weights`` forced to None, so
    nothing is downloaded); nothing is trained or written.

    Args:
        params: Validated params (e.g. :func:`components.config_edit.merged_params`).
        root: Folder that a relative ``data.dir`` is relative to (the workspace; default cwd).

    Raises:
        ConfigError: One line per problem, each naming the params key (``train.model.name``,
            ``train.optimizer.kwargs``, ``train.loss[1].name``, ``data.dir``...) and the message.
    """
    problems = check_data_dir(params, root)
    tc, k = params.train, params.data.num_classes

    kwargs = {**tc.model.kwargs, "encoder_weights": None}
    patch = tc.patch_size or []

    def _model() -> nn.Module:
        extra = native_model_kwargs(tc.model.name, kwargs, patch, None) if patch else kwargs
        return build_model(tc.model.name, params.data.channels, k, **extra)

    model = _attempt(problems, "train.model", _model)
    uniform = [1.0 / k] * k  # stand-in class frequencies (weighted CE)
    for i, term in enumerate(tc.loss):
        _attempt(problems, f"train.loss[{i}]", partial(build_loss, [term.model_dump()], k, uniform))
    optimizer = _attempt(
        problems,
        "train.optimizer",
        lambda: build_optimizer(tc.optimizer.name, _parameters(model), **tc.optimizer.kwargs),
    )
    if optimizer is not None:  # the schedule depends on the optimiser (its lr, momentum)
        _attempt(
            problems,
            "train.scheduler",
            lambda: build_scheduler(
                tc.scheduler.name, optimizer, epochs=tc.epochs, steps_per_epoch=1, **tc.scheduler.kwargs
            ),
        )
    specs = [t.model_dump() for t in tc.augment.transforms]
    if len(patch) == 3:  # 3D patches: the albumentations 3D + MONAI pipeline (names its own index)
        key = "train.augment.transforms"
        _attempt(problems, key, lambda: build_augmentation_3d(specs, tc.augment.seed), arg_key=key)
        specs = []
    before = len(problems)
    for i, spec in enumerate(specs):
        _attempt(problems, f"train.augment.transforms[{i}]", partial(build_transform, spec, i))
    if len(problems) == before:
        _attempt(
            problems,
            "train.augment.transforms",
            lambda: build_augmentation(specs, tc.augment.seed),
            arg_key="train.augment.transforms",
        )

    if problems:
        raise ConfigError(
            "params check failed: " + problems[0]
            if len(problems) == 1
            else "params check failed:\n" + "\n".join(f"  - {p}" for p in problems)
        )
