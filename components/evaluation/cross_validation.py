"""Cross-validation: the scores of each fold's model on its own validation cases, gathered into one
out-of-fold result (components/evaluation/configurations.py scores each configuration's folds)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from components.evaluation.roc import StreamingROC
from components.evaluation.scoring import (
    ProbabilityModel,
    ScoredCases,
    ScoringOptions,
    WorstCase,
    score_cases,
)
from components.metrics.protocol import PooledCounts


class FoldScores:
    """The scores of several folds gathered into one out-of-fold result: rows with a ``fold``
    column, the ROC and pooled pixel counts pooled over the folds' pixels, the postprocessing
    candidates of every fold, and the worst cases over all folds."""

    def __init__(self, opts: ScoringOptions) -> None:
        self.opts = opts
        self.roc = StreamingROC(len(opts.class_names))  # score_cases adds each fold's pixels to it
        self.pooled = PooledCounts(len(opts.class_names))
        self.frames: list[pd.DataFrame] = []
        self.worst: list[WorstCase] = []
        self.candidates: list[pd.DataFrame] = []

    def score(
        self, fold: int, predictor: ProbabilityModel, cases: pd.DataFrame, data_dir: Path, desc: str
    ) -> ScoredCases:
        """Score ``predictor`` on the fold's ``cases`` and add the result."""
        scored = score_cases(predictor, cases, data_dir, self.opts, desc=desc, roc=self.roc)
        self.frames.append(scored.per_case.assign(fold=fold))
        self.worst.extend(scored.worst)
        if scored.pooled is not None:
            self.pooled.merge(scored.pooled)
        if scored.candidates is not None:
            self.candidates.append(scored.candidates)
        return scored

    def result(self) -> ScoredCases:
        """Every fold added so far, as one :class:`ScoredCases`."""
        worst = sorted(self.worst, key=lambda item: float(item["mean_dice"]))[: self.opts.worst_cases]
        table = pd.concat(self.candidates, ignore_index=True) if self.candidates else None
        return ScoredCases(pd.concat(self.frames, ignore_index=True), self.roc, worst, self.pooled, table)


def fold_validation_cases(manifest: pd.DataFrame) -> pd.DataFrame:
    """The manifest indexed by case id (to pick a fold's validation cases in order)."""
    return manifest.set_index(manifest["case_id"].astype(str), drop=False)
