"""The configuration chosen on cross-validation, as nnU-Net's ``find_best_configuration`` does.

With two configurations (3D and 2D on slices) every fold's validation cases are predicted by each
configuration's fold model, and by their ensemble: the mean of the two configurations'
probabilities per case, on the case's own grid. Each configuration's probabilities are kept on
disk for the fold (:class:`ProbabilityTape`) and averaged from there, so the ensemble costs no
inference of its own. The best single configuration or the ensemble, by out-of-fold case-mean
foreground Dice (per class the mean over cases, then the mean over classes: the headline and
gate score), is chosen; a tie (within :data:`TIE`) goes to the simpler one (a single
configuration before the ensemble, the plan's first before its second).

``reports/cv/configurations.json`` holds the comparison and the choice; a single-configuration
run writes it with its one configuration.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.core.layout import best_checkpoint
from components.evaluation.cross_validation import FoldScores, fold_validation_cases
from components.evaluation.scoring import ProbabilityModel, ScoredCases, ScoringOptions
from components.inference.options import InferenceOptions
from components.inference.predictor import predictor_from_checkpoints
from components.metrics.reductions import class_means, mean_foreground_dice

TIE = 1e-6  # scores this close are a tie
METRIC = "out-of-fold case-mean foreground Dice"
JOIN = "+"  # the ensemble's name: its members joined, e.g. "3d+2d"


@dataclass(frozen=True)
class TrainedConfiguration:
    """One configuration's fold models and how they predict (its sliding windows)."""

    name: str
    folds_dir: Path
    options: InferenceOptions | None = None


class ProbabilityTape:
    """A predictor's probabilities, case by case in the order predicted, kept in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.count = 0

    def recording(self, predictor: ProbabilityModel) -> ProbabilityModel:
        """``predictor``, its every prediction also written to the tape."""
        return _Recording(predictor, self)

    def write(self, probs: np.ndarray) -> None:
        """Append one case's probabilities."""
        np.save(self.folder / f"{self.count}.npy", probs)
        self.count += 1

    def read(self, index: int) -> np.ndarray:
        """The ``index``-th case's probabilities.

        Raises:
            IndexError: The tape holds fewer cases.
        """
        if index >= self.count:
            raise IndexError(f"{self.folder}: {self.count} case(s) recorded, case {index} asked for")
        return np.load(self.folder / f"{index}.npy")

    def clear(self) -> None:
        """Delete the recorded probabilities."""
        shutil.rmtree(self.folder, ignore_errors=True)
        self.count = 0


class _Recording:
    def __init__(self, predictor: ProbabilityModel, tape: ProbabilityTape) -> None:
        self.predictor, self.tape = predictor, tape

    def predict_proba(self, image: np.ndarray, spacing: Sequence[float] | None = None) -> np.ndarray:
        probs = self.predictor.predict_proba(image, spacing)
        self.tape.write(probs)
        return probs


class TapeMean:
    """The mean of several tapes' probabilities, case by case in the order they were recorded
    (score the same cases in the same order as when they were recorded)."""

    def __init__(self, tapes: Sequence[ProbabilityTape]) -> None:
        self.tapes = list(tapes)
        self.index = 0

    def predict_proba(self, image: np.ndarray, spacing: Sequence[float] | None = None) -> np.ndarray:
        """Shape: -> (K, *S), the recorded cases' shape (``image`` only advances the tape).

        Raises:
            ValueError: The tapes' probabilities of this case differ in shape.
        """
        del image, spacing
        probs = [t.read(self.index) for t in self.tapes]
        if len({p.shape for p in probs}) != 1:
            raise ValueError(f"case {self.index}: the configurations' probabilities differ in shape")
        self.index += 1
        return np.asarray(np.mean(probs, axis=0, dtype=np.float32))


def ensemble_name(names: Sequence[str]) -> str:
    """The ensemble of ``names`` as the comparison calls it (``3d+2d``)."""
    return JOIN.join(names)


