"""The packaged model's inputs checked against its training data, wherever it predicts.

``segflow predict`` checks every input file before writing anything (``--strict`` then refuses
them all at once); the packaged model checks each request (a plain MLflow client, ``segflow
serve``) and logs what lies far outside, or refuses it with HTTP 400 when the request's ``strict``
param is ``true`` or the server was started with ``segflow serve --strict`` (``SEGFLOW_STRICT=1``).
The rule: :mod:`components.inference.input_check`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from components.inference.input_check import input_warnings

STRICT_ENV = "SEGFLOW_STRICT"
TRAINING_DATA_KEY = "training_data"  # the packaged model's ensemble.json
log = logging.getLogger("segflow.inputs")


def training_data_of(model: Any) -> Mapping[str, Any] | None:
    """The training data summary a packaged model carries (a loaded pyfunc or the model itself)."""
    inner = model.unwrap_python_model() if hasattr(model, "unwrap_python_model") else model
    return getattr(inner, "training_data", None)


def strict_request(params: Mapping[str, Any] | None) -> bool:
    """Whether a request asks to refuse inputs outside the training data (or the server does)."""
    given = str((params or {}).get("strict", "")).strip().lower()
    return given in ("true", "1", "yes") or os.environ.get(STRICT_ENV) == "1"


def image_warnings(
    case: str, ranges: Mapping[str, Any], image: np.ndarray, spacing: Sequence[float] | None
) -> list[str]:
    """What about one input lies far outside the training data.

    Shape: image ``(H, W)`` / ``(H, W, C)`` (2D, as read) or ``(C, Z, Y, X)`` (a volume).
    """
    if ranges["ndim"] == 3:
        channels_first = image if image.ndim == 4 else image[None]
        channels = channels_first.shape[0]
    else:
        channels_first = np.moveaxis(image if image.ndim == 3 else image[..., None], -1, 0)
        channels = channels_first.shape[0]
        if channels in (1, 3) and ranges["channels"] in (1, 3):
            channels = ranges["channels"]  # gray and RGB images are converted like the training data
    shape = channels_first.shape[1:]
    return input_warnings(case, ranges, shape, spacing, channels, channels_first)


def log_warnings(warnings: Sequence[str]) -> None:
    """Log each warning (the server's log, a client's console)."""
    for w in warnings:
        log.warning("input far outside the training data: %s", w)
