"""Cross-validation: each fold's best model scored on its own validation cases."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from components.core.layout import best_checkpoint
from components.evaluation.roc import StreamingROC
from components.evaluation.scoring import ScoredCases, ScoringOptions, score_cases
from components.inference.options import InferenceOptions
from components.inference.predictor import predictor_from_checkpoints
from components.metrics.protocol import PooledCounts


def evaluate_folds(
    folds: Sequence[int],
    fold_cases: Sequence[Sequence[str]],
    manifest: pd.DataFrame,
    data_dir: Path,
    folds_dir: Path,
    opts: ScoringOptions,
    inference: InferenceOptions | None = None,
) -> ScoredCases:
    """Score every fold's best model on that fold's validation cases; rows carry a ``fold`` column.

    The ROC and the pooled pixel counts are pooled over the folds' pixels, the postprocessing
    candidates (when ``opts`` asks for them) gathered over all folds; the gallery keeps the
    worst cases over all folds. ``inference`` sets the sliding windows of patch-mode models
    (fold scores use no TTA unless it says so).
    """
    frames, worst, candidates = [], [], []
    roc = StreamingROC(len(opts.class_names))
    pooled = PooledCounts(len(opts.class_names))
    by_id = manifest.set_index(manifest["case_id"].astype(str), drop=False)
    for fold in folds:
        scored = score_cases(  # adds to the pooled ROC
            predictor_from_checkpoints([best_checkpoint(fold, folds_dir)], options=inference),
            by_id.loc[list(fold_cases[fold])],
            data_dir,
            opts,
            desc=f"evaluate fold {fold}",
            roc=roc,
        )
        frames.append(scored.per_case.assign(fold=fold))
        worst.extend(scored.worst)
        if scored.pooled is not None:
            pooled.merge(scored.pooled)
        if scored.candidates is not None:
            candidates.append(scored.candidates)
    worst.sort(key=lambda item: float(item["mean_dice"]))
    table = pd.concat(candidates, ignore_index=True) if candidates else None
    return ScoredCases(pd.concat(frames, ignore_index=True), roc, worst[: opts.worst_cases], pooled, table)
