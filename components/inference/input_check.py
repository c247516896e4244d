"""Inputs checked against the data a model was trained on.

The packaged model carries a summary of its training data (:func:`training_ranges`, from the
validate stage's fingerprint and manifest): spacing and size per axis, channels, and per channel the
intensity range of the images and of their foreground. :func:`input_warnings` compares one input with
it and names what lies far outside: a spacing or size more than :data:`FAR` times beyond the
training's extremes, an intensity range that does not overlap the training's foreground at all, or one
more than :data:`FAR_RANGE` times wider or narrower (an 8-bit export of a 16-bit scan, HU against
normalised values). ``segflow predict --strict`` and ``serve --strict`` refuse such inputs
(:class:`InputOutsideTrainingError`); otherwise they are predicted with a warning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from components.core.errors import UserError

FAR = 2.0  # spacing / size: beyond [min / FAR, max * FAR] of the training cases
FAR_RANGE = 10.0  # intensity: a range this many times wider or narrower than the training's


class InputOutsideTrainingError(UserError, ValueError):
    """An input lies far outside what the model was trained on (``--strict``)."""


def training_ranges(
    fingerprint: Mapping[str, Any], intensity_min: Sequence[float], intensity_max: Sequence[float]
) -> dict[str, Any]:
    """The summary of the training data a packaged model keeps (JSON-ready).

    Args:
        fingerprint: The validate stage's fingerprint (spacing, shape, channels, foreground intensity).
        intensity_min: Each training case's lowest voxel (manifest ``intensity_min``).
        intensity_max: Each training case's highest voxel.
    """
    lo, hi = np.asarray(intensity_min, np.float64), np.asarray(intensity_max, np.float64)
    return {
        "ndim": int(fingerprint["ndim"]),
        "channels": int(fingerprint["channels"]),
        "spacing": {"min": list(fingerprint["spacing"]["min"]), "max": list(fingerprint["spacing"]["max"])},
        "shape": {"min": list(fingerprint["shape"]["min"]), "max": list(fingerprint["shape"]["max"])},
        "image_range": [float(np.median(lo)), float(np.median(hi))] if lo.size else None,
        "foreground": [
            None if s.get("p0_5") is None else [float(s["p0_5"]), float(s["p99_5"])]
            for s in fingerprint.get("intensity", [])
        ],
    }


def _axis_warnings(
    what: str, values: Sequence[float], lows: Sequence[float], highs: Sequence[float], unit: str
) -> list[str]:
    out = []
    for axis, (v, lo, hi) in enumerate(zip(values, lows, highs, strict=False)):
        if v < lo / FAR or v > hi * FAR:
            out.append(f"{what} {v:g}{unit} on axis {axis}, the training data had {lo:g}-{hi:g}{unit}")
    return out


def input_warnings(
    case: str,
    ranges: Mapping[str, Any],
    shape: Sequence[int],
    spacing: Sequence[float] | None,
    channels: int,
    image: np.ndarray,
) -> list[str]:
    """What about one input lies far outside the training data (empty when nothing does).

    Shape: image ``(C, *S)`` as read (before any normalisation).
    """
    problems: list[str] = []
    if channels != ranges["channels"]:
        problems.append(f"{channels} channel(s), the model was trained on {ranges['channels']}")
    if spacing is not None and ranges["ndim"] == 3:
        sp = ranges["spacing"]
        problems += _axis_warnings("spacing", spacing, sp["min"], sp["max"], " mm")
    problems += _axis_warnings(
        "size",
        [float(s) for s in shape],
        ranges["shape"]["min"],
        ranges["shape"]["max"],
        " voxels" if ranges["ndim"] == 3 else " px",
    )
    finite = image[np.isfinite(image)] if image.size else image
    if finite.size and ranges.get("image_range"):
        lo, hi = float(finite.min()), float(finite.max())
        t_lo, t_hi = ranges["image_range"]
        width, t_width = hi - lo, t_hi - t_lo
        fg = [f for f in ranges.get("foreground", []) if f]
        if fg and (hi < min(f[0] for f in fg) or lo > max(f[1] for f in fg)):
            problems.append(
                f"intensities {lo:g} to {hi:g} miss the training foreground's {fg[0][0]:g} to {fg[0][1]:g}"
            )
        elif t_width > 0 and width > 0 and not (t_width / FAR_RANGE <= width <= t_width * FAR_RANGE):
            problems.append(f"intensities span {lo:g} to {hi:g}, the training images {t_lo:g} to {t_hi:g}")
    return [f"{case}: {p}" for p in problems]


def check_inputs(warnings: Sequence[str], strict: bool) -> None:
    """Raise when ``strict`` and any input lies far outside the training data.

    Raises:
        InputOutsideTrainingError: Listing every warning and how to predict anyway.
    """
    if strict and warnings:
        raise InputOutsideTrainingError(
            "inputs far outside the training data (--strict refuses them; without --strict they are "
            "predicted with a warning):\n" + "\n".join(f"  - {w}" for w in warnings)
        )
