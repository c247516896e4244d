"""params.yaml -> typed, frozen config objects.

One section per stage (components/params/sections.py). Unknown keys and bad values are errors that
name the params key, so a typo in params.yaml (or in a ``dvc exp run -S`` override) never silently
falls back to a default.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import yaml
from pydantic import ConfigDict, Field, ValidationError, model_validator

from components.params.base import AUTO, ConfigError, Named, _Frozen, known, load_yaml
from components.params.keys import DVC_RESERVED_KEYS, reserved_key_paths
from components.params.reads import PARAMS_READS_ENV, record_reads
from components.params.sections import (
    MAX_CLASSES,
    NEAR_DUPLICATE_THRESHOLD,
    DataConfig,
    EnsembleConfig,
    EvaluateConfig,
    PlanConfig,
    PreprocessConfig,
    TrackingConfig,
    TrainConfig,
    ValidateConfig,
    duration_seconds,
)

__all__ = [  # what the rest of segflow imports from here (the params' one front door)
    "AUTO",
    "MAX_CLASSES",
    "NEAR_DUPLICATE_THRESHOLD",
    "ConfigError",
    "Named",
    "Params",
    "PlanConfig",
    "duration_seconds",
    "known",
    "load_params",
    "load_yaml",
    "parse_params",
]


class Params(_Frozen):
    """The whole params.yaml."""

    # the ``validate`` section is the field ``validate_`` (BaseModel has a ``validate`` method)
    model_config = ConfigDict(extra="forbid", frozen=True, validate_by_name=True, serialize_by_alias=True)

    data: DataConfig
    validate_: ValidateConfig = Field(default=ValidateConfig(), alias="validate")
    plan: PlanConfig = PlanConfig()
    preprocess: PreprocessConfig = PreprocessConfig()
    train: TrainConfig
    evaluate: EvaluateConfig = EvaluateConfig()
    ensemble: EnsembleConfig = EnsembleConfig()
    tracking: TrackingConfig = TrackingConfig()

    @model_validator(mode="after")
    def _folds_in_range(self) -> Params:
        k = self.preprocess.splits.n_folds
        if not known(self.train.folds):
            return self
        bad = [f for f in (self.train.folds or []) if not 0 <= f < k]
        if bad:
            raise ValueError(f"train.folds {bad} out of range for preprocess.splits.n_folds={k}")
        return self

    @model_validator(mode="after")
    def _patch_mode_complete(self) -> Params:
        patch, mode, steps = (
            self.train.patch_size,
            self.preprocess.spatial_mode,
            self.train.iterations_per_epoch,
        )
        if known(mode, patch) and mode == "patch" and (patch is None or len(patch) not in (2, 3)):
            raise ValueError(
                "preprocess.spatial_mode 'patch' needs train.patch_size: 2 ints (2D images, or 2D "
                f"slices of volumes) or 3 ints (3D volumes), got {patch}"
            )
        given = [v for v in (patch, steps) if known(v) and v is not None]
        if known(mode) and mode != "patch" and given:
            raise ValueError(
                "train.patch_size / train.iterations_per_epoch apply to preprocess.spatial_mode 'patch' "
                f"only (spatial_mode is {mode!r}); remove them or set the mode"
            )
        if known(patch) and self.ensemble.mode == "vote" and patch is None:
            raise ValueError("ensemble.mode 'vote' applies to preprocess.spatial_mode 'patch'; use 'mean'")
        axes = self.ensemble.tta_axes
        if known(axes, patch):
            bad_axes = [a for a in (axes or []) if patch is None or a >= len(patch)]
            if bad_axes:
                raise ValueError(f"ensemble.tta_axes {bad_axes} out of range for train.patch_size {patch}")
        return self

    @property
    def iterations_per_epoch(self) -> int | None:
        """Optimiser steps per epoch in patch mode (250 by default, nnU-Net's choice); None otherwise."""
        if self.preprocess.spatial_mode != "patch":
            return None
        return self.train.iterations_per_epoch or 250

    @property
    def folds(self) -> list[int]:
        """Fold indices to train/evaluate."""
        return (
            self.train.folds if self.train.folds is not None else list(range(self.preprocess.splits.n_folds))
        )


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid parameters"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = "unknown key (check spelling)" if e["type"] == "extra_forbidden" else e["msg"]
        lines.append(f"  - {key}: {msg}")
    return "\n".join(lines)


def _check_reserved_keys(raw: Any, source: str) -> None:
    """Reject keys that DVC's run cache leaves out of its hash (see components.params.keys)."""
    bad = reserved_key_paths(raw) if isinstance(raw, dict) else []
    if not bad:
        return
    names = ", ".join(sorted(DVC_RESERVED_KEYS))
    lines = [f"{source}: params keys named like DVC output metadata ({names})"]
    lines += [f"  - {key}" for key in bad]
    lines.append(
        "DVC's run cache ignores params with these names (treeverse/dvc#10296): changing one "
        "restores an earlier run's outputs instead of re-running the stage, and dvc.lock and "
        "`dvc status` hide it. Rename the key (e.g. `size` -> `image_size`); kwargs are params "
        "too, so a component argument of that name cannot be set from params.yaml."
    )
    raise ConfigError("\n".join(lines))


def parse_params(raw: dict[str, Any], source: str = "params.yaml") -> Params:
    """Validate a params mapping.

    Raises:
        ConfigError: Lists every offending key with what was expected, or every key (at any
            depth, kwargs included) whose name DVC's run cache ignores.
    """
    _check_reserved_keys(raw, source)
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, source)) from None


def load_params(
    path: str | Path = "params.yaml", parse: Callable[[dict[str, Any], str], Params] = parse_params
) -> Params:
    """Read and validate a params file (``parse``: the resolved params' check by default; as written,
    ``auto`` allowed: :func:`components.params.user.load_user_params`)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: not found; run from the project root or pass --params")
    try:
        raw = load_yaml(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({exc})") from None
    params = parse(raw, str(p))
    reads_log = os.environ.get(PARAMS_READS_ENV)
    if reads_log:  # tests: which keys each stage reads (checked against dvc.yaml)
        return cast(Params, record_reads(params, Path(reads_log), os.environ.get("DVC_STAGE", "?")))
    return params
