"""Sliding-window prediction over whole images and volumes (Gaussian-weighted, mirroring TTA).

Below training in the layers: fold validation in patch mode and every predictor use it.
"""

from components.windowing.sliding_window import (
    SliceWise,
    WindowSettings,
    count_windows,
    mirror_variants,
    sliding_window_probabilities,
)

__all__ = ["SliceWise", "WindowSettings", "count_windows", "mirror_variants", "sliding_window_probabilities"]
