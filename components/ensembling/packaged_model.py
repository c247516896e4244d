"""A packaged (MLflow pyfunc) ensemble as a predictor, and its score on a set of cases."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from components.evaluation.scoring import ScoringOptions, score_cases
from components.metrics.reductions import mean_foreground_dice


class PyfuncPredictor:
    """Adapts a loaded MLflow pyfunc ensemble to the :class:`Predictor` interface used for scoring."""

    def __init__(self, model_uri: str) -> None:
        import mlflow.pyfunc

        self.model = mlflow.pyfunc.load_model(model_uri)

    def predict_proba(self, image: np.ndarray, spacing: Sequence[float] | None = None) -> np.ndarray:
        """Shape: image (H, W[, C]) -> (K, H, W); a volume (C, Z, Y, X) with its spacing -> (K, Z, Y, X)."""
        params = {"output": "probabilities", "input_dtype": str(image.dtype)}
        if spacing is not None:  # a volume: one (C, Z, Y, X) input with its spacing
            params["spacing"] = ",".join(str(float(s)) for s in spacing)
            return np.asarray(self.model.predict(image.astype(np.float32), params=params))[0]
        x = image[..., None] if image.ndim == 2 else image
        return np.asarray(self.model.predict(x[None].astype(np.float32), params=params))[0]


def score_model_uri(
    model_uri: str, cases: pd.DataFrame, data_dir: Path, opts: ScoringOptions
) -> float | None:
    """Mean foreground Dice of a packaged model on ``cases`` (to re-score a champion on this split);
    None when no foreground class has a Dice value (see ``mean_foreground_dice``)."""
    scored = score_cases(
        PyfuncPredictor(model_uri),
        cases,
        data_dir,
        ScoringOptions(opts.class_names, opts.spacing, opts.connectivity, opts.surface_tolerance, 0),
        desc="re-score champion",
    )
    return mean_foreground_dice(scored.per_case)
