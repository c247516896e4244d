"""params.yaml as the user writes it: every plannable key may say ``auto``.

The plan stage (components/planning/) turns ``auto`` into a value from the dataset's fingerprint,
the device and the time budget, and writes the resolved params (no ``auto`` left) that every later
stage reads. A value the user sets wins over the planned one.

:data:`PLANNABLE` names the keys the plan chooses. :class:`UserParams` is :class:`Params` with each
of those keys widened to accept ``"auto"`` (its default, so a key left out is planned too); every
other key is checked exactly as in :class:`Params`. Checks that span several keys run only once
every key they read has a value (:func:`components.params.config.known`); the resolved params are
checked in full by the plan stage.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, cast

from pydantic import BaseModel, Field, ValidationError, create_model
from pydantic.fields import FieldInfo

from components.params.config import (
    AUTO,
    ConfigError,
    Params,
    _check_reserved_keys,
    load_params,
)

# Keys the plan stage chooses when they say ``auto`` (dotted params.yaml paths).
PLANNABLE: tuple[str, ...] = (
    "data.classes",
    "data.channels",
    "preprocess.spatial_mode",
    "preprocess.target_spacing",
    "preprocess.crop_nonzero",
    "preprocess.slice_axis",
    "preprocess.intensity",
    "train.model",
    "train.loss",
    "train.optimizer",
    "train.scheduler",
    "train.augment.transforms",
    "train.folds",
    "train.epochs",
    "train.batch_size",
    "train.patch_size",
    "train.iterations_per_epoch",
    "train.val_every",
    "train.bf16",
    "train.channels_last",
    "ensemble.registered_model",
    "evaluate.overlap",
    "ensemble.tta",
    "ensemble.tta_axes",
    "tracking.experiment",
)


def _with_default(info: FieldInfo, default: Any) -> FieldInfo:
    """A copy of a field's settings (alias, bounds) with another default."""
    out = copy.copy(info)
    out.default, out.default_factory = default, None
    return out


def _widened(model: type[BaseModel], prefix: str = "") -> type[BaseModel]:
    """A subclass of ``model`` whose plannable fields (at any depth) also accept ``"auto"``."""
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        key = f"{prefix}{info.alias or name}"
        annotation = info.annotation
        if key in PLANNABLE:
            # the field's bounds (ge=1 ...) apply to its own type, not to "auto"
            own = Annotated[annotation, *info.metadata] if info.metadata else annotation
            fields[name] = (own | Literal["auto"], Field(default=AUTO, alias=info.alias))
        elif any(p.startswith(key + ".") for p in PLANNABLE):
            assert isinstance(annotation, type) and issubclass(annotation, BaseModel), key
            sub = _widened(annotation, key + ".")
            value = sub.model_validate({})  # a section left out: its defaults, plannable keys auto
            fields[name] = (sub, _with_default(info, value))
    return cast(type[BaseModel], create_model(f"User{model.__name__}", __base__=model, **fields))


UserParams: type[Params] = cast(type[Params], _widened(Params))


def parse_user_params(raw: Mapping[str, Any], source: str = "params.yaml") -> Params:
    """Validate params.yaml as written (plannable keys may be ``auto``).

    Returns:
        A :data:`UserParams` instance (typed as :class:`Params`; plannable values may be ``"auto"``).

    Raises:
        ConfigError: Every offending key with what was expected.
    """
    _check_reserved_keys(dict(raw), source)
    try:
        return UserParams.model_validate(dict(raw))
    except ValidationError as err:
        raise ConfigError(_format_user_errors(err, source)) from None


def _format_user_errors(err: ValidationError, source: str) -> str:
    """Like the resolved params' errors, without pydantic's union branches: a plannable key's
    ``"auto"`` branch is left out and the other branch's tag is dropped from the key."""
    lines = [f"{source}: invalid parameters"]
    for e in err.errors():
        loc = [str(p) for p in e["loc"]]
        plannable = next((k for k in PLANNABLE if loc[: len(k.split("."))] == k.split(".")), None)
        if plannable is not None and len(loc) > len(plannable.split(".")):
            depth = len(plannable.split("."))
            if e["type"] == "literal_error" and loc[depth].startswith("literal["):
                continue  # the "auto" branch: its message would only say "Input should be 'auto'"
            loc = loc[:depth] + loc[depth + 1 :]
        key = ".".join(loc) or "(top level)"
        msg = "unknown key (check spelling)" if e["type"] == "extra_forbidden" else e["msg"]
        hint = " (or auto: the plan chooses it)" if ".".join(loc) == plannable else ""
        line = f"  - {key}: {msg}{hint}"
        if line not in lines:
            lines.append(line)
    return "\n".join(lines)


def load_user_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml as written (see :func:`parse_user_params`)."""
    return load_params(path, parse_user_params)


def get_key(tree: Any, dotted: str) -> Any:
    """The value at a dotted key of a params object or mapping."""
    node = tree
    for part in dotted.split("."):
        if isinstance(node, Mapping):
            node = node[part]
        else:
            field = "validate_" if part == "validate" else part
            node = getattr(node, field)
    return node


def auto_keys(user: Params) -> list[str]:
    """The plannable keys whose value is ``auto`` (the plan chooses them)."""
    return [k for k in PLANNABLE if _is_auto(get_key(user, k))]


def user_values(user: Params) -> dict[str, Any]:
    """The plannable keys the user set (JSON-ready values): the plan keeps them."""
    out = {}
    for key in PLANNABLE:
        value = get_key(user, key)
        if not _is_auto(value):
            out[key] = _plain(value)
    return out


def _is_auto(value: Any) -> bool:
    return isinstance(value, str) and value == AUTO


def _plain(value: Any) -> Any:
    """A params value as plain JSON-ready data."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
