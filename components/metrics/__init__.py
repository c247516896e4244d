"""The one implementation of every segmentation metric (overlap, volume, surface), per class and case.

See :mod:`components.metrics.panel` for the definitions and the empty-mask policy table.
"""

from __future__ import annotations

from components.metrics.panel import (
    EMPTY_POLICY,
    METRIC_INFO,
    METRIC_NAMES,
    SURFACE_METRICS,
    MetricInfo,
    binary_metrics,
    case_metrics,
    empty_state,
    surface_metrics,
)
from components.metrics.surface import SurfaceDistances, border, surface_distances

__all__ = [
    "EMPTY_POLICY",
    "METRIC_INFO",
    "METRIC_NAMES",
    "SURFACE_METRICS",
    "MetricInfo",
    "SurfaceDistances",
    "binary_metrics",
    "border",
    "case_metrics",
    "empty_state",
    "surface_distances",
    "surface_metrics",
]
