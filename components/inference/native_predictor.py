"""Native-resolution prediction: preprocess like training, sliding windows, back to the case's grid.

One raw image or volume goes through the exact preprocessing recorded in the checkpoint
(crop, resampling, normalisation), then Gaussian-weighted sliding windows of the training patch
size with mirroring TTA over every subset of the chosen axes, averaged over the fold models
(or a majority vote), and the probabilities are mapped back to the original grid.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from components.inference.options import InferenceOptions
from components.preprocessing.native import NativeSpec, channels_first, preprocess_case, restore_probabilities
from components.windowing import SliceWise, WindowSettings, sliding_window_probabilities


class NativePredictor:
    """Fold models behind ``predict_proba(image, spacing)`` at the image's own resolution.

    Args:
        models: Trained networks (one fold, or the fold ensemble).
        spec: The checkpoint's native spec (its ``patch_size`` is the window).
        options: TTA axes, ensemble mode, overlap, window batch.
        device: Where the windows run; stitched probabilities stay on the CPU.
    """

    def __init__(
        self,
        models: Sequence[nn.Module],
        spec: NativeSpec,
        options: InferenceOptions | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        if not models:
            raise ValueError("NativePredictor needs at least one model")
        if spec.patch_size is None:
            raise ValueError("the checkpoint's spec has no patch_size (not trained in patch mode)")
        self.device = torch.device(device)
        self.spec = spec
        self.options = options or InferenceOptions()
        sliced = spec.slice_axis is not None
        self.models = [(SliceWise(m) if sliced else m).to(self.device).eval() for m in models]
        patch = tuple(spec.patch_size)
        axes = self.options.tta_axes if self.options.tta_axes is not None else tuple(range(len(patch)))
        mirror = tuple(a + 1 for a in axes) if sliced else tuple(axes)  # slices: (1, h, w) windows
        self.window = WindowSettings(
            patch_size=(1, *patch) if sliced else patch,
            overlap=self.options.overlap,
            batch_size=self.options.window_batch,
            mirror_axes=mirror if self.options.tta else (),
        )

    def network_probabilities(self, image: np.ndarray) -> np.ndarray:
        """Class probabilities on the prepared grid.

        Shape:
            image (C, *S) network input -> (K, *S) float32
        """
        axis = self.spec.slice_axis
        x = np.moveaxis(image, 1 + axis, 1) if axis is not None else image
        if self.options.mode == "vote" and len(self.models) > 1:
            probs = self._vote(x)
        else:
            probs = sliding_window_probabilities(self.models, x, self.window, self.device).numpy()
        return np.moveaxis(probs, 1, 1 + axis) if axis is not None else probs

    def _vote(self, x: np.ndarray) -> np.ndarray:
        """Share of the fold models voting for each class (each model's mirrored copies averaged first).

        Shape:
            x (C, *S) -> (K, *S) float32
        """
        votes: torch.Tensor | None = None
        for m in self.models:
            probs = sliding_window_probabilities([m], x, self.window, self.device)
            labels = probs.argmax(0, keepdim=True)
            votes = torch.zeros_like(probs) if votes is None else votes
            votes.scatter_add_(0, labels, torch.ones_like(labels, dtype=votes.dtype))
        assert votes is not None  # at least one model (checked in __init__)
        return (votes / len(self.models)).numpy()

    def predict_proba(self, image: np.ndarray, spacing: Sequence[float] | None = None) -> np.ndarray:
        """Probabilities for one raw image or volume on its original grid.

        Args:
            image: As read: 2D ``(H, W[, C])``; volume ``(Z, Y, X)`` or ``(C, Z, Y, X)``.
            spacing: The volume's spacing (array-axis order); None = 1 mm on every axis.

        Shape:
            -> (K, *S) float32, S the image's spatial shape
        """
        raw = channels_first(image, self.spec.ndim, self.spec.channels)
        sp = tuple(spacing) if spacing is not None else (1.0,) * self.spec.ndim
        x, _, record = preprocess_case(raw, sp, self.spec)
        scale, shift = record.intensity_map
        if (scale, shift) != (1.0, 0.0):  # in place: no second copy of a large volume
            x *= scale
            x += shift
        probs = self.network_probabilities(x)
        return restore_probabilities(probs, record)

    def predict_labels(self, image: np.ndarray, spacing: Sequence[float] | None = None) -> np.ndarray:
        """Label map on the original grid (uint8)."""
        return self.options.labels(self.predict_proba(image, spacing)).astype(np.uint8)
