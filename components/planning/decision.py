"""One planned value and why: the unit every planning rule returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from components.core.errors import UserError


class PlanError(UserError, ValueError):
    """The plan cannot be made: the message names the params key or file and what would work."""


@dataclass(frozen=True)
class Decision:
    """A planned value (JSON-ready) and a one-line reason a user can check."""

    value: Any
    reason: str
