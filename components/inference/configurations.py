"""A model of several configurations: 3D fold models (sliding 3D windows) and 2D ones (slices along
the coarse axis), each configuration predicting the input with its own windows and mirroring, and
their probabilities averaged on the input's own grid (what cross-validation chose as the
configurations' ensemble, components/evaluation/configurations.py).

One configuration is a plain fold ensemble (:func:`predictor_from_checkpoints`), as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from components.inference.native_predictor import NativePredictor
from components.inference.options import InferenceOptions
from components.inference.predictor import Predictor, predictor_from_checkpoints
from components.postprocessing import Postprocessing
from components.preprocessing.native import NativeSpec


@dataclass(frozen=True)
class Member:
    """One configuration of a packaged model: its fold checkpoints and how they predict."""

    name: str
    checkpoints: tuple[Path, ...]
    options: InferenceOptions


class ConfigurationEnsemble:
    """The mean of several configurations' probabilities on the input's grid.

    Args:
        predictors: One per configuration (each its fold ensemble), native-resolution volumes of
            the same channels.
        options: The labels' postprocessing (the first configuration's other settings are shown).

    Raises:
        ValueError: Fewer than two predictors, or ones that do not take the same inputs.
    """

    def __init__(self, predictors: Sequence[NativePredictor], options: InferenceOptions) -> None:
        if len(predictors) < 2:
            raise ValueError("a configuration ensemble needs at least two configurations")
        specs = [p.spec for p in predictors]
        if len({(s.ndim, s.channels) for s in specs}) != 1:
            raise ValueError(
                "the configurations take different inputs: "
                + ", ".join(f"{s.ndim}D with {s.channels} channel(s)" for s in specs)
            )
        self.predictors = list(predictors)
        self.spec = specs[0]  # the input checks (dimensions, channels) are every member's
        self.options = options

    def predict_proba(self, image: np.ndarray, spacing: Sequence[float] | None = None) -> np.ndarray:
        """Probabilities on the input's grid: each configuration's, averaged.

        Shape:
            image: as :meth:`NativePredictor.predict_proba` -> (K, *S) float32
        """
        total = self.predictors[0].predict_proba(image, spacing)
        for p in self.predictors[1:]:
            total += p.predict_proba(image, spacing)
        total /= len(self.predictors)
        return total

    def predict_labels(self, image: np.ndarray, spacing: Sequence[float] | None = None) -> np.ndarray:
        """Label map on the original grid (uint8)."""
        return self.options.labels(self.predict_proba(image, spacing)).astype(np.uint8)


def predictor_from_members(
    members: Sequence[Member], postprocessing: Postprocessing | None = None
) -> Predictor | NativePredictor | ConfigurationEnsemble:
    """One configuration's fold ensemble, or the configurations' ensemble; ``postprocessing``
    applies to the labels of the whole (as it was chosen on its out-of-fold cases).

    Raises:
        ValueError: No member, or several of which one is not a native-resolution model.
    """
    if not members:
        raise ValueError("a model needs at least one configuration")
    if len(members) == 1:
        m = members[0]
        return predictor_from_checkpoints(
            list(m.checkpoints), options=replace(m.options, postprocessing=postprocessing)
        )
    predictors = []
    for m in members:
        p = predictor_from_checkpoints(list(m.checkpoints), options=replace(m.options, postprocessing=None))
        if not isinstance(p, NativePredictor) or not isinstance(p.spec, NativeSpec):
            raise ValueError(
                f"configuration {m.name}: not a native-resolution (patch) model; cannot be averaged"
            )
        predictors.append(p)
    return ConfigurationEnsemble(predictors, replace(members[0].options, postprocessing=postprocessing))
