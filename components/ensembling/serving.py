"""The packaged ensemble's request contract: input checks (a 4xx when served), request bodies, a client.

Request (``POST /invocations``, ``Content-Type: application/json``), as ``mlflow models serve``
takes it for a tensor signature::

    {"inputs": <nested list>, "params": {"output": "labels", "input_dtype": "uint8"}}

- 2D model: ``inputs`` is a batch of images of one size, ``(N, H, W, C)`` (C = 1 gray, 3 RGB, 4
  RGBA: converted to the training channels) or ``(N, H, W)``; ``input_dtype`` is the images'
  stored dtype when the model normalises by dtype range (pass the original pixel values).
- 3D model: ``inputs`` is ONE volume ``(C, Z, Y, X)`` with C = the training channels, and
  ``params.spacing = "z,y,x"`` in mm (resampled to the training spacing and back).
- ``output``: ``"labels"`` (default) -> ``{"predictions": (N, H, W) ints}`` (3D: ``(1, Z, Y, X)``);
  ``"probabilities"`` -> ``(N, K, H, W)`` floats.

A request the model cannot take (wrong rank or channel count, empty, non-finite values, bad
params) raises :class:`ModelInputError`: an ``MlflowException`` with ``INVALID_PARAMETER_VALUE``,
which the scoring server answers with HTTP 400 and the message (any other exception raised in
``predict`` becomes a 400 saying only "unexpected error", with the server's stack trace in the
body). Malformed JSON or a missing ``inputs`` key is answered 400 by MLflow itself.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

OUTPUTS = ("labels", "probabilities")


class ModelInputError(MlflowException, ValueError):
    """A request the packaged model cannot take; served as HTTP 400 with this message.

    The message says what was received and what was expected (shape, dtype, channels) and never
    holds the request's values: MLflow's scoring server rewrites an ``MlflowException``'s message
    as ``Failed to predict data '<every value of the request>'. Error: ...``; this one keeps its
    first message.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)

    @property
    def message(self) -> str:
        """What is wrong with the request (set once)."""
        return self._what

    @message.setter
    def message(self, value: str) -> None:
        if not hasattr(
            self, "_what"
        ):  # MlflowException.__init__ sets it; the scoring server's rewrite is dropped
            self._what = value


@dataclass(frozen=True)
class ModelInput:
    """A checked request: the batch (2D ``(N, H, W[, C])``, or one volume ``(C, Z, Y, X)``) and params."""

    x: np.ndarray
    output: str
    input_dtype: np.dtype | None
    spacing: tuple[float, ...] | None


def _dtype(name: str, x: np.ndarray) -> np.dtype | None:
    if not name:
        return None
    try:
        dtype = np.dtype(name)
    except TypeError:
        raise ModelInputError(f"params.input_dtype={name!r} is not a numpy dtype (e.g. 'uint8')") from None
    if dtype.kind not in "buif":
        raise ModelInputError(f"params.input_dtype={name!r}: expected a bool, integer or float dtype")
    if dtype.kind in "ui" and x.size:
        info = np.iinfo(dtype)
        lo, hi = float(x.min()), float(x.max())
        if lo < info.min or hi > info.max:
            raise ModelInputError(
                f"params.input_dtype={name!r}: values {lo:g}..{hi:g} lie outside its range "
                f"{info.min}..{info.max}"
            )
    return dtype


def _spacing(text: str) -> tuple[float, ...] | None:
    if not text.strip():
        return None
    try:
        values = tuple(float(s) for s in text.split(","))
    except ValueError:
        raise ModelInputError(
            f"params.spacing={text!r}: expected 'z,y,x' in mm, e.g. '2.5,0.7,0.7'"
        ) from None
    if len(values) != 3 or not all(math.isfinite(v) and v > 0 for v in values):
        raise ModelInputError(f"params.spacing={text!r}: expected three positive numbers 'z,y,x' (mm)")
    return values


