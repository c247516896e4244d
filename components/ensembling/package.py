"""Score the fold ensemble on the test split, and score any packaged model URI the same way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from components.ensembling.predictor import Predictor
from components.evaluation.scoring import ScoredCases, ScoringOptions, score_cases
from components.training.checkpoint import load_checkpoint


def fold_ensemble(checkpoints: list[Path], tta: bool) -> Predictor:
    """A predictor averaging the softmax of every fold checkpoint."""
    loaded = [load_checkpoint(p) for p in checkpoints]
    return Predictor([m for m, _, _ in loaded], loaded[0][2], tta=tta)


class PyfuncPredictor:
    """Adapts a loaded MLflow pyfunc ensemble to the :class:`Predictor` interface used for scoring."""

    def __init__(self, model_uri: str) -> None:
        import mlflow.pyfunc

        self.model = mlflow.pyfunc.load_model(model_uri)

    def predict_proba(self, image: np.ndarray) -> np.ndarray:
        """Shape: image (H, W[, C]) -> (K, H, W)."""
        x = image[..., None] if image.ndim == 2 else image
        params = {"output": "probabilities", "input_dtype": str(image.dtype)}
        return np.asarray(self.model.predict(x[None].astype(np.float32), params=params))[0]


def mean_foreground_dice(scored: ScoredCases) -> float:
    """Mean over foreground classes of the per-class mean Dice: the promotion-gate score."""
    return float(scored.per_case.groupby("class_name")["dice"].mean().mean())


def score_model_uri(model_uri: str, cases: pd.DataFrame, data_dir: Path, opts: ScoringOptions) -> float:
    """Mean foreground Dice of a packaged model on ``cases`` (to re-score a champion on this split)."""
    scored = score_cases(
        PyfuncPredictor(model_uri),
        cases,
        data_dir,
        ScoringOptions(opts.class_names, opts.spacing, opts.connectivity, opts.surface_tolerance, 0),
        desc="re-score champion",
    )
    return mean_foreground_dice(scored)
