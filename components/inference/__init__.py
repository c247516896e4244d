"""Inference: raw image -> class probabilities at its own resolution, for one model or a fold ensemble."""
