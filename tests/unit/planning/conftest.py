"""Synthetic datasets and a deterministic cost model for testing the planner's rules.

The cost model stands in for measuring networks on a device (components/planning/measure.py does
that for real, and tests/unit/planning/test_measure.py checks it): a step costs time in proportion
to the voxels and filters it computes, and memory as the planner's own activation estimate plus
the weights, so each rule's outcome can be asserted exactly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from components.params.user import parse_user_params
from components.planning.budget import Budget
from components.planning.facts import DatasetFacts
from components.planning.measure import Candidate, Measurement
from components.planning.topology import activation_bytes, parameter_count, topology

CPU_VOXEL_FILTER_S = 6e-8  # seconds per voxel x base filter of a CPU training step (measured order)
CUDA_SPEEDUP = 50.0
# The ResNet-18-encoder U-Net costs a step like a 20-filter dynamic U-Net (a CPU measured 0.23 s against
# 16 filters' 0.19 s on 256 x 256, batch 2) and holds 14 M parameters; its memory is taken as 32 filters'.
ENCODER_COST_WIDTH = 20


def cost_model(c: Candidate, device: str) -> Measurement:
    """Seconds and bytes of a candidate, from the work it does (no device involved)."""
    encoder = c.model == "unet_resnet18"
    width = ENCODER_COST_WIDTH if encoder else int(json.loads(c.model_kwargs).get("base_filters", 32))
    voxels = math.prod(c.patch)
    step = CPU_VOXEL_FILTER_S * voxels * c.batch * width / (CUDA_SPEEDUP if device == "cuda" else 1.0)
    t = topology(c.patch, c.spacing or (1.0,) * len(c.patch), 32 if encoder else width)
    act = activation_bytes(t, c.batch, c.in_channels, c.num_classes)
    weights = parameter_count(t, c.in_channels, c.num_classes) * 16
    window = step / 3 * c.window_batch / c.batch
    params = 14_300_000 if encoder else parameter_count(t, 1, 2)
    return Measurement(step, window, act + weights, act, 0.001 * voxels / 1e5, params)


def facts(
    shape: Sequence[int],
    spacing: Sequence[float],
    n: int = 60,
    channels: int = 1,
    dtype: str = "float32",
    names: Sequence[str] | None = None,
    intensity: tuple[float, float] = (0.0, 1000.0),
    classes: int = 3,
    n_test: int | None = None,
    nonzero: float = 1.0,
    spread: float = 0.1,
) -> DatasetFacts:
    """A dataset of ``n`` cases around ``shape`` / ``spacing`` (spacings vary by +-``spread``)."""
    rng = np.random.default_rng(0)
    shapes = np.array([[max(1, round(s * f)) for s in shape] for f in rng.uniform(0.9, 1.1, n)])
    spacings = np.array([[s * f for s in spacing] for f in rng.uniform(1 - spread, 1 + spread, n)])
    fp: dict[str, Any] = {
        "ndim": len(shape),
        "channels": channels,
        "spacing": {
            "median": np.median(spacings, axis=0).tolist(),
            "p10": np.percentile(spacings, 10, axis=0).tolist(),
        },
        "shape": {"median": np.median(shapes, axis=0).tolist()},
        "coarsest_axis": int(np.argmax(np.median(spacings, axis=0))),
        "nonzero_fraction": {"median": nonzero},
        "class_source": "the test",
    }
    return DatasetFacts(
        ndim=len(shape),
        channels=channels,
        channel_names=tuple(names or [""] * channels),
        classes={"background": 0, **{f"c{i}": i for i in range(1, classes)}},
        shapes=shapes,
        spacings=spacings,
        dtypes=(dtype,) * n,
        intensity_min=np.full(n, intensity[0]),
        intensity_max=np.full(n, intensity[1]),
        n_test=round(0.2 * n) if n_test is None else n_test,
        fingerprint=fp,
    )


def budget(hours: float = 1.0, memory_gb: float = 8.0, device: str = "cpu") -> Budget:
    """A device, memory and time budget, as the plan stage resolves them."""
    return Budget(device, f"test {device}", memory_gb, "test", hours * 3600, f"{hours}h", "test", 2)


def user(**keys: Any) -> Any:
    """params.yaml as written: everything auto except ``keys`` (dotted, as ``__``)."""
    raw: dict[str, Any] = {}
    for dotted, value in keys.items():
        node = raw
        *parents, last = dotted.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return parse_user_params(raw)
