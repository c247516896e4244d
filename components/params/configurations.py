"""The configurations a run trains and where each one's params and folds are.

The plan stage writes the list into the resolved params (``plan.configurations``, e.g. ``[3d]`` or
``[3d, 2d]``): the first configuration's params are plans/params.yaml and its folds
``models/folds/fold_<k>`` (a single-configuration run's layout); a second one's params are
``plans/params-<name>.yaml`` and its folds ``models/folds/<name>/fold_<k>``
(components/core/layout.py). Params written by hand (no plan stage: ``plan.configurations: auto``)
are one configuration without a name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from components.core.layout import configuration_folds, configuration_params
from components.params.config import AUTO, ConfigError, Params, load_params


@dataclass(frozen=True)
class Configuration:
    """One configuration of a run.

    Attributes:
        name: ``3d`` or ``2d``; None for params that name none (written by hand).
        params_path: Its resolved params.
        folds_dir: The train stage's folder of its folds.
        first: The first configuration (plans/params.yaml, ``models/folds``).
    """

    name: str | None
    params_path: Path
    folds_dir: Path
    first: bool

    @property
    def label(self) -> str:
        """Its name, or ``single`` for params that name none."""
        return self.name or "single"


def run_configurations(params: Params, params_path: Path) -> list[Configuration]:
    """The configurations ``params`` (the first configuration's, read from ``params_path``) train."""
    listed = params.plan.configurations
    names: list[str | None] = [None] if listed == AUTO else list(listed)
    return [
        Configuration(
            name,
            configuration_params(name or "", i == 0, params_path),
            configuration_folds(name or "", i == 0),
            i == 0,
        )
        for i, name in enumerate(names)
    ]


def load_configurations(params: Params, params_path: Path) -> list[tuple[Configuration, Params]]:
    """Each configuration with its params (the first one's are ``params``).

    Raises:
        ConfigError: A second configuration's params are missing, or were planned for another run
            (their ``plan.configurations`` or folds differ from the first's; the plan stage checks
            that the configurations share their preprocessing).
    """
    out: list[tuple[Configuration, Params]] = []
    for c in run_configurations(params, params_path):
        if c.first:
            out.append((c, params))
            continue
        other = load_params(c.params_path)
        if other.plan.configurations != params.plan.configurations or other.folds != params.folds:
            raise ConfigError(
                f"{c.params_path} and {params_path} come from different plans (plan.configurations or "
                "train.folds differ); re-run the plan stage (dvc repro plan)"
            )
        out.append((c, other))
    return out