def _numbers(model_input: Any) -> np.ndarray:
    """The request as a float32 array; what it is instead when it is not one (never its values)."""
    try:
        raw = np.asarray(model_input)
    except ValueError:  # nested lists of different lengths
        raise ModelInputError(
            "inputs is not a rectangular array (its rows differ in length): expected images of one "
            "size, (N, H, W, C) or (N, H, W) (3D: one volume (C, Z, Y, X))"
        ) from None
    if raw.dtype.kind not in "biuf":
        what = {"U": "text", "S": "bytes", "O": "objects", "M": "dates", "c": "complex numbers"}
        raise ModelInputError(
            f"inputs holds {what.get(raw.dtype.kind, raw.dtype.name)} (received dtype {raw.dtype}): "
            "expected numbers (the pixel values, integers or floats)"
        )
    return raw.astype(np.float32, copy=False)


def check_model_input(
    model_input: Any, params: Mapping[str, Any] | None, ndim: int, channels: int
) -> ModelInput:
    """Check a request against what the model takes; 2D inputs come back as ``(N, H, W[, C])``.

    Args:
        model_input: The (schema-enforced) input array.
        params: The request's params (``output``, ``input_dtype``, ``spacing``).
        ndim: The model's spatial dimensions (2 or 3).
        channels: The channels it was trained on.

    Raises:
        ModelInputError: What is wrong with the request, and what was expected.
    """
    params = dict(params or {})
    x = _numbers(model_input)
    output = str(params.get("output") or "labels")
    if output not in OUTPUTS:
        raise ModelInputError(f"params.output={output!r}: expected one of {', '.join(OUTPUTS)}")
    if ndim == 3:
        if x.ndim == 3 and channels == 1:
            x = x[None]
        if x.ndim != 4 or x.shape[0] != channels:
            raise ModelInputError(
                f"inputs has shape {list(x.shape)}: this 3D model takes one volume (C, Z, Y, X) "
                f"with C = {channels} channel(s)"
            )
    else:
        if x.ndim == 2:
            x = x[None]  # one (H, W) image
        ok = {1, 3, 4, channels}
        if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[-1] not in ok):
            raise ModelInputError(
                f"inputs has shape {list(x.shape)}: this 2D model takes a batch of images "
                f"(N, H, W, C) with C in {sorted(ok)} (gray, RGB, RGBA) or (N, H, W)"
            )
    if 0 in x.shape:
        raise ModelInputError(f"inputs has shape {list(x.shape)}: no pixels to segment")
    bad = int(x.size - np.count_nonzero(np.isfinite(x)))
    if bad:
        raise ModelInputError(
            f"inputs holds {bad} NaN or infinite value(s) of {x.size}: expected finite pixel values"
        )
    spacing = _spacing(str(params.get("spacing") or ""))
    return ModelInput(x, output, _dtype(str(params.get("input_dtype") or ""), x), spacing)


def request_body(images: np.ndarray, **params: str) -> dict[str, Any]:
    """The JSON body of ``POST /invocations`` for ``images`` (see the module docstring)."""
    body: dict[str, Any] = {"inputs": np.asarray(images, dtype=np.float32).tolist()}
    if params:
        body["params"] = {k: str(v) for k, v in params.items()}
    return body


def invoke(url: str, images: np.ndarray, timeout_s: float = 120.0, **params: str) -> np.ndarray:
    """Ask a ``segflow serve`` server at ``url`` (e.g. ``http://127.0.0.1:5001``) to segment ``images``.

    Raises:
        RuntimeError: The server answered an error (its status and message).
    """
    data = json.dumps(request_body(images, **params)).encode()
    req = urllib.request.Request(
        url.rstrip("/") + "/invocations", data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return np.asarray(json.loads(resp.read())["predictions"])
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"HTTP {exc.code}: {exc.read().decode(errors='replace')[:2000]}") from None


def example_request(url: str = "http://127.0.0.1:5001") -> str:
    """A curl command segmenting one 2x3 gray 8-bit image (what ``segflow serve --example`` prints)."""
    body = request_body(np.array([[[[0], [128], [255]], [[30], [60], [90]]]]), input_dtype="uint8")
    return (
        f"curl -s {url}/invocations -H 'Content-Type: application/json' -d '{json.dumps(body)}'\n"
        '# -> {"predictions": [[[0, 1, 1], [0, 0, 1]]]}   (N, H, W) class indices\n'
        '# 3D: one volume (C, Z, Y, X) with "params": {"spacing": "2.5,0.7,0.7"}; '
        '"output": "probabilities" for (N, K, H, W)'
    )
