"""The basics every params module shares: ``auto``, the params error, the YAML reader and the frozen
model base with a registry choice (a name plus keyword arguments)."""

from __future__ import annotations

import re
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from components.core.errors import UserError

AUTO = "auto"  # a plannable key's value when the plan stage chooses it (components/params/user.py)


def known(*values: Any) -> bool:
    """No value is ``"auto"``: a check across keys applies only once every key has its value (the
    plan stage checks the resolved params again)."""
    return not any(isinstance(v, str) and v == AUTO for v in values)


class ConfigError(UserError, ValueError):
    """params.yaml is missing, unreadable or holds an invalid value."""


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, but exponent floats without a dot (``1e-4``) are floats.

    YAML 1.1 (PyYAML) reads ``1e-4`` as the string "1e-4", while YAML 1.2 (ruamel.yaml, which
    writes overrides into params.yaml, and DVC) reads a float; ruamel also writes small floats
    such as 1e-05 in that form. Without this, ``--set train.optimizer.kwargs.lr=1e-4`` passed a
    string to the optimiser.
    """


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_yaml(text: str) -> Any:
    """Parse YAML text like :func:`yaml.safe_load`, with YAML 1.2 exponent floats (``1e-4``)."""
    return yaml.load(text, Loader=_Loader)  # safe: _Loader is a SafeLoader subclass


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Named(_Frozen):
    """A registry choice: a short registered name plus keyword arguments."""

    name: str
    kwargs: dict[str, Any] = Field(default_factory=dict)


class LossTerm(Named):
    """One weighted term of a (compound) loss."""

    weight: float = 1.0
