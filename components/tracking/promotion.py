"""Register the packaged ensemble in the MLflow model registry and apply the promotion gate.

A new version becomes ``champion`` when it is the first or when its test score is not worse than the
current champion's on the same test split; otherwise ``challenger``. The whole "read the champion ->
compare -> register -> set the alias" runs under the model's gate lock
(:mod:`components.tracking.gate_lock`), so two ensembles registering at once are judged one after
the other, each against the champion the other left.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException

from components.core.layout import PER_CASE_FILE, TEST_REPORTS
from components.evaluation.statistics import compare_paired
from components.tracking.gate_lock import gate_lock
from components.tracking.tracker import Tracker

CHAMPION, CHALLENGER = "champion", "challenger"
TAG_TEST_DICE = "segflow.test_dice"
TAG_SPLIT = "segflow.test_split_sha256"


@dataclass(frozen=True)
class Registration:
    """Outcome of registering one ensemble."""

    name: str
    version: str
    alias: str
    test_dice: float
    champion_dice: float | None
    reason: str


def _champion_dice(
    tracker: Tracker, name: str, split_sha: str, score_uri: Callable[[str], float | None]
) -> tuple[float | None, str | None]:
    """The current champion's test Dice on this split (re-scored when it was tested on another)."""
    try:
        champ = tracker.client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None, None
    if champ.tags.get(TAG_SPLIT) == split_sha and TAG_TEST_DICE in champ.tags:
        return float(champ.tags[TAG_TEST_DICE]), champ.version
    score = score_uri(f"models:/{name}@{CHAMPION}")
    if score is None:  # no foreground class scored: an empty split; never treat as "no champion"
        raise ValueError(
            f"the champion {name} v{champ.version} could not be scored on this test split "
            "(no foreground class has a Dice value); check the test split in splits.json"
        )
    return score, champ.version


def champion_per_case(tracker: Tracker, name: str, split_sha: str) -> pd.DataFrame | None:
    """The current champion's per-case test table, when it was tested on this same split."""
    try:
        champ = tracker.client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None
    run_id = champ.tags.get("mlflow_run_id")
    if champ.tags.get(TAG_SPLIT) != split_sha or not run_id:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = tracker.client.download_artifacts(run_id, (TEST_REPORTS / PER_CASE_FILE).as_posix(), tmp)
        return pd.read_csv(path)


def compare_with_champion(
    tracker: Tracker, run_id: str, name: str, split_sha: str, per_case: pd.DataFrame, out: Path
) -> dict[str, Any] | None:
    """Paired tests (Wilcoxon, t-test, mean difference CI) of this ensemble against the champion.

    Writes ``out`` (JSON) in every case — a note when no champion was tested on this split — and
    logs it to ``run_id`` when there is a comparison.

    Returns:
        The comparison (``compare_paired`` output for Dice and HD95), or None without a champion.
    """
    champion = champion_per_case(tracker, name, split_sha)
    if champion is None:
        out.write_text(json.dumps({"note": "no champion tested on this test split"}))
        return None
    result = compare_paired(champion, per_case, metrics=("dice", "hd95"))
    out.write_text(json.dumps({"a": "champion", "b": "this ensemble", **result}, indent=2))
    tracker.log_artifact(run_id, out)
    return result


def register_and_gate(
    tracker: Tracker,
    model_uri: str,
    name: str,
    test_dice: float,
    split_sha: str,
    tags: Mapping[str, str],
    score_uri: Callable[[str], float | None],
) -> Registration:
    """Register ``model_uri`` as a new version of ``name`` and set its alias.

    The new version becomes ``champion`` when there is none yet or when its test Dice is not
    worse than the champion's on the same test split; otherwise it becomes ``challenger``.
    ``score_uri`` scores a model URI on the current test split (used when the champion was
    tested on another split). Runs under :func:`gate_lock`: the champion is read once the lock is
    held, so the decision uses the registry's state as no other gate can change it.
    """
    with gate_lock(tracker.uri, name):
        return _register_and_gate_locked(tracker, model_uri, name, test_dice, split_sha, tags, score_uri)


def _register_and_gate_locked(
    tracker: Tracker,
    model_uri: str,
    name: str,
    test_dice: float,
    split_sha: str,
    tags: Mapping[str, str],
    score_uri: Callable[[str], float | None],
) -> Registration:
    mlflow.set_tracking_uri(tracker.uri)
    mlflow.set_registry_uri(tracker.uri)
    champ_dice, champ_version = _champion_dice(tracker, name, split_sha, score_uri)
    mv = mlflow.register_model(
        model_uri, name, tags={**tags, TAG_TEST_DICE: f"{test_dice:.6f}", TAG_SPLIT: split_sha}
    )
    if champ_dice is None:
        alias, reason = CHAMPION, "first version of this model"
    elif test_dice >= champ_dice:
        alias, reason = CHAMPION, f"test Dice {test_dice:.4f} >= champion v{champ_version} {champ_dice:.4f}"
    else:
        alias, reason = CHALLENGER, f"test Dice {test_dice:.4f} < champion v{champ_version} {champ_dice:.4f}"
    tracker.client.set_registered_model_alias(name, alias, mv.version)
    tracker.client.set_model_version_tag(name, mv.version, "segflow.gate", reason)
    return Registration(name, str(mv.version), alias, test_dice, champ_dice, reason)