def choose(scores: Mapping[str, float | None], order: Sequence[str]) -> tuple[str, str]:
    """The best of ``order`` by ``scores`` (None: no foreground Dice, never chosen over a score);
    a tie within :data:`TIE` goes to the earlier in ``order`` (singles first, the ensemble last).

    Returns:
        The chosen name and a one-line reason.
    """
    best = order[0]
    for name in order[1:]:
        s, b = scores.get(name), scores.get(best)
        if s is not None and (b is None or s > b + TIE):
            best = name
    shown = ", ".join(f"{n} {_num(scores.get(n))}" for n in order)
    if len(order) == 1:
        return best, f"the only configuration trained ({METRIC} {_num(scores.get(best))})"
    return best, f"the highest {METRIC} ({shown}; ties go to the simpler)"


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def cross_validate(
    configurations: Sequence[TrainedConfiguration],
    folds: Sequence[int],
    fold_cases: Sequence[Sequence[str]],
    manifest: pd.DataFrame,
    data_dir: Path,
    opts: ScoringOptions,
) -> dict[str, ScoredCases]:
    """Each configuration's out-of-fold scores and, with several, their ensemble's (by name)."""
    names = [c.name for c in configurations]
    several = len(configurations) > 1
    scores = {n: FoldScores(opts) for n in names + ([ensemble_name(names)] if several else [])}
    by_id = fold_validation_cases(manifest)
    with tempfile.TemporaryDirectory(prefix="segflow-oof-") as tmp:
        for fold in folds:
            cases = by_id.loc[list(fold_cases[fold])]
            tapes = []
            for c in configurations:
                checkpoint = best_checkpoint(fold, c.folds_dir)
                predictor: ProbabilityModel = predictor_from_checkpoints([checkpoint], options=c.options)
                if several:
                    tapes.append(ProbabilityTape(Path(tmp) / f"{c.name}-{fold}"))
                    predictor = tapes[-1].recording(predictor)
                label = f"evaluate {c.name} fold {fold}" if several else f"evaluate fold {fold}"
                scores[c.name].score(fold, predictor, cases, data_dir, desc=label)
            if several:
                desc = f"evaluate {ensemble_name(names)} fold {fold}"
                scores[ensemble_name(names)].score(fold, TapeMean(tapes), cases, data_dir, desc=desc)
                for tape in tapes:
                    tape.clear()
    return {name: s.result() for name, s in scores.items()}


def comparison(scored: Mapping[str, ScoredCases], members: Sequence[str]) -> dict[str, Any]:
    """configurations.json: every candidate's score, the choice and why."""
    order = list(scored)
    dice = {name: mean_foreground_dice(s.per_case) for name, s in scored.items()}
    chosen, reason = choose(dice, order)
    return {
        "metric": METRIC,
        "chosen": chosen,
        "members": list(members) if chosen == ensemble_name(members) and len(members) > 1 else [chosen],
        "reason": reason,
        "candidates": {
            name: {
                "dice": dice[name],
                "per_class": {str(k): float(v) for k, v in class_means(s.per_case, "dice").dropna().items()},
                "n_cases": int(s.per_case["case_id"].nunique()),
            }
            for name, s in scored.items()
        },
    }


def write_comparison(path: Path, doc: Mapping[str, Any]) -> None:
    """Write configurations.json."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def read_comparison(path: Path) -> dict[str, Any]:
    """configurations.json as :func:`comparison` wrote it.

    Raises:
        FileNotFoundError: The evaluate stage has not run.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: missing; run the evaluate stage first (dvc repro evaluate)")
    doc: dict[str, Any] = json.loads(Path(path).read_text())
    return doc


def comparison_metrics(doc: Mapping[str, Any]) -> dict[str, float]:
    """MLflow metrics of the comparison: ``cv_config_dice_<name>`` (the ensemble's ``ensemble``)."""
    out = {}
    for name, c in doc["candidates"].items():
        if c.get("dice") is not None:
            out[f"cv_config_dice_{'ensemble' if JOIN in name else name}"] = float(c["dice"])
    return out
