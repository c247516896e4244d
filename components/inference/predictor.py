"""Raw image -> class probabilities at the original resolution, for one model or a fold ensemble.

The same predictor scores fold validation cases, the ensemble's test cases and new images in
the packaged MLflow model, so evaluation measures exactly what users get.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from components.core.threads import apply_threads
from components.inference.native_predictor import NativePredictor
from components.inference.options import InferenceOptions
from components.postprocessing import Postprocessing
from components.preprocessing.native import NativeSpec
from components.preprocessing.pipeline import PreprocessSpec, to_network_input, to_unit_image
from components.preprocessing.spatial import restore
from components.training.checkpoint import load_checkpoint
from components.training.device import resolve_device

IMAGE_BATCH = 8  # images per forward pass of a batch prediction (memory: 8 network inputs' activations)


def _softmax(model: nn.Module, x: torch.Tensor, tta: bool) -> torch.Tensor:
    """Softmax of one model, averaged with its horizontally flipped prediction when ``tta``.

    Shape:
        x: (N, C_in, h, w) -> (N, K, h, w)
    """
    probs = model(x).float().softmax(1)
    if tta:
        flipped = model(torch.flip(x, dims=[-1])).float().softmax(1)
        probs = (probs + torch.flip(flipped, dims=[-1])) / 2
    return probs


class Predictor:
    """Averages the softmax probabilities of ``models`` (a fold ensemble or a single model).

    Args:
        models: Trained networks (eval mode is set here).
        spec: Preprocessing applied to raw images before the networks.
        tta: Average with the horizontal-flip prediction.
        device: Where to run.
        postprocessing: Rules applied to the label maps of :meth:`predict_labels`.
    """

    def __init__(
        self,
        models: Sequence[nn.Module],
        spec: PreprocessSpec,
        tta: bool = False,
        device: str = "cpu",
        postprocessing: Postprocessing | None = None,
    ) -> None:
        if not models:
            raise ValueError("Predictor needs at least one model")
        self.device = torch.device(device)
        self.models = [m.to(self.device).eval() for m in models]
        self.spec = spec
        self.tta = tta
        self.options = InferenceOptions(tta=tta, postprocessing=postprocessing)

    @torch.no_grad()
    def predict_network(self, x: np.ndarray) -> np.ndarray:
        """Probabilities at network size.

        Shape:
            x: (N, C_in, h, w) float32 -> (N, K, h, w) float32
        """
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)
        total = sum(_softmax(m, xt, self.tta) for m in self.models)
        assert isinstance(total, torch.Tensor)  # at least one model (checked in __init__)
        return (total / len(self.models)).cpu().numpy()

    def predict_proba(self, image: np.ndarray, spacing: Sequence[float] | None = None) -> np.ndarray:
        """Probabilities for one raw image at its original size (``spacing`` is not needed in 2D).

        Shape:
            image: (H, W) or (H, W, C), any dtype -> (K, H, W) float32
        """
        del spacing
        return self.predict_proba_batch([image])[0]

    def predict_proba_batch(
        self, images: Sequence[np.ndarray] | np.ndarray, batch_size: int = IMAGE_BATCH
    ) -> list[np.ndarray]:
        """Probabilities for raw images, each at its own original size, the networks running on
        ``batch_size`` images per forward pass (one pass per image is slower: on a loaded CPU,
        and on a GPU by far). The same numbers as :meth:`predict_proba` image by image.

        Shape:
            images: each (H_i, W_i) or (H_i, W_i, C), any dtype (or one (N, H, W[, C]) array)
            -> each (K, H_i, W_i) float32
        """
        out: list[np.ndarray] = []
        for start in range(0, len(images), batch_size):
            chunk = [to_unit_image(img, None, self.spec) for img in images[start : start + batch_size]]
            x = np.stack([to_network_input(unit, self.spec) for unit, _, _ in chunk])
            probs = self.predict_network(x)
            out.extend(restore(p, sp).astype(np.float32) for p, (_, _, sp) in zip(probs, chunk, strict=True))
        return out

    def predict_labels(self, image: np.ndarray) -> np.ndarray:
        """Label map for one raw image at its original size.

        Shape:
            image: (H, W) or (H, W, C) -> (H, W) uint8
        """
        return self.options.labels(self.predict_proba(image)).astype(np.uint8)


def predictor_from_checkpoints(
    checkpoints: Sequence[Path], tta: bool = False, options: InferenceOptions | None = None
) -> Predictor | NativePredictor:
    """A predictor averaging the softmax of every checkpoint (one fold, or the fold ensemble).

    The preprocessing is the first checkpoint's (every fold of one training shares it): a
    network-size :class:`Predictor`, or a sliding-window :class:`NativePredictor` for patch-mode
    checkpoints. ``options`` (TTA axes, ensemble mode, windows) overrides ``tta`` when given.
    """
    apply_threads()  # fold scoring, the test report and the packaged model: threads that fit the cores
    loaded = [load_checkpoint(p) for p in checkpoints]
    models, spec = [m for m, _, _ in loaded], loaded[0][2]
    opts = options if options is not None else InferenceOptions(tta=tta)
    if isinstance(spec, NativeSpec):
        return NativePredictor(models, spec, opts, device=resolve_device("auto"))
    device = resolve_device("auto")  # a GPU where there is one (fold scoring and the packaged model)
    return Predictor(models, spec, tta=opts.tta, postprocessing=opts.postprocessing, device=str(device))
