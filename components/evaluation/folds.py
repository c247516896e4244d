"""Fold evaluation: each fold's best model on its own validation cases."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from components.ensembling.predictor import Predictor
from components.evaluation.roc import StreamingROC
from components.evaluation.scoring import ScoredCases, ScoringOptions, score_cases
from components.training.checkpoint import load_checkpoint


def fold_checkpoint(folds_dir: Path, fold: int) -> Path:
    """The best checkpoint of ``fold``."""
    return folds_dir / f"fold_{fold}" / "best.pt"


def evaluate_folds(
    folds: Sequence[int],
    fold_cases: Sequence[Sequence[str]],
    manifest: pd.DataFrame,
    data_dir: Path,
    folds_dir: Path,
    opts: ScoringOptions,
) -> ScoredCases:
    """Score every fold's best model on that fold's validation cases; rows carry a ``fold`` column.

    The ROC is pooled over the folds' pixels; the gallery keeps the
    worst cases over all folds.
    """
    frames, worst = [], []
    roc = StreamingROC(len(opts.class_names))
    by_id = manifest.set_index(manifest["case_id"].astype(str), drop=False)
    for fold in folds:
        model, _, spec = load_checkpoint(fold_checkpoint(folds_dir, fold))
        scored = score_cases(  # adds to the pooled ROC
            Predictor([model], spec),
            by_id.loc[list(fold_cases[fold])],
            data_dir,
            opts,
            desc=f"evaluate fold {fold}",
            roc=roc,
        )
        frames.append(scored.per_case.assign(fold=fold))
        worst.extend(scored.worst)
    worst.sort(key=lambda item: float(item["mean_dice"]))  # type: ignore[arg-type]
    return ScoredCases(pd.concat(frames, ignore_index=True), roc, worst[: opts.worst_cases])
