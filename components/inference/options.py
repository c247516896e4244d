"""How a predictor combines windows, mirrored copies and fold models (params ``ensemble``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from components.postprocessing import Postprocessing

if TYPE_CHECKING:
    from components.params.config import Params


@dataclass(frozen=True)
class InferenceOptions:
    """Test-time settings, stored with the packaged model so it predicts as the test report did.

    Attributes:
        tta: Mirroring test-time augmentation (2D resize modes: horizontal flip only).
        tta_axes: Patch mode: the patch axes to mirror (every subset is averaged); None = all.
        mode: Fold ensemble by ``mean`` probabilities or majority ``vote`` of the labels.
        overlap: Sliding-window overlap (fraction of the window).
        window_batch: Windows per forward pass.
        postprocessing: Connected-component rules applied to the label map (chosen on CV).
    """

    tta: bool = False
    tta_axes: tuple[int, ...] | None = None
    mode: str = "mean"
    overlap: float = 0.5
    window_batch: int = 4
    postprocessing: Postprocessing | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain values."""
        d = asdict(self)
        d["tta_axes"] = list(self.tta_axes) if self.tta_axes is not None else None
        d["postprocessing"] = self.postprocessing.to_json() if self.postprocessing is not None else None
        return d

    def labels(self, probs: np.ndarray) -> np.ndarray:
        """The label map of class probabilities: argmax, then the postprocessing rules.

        Shape:
            (K, *S) -> (*S) int64
        """
        labels = np.asarray(probs).argmax(0)
        return self.postprocessing.apply(labels) if self.postprocessing is not None else labels

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> InferenceOptions:
        """Inverse of :meth:`to_json` (missing keys take the defaults)."""
        axes = d.get("tta_axes")
        pp = d.get("postprocessing")
        return cls(
            tta=bool(d.get("tta", False)),
            tta_axes=tuple(int(a) for a in axes) if axes is not None else None,
            mode=str(d.get("mode", "mean")),
            overlap=float(d.get("overlap", 0.5)),
            window_batch=int(d.get("window_batch", 4)),
            postprocessing=Postprocessing.from_json(pp) if pp else None,
        )


def window_options(params: Params) -> InferenceOptions:
    """Fold evaluation: one model, no TTA, the sliding windows of ``evaluate.overlap`` / ``window_batch``."""
    ev = params.evaluate
    return InferenceOptions(overlap=ev.overlap, window_batch=ev.window_batch)


def inference_options(params: Params, postprocessing: Postprocessing | None = None) -> InferenceOptions:
    """The fold ensemble: ``ensemble.tta``, ``tta_axes``, ``mode`` with the evaluate windows and
    the postprocessing chosen on cross-validation."""
    en, ev = params.ensemble, params.evaluate
    return InferenceOptions(
        tta=en.tta,
        tta_axes=tuple(en.tta_axes) if en.tta_axes is not None else None,
        mode=en.mode,
        overlap=ev.overlap,
        window_batch=ev.window_batch,
        postprocessing=postprocessing,
    )
