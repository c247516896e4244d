"""Release the fold ensemble: package it, register it, gate it, describe it in the registry.

What the ensemble stage does once the test report is written; plain Python over the tracker, the
packaging and the gate, so the stage flow stays a few lines.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from components.core import layout
from components.data.splits import split_sha
from components.ensembling.packaged_model import score_model_uri
from components.ensembling.packaging import log_ensemble_model, save_ensemble_model
from components.evaluation.postprocess_report import describe
from components.evaluation.scoring import ScoringOptions
from components.inference.configurations import Member
from components.inference.options import InferenceOptions
from components.tracking.gate_lock import gate_lock
from components.tracking.model_card import CardFacts, publish_model_card
from components.tracking.plan_log import read_plan
from components.tracking.promotion import compare_with_champion, register_and_gate
from components.tracking.tracker import Tracker


def training_data() -> dict | None:
    """The summary of the data the model learned from, which its inputs are checked against (the
    validate stage's fingerprint and manifest; None in a workspace without them)."""
    if not (layout.FINGERPRINT.is_file() and layout.MANIFEST.is_file()):
        return None
    from components.inference.input_check import training_ranges
    from components.validation.manifest import read_manifest

    rows = read_manifest(layout.MANIFEST)
    rows = rows[rows["has_image"].astype(bool) & rows["has_mask"].astype(bool)]
    fingerprint = json.loads(layout.FINGERPRINT.read_text())
    return training_ranges(fingerprint, rows["intensity_min"].tolist(), rows["intensity_max"].tolist())


def release_ensemble(
    tracker: Tracker,
    run_id: str,
    registered_model: str,
    folds: Sequence[int],
    tta: bool | InferenceOptions,
    channels: int,
    test_dice: float,
    test_cases: pd.DataFrame,
    data_dir: Path,
    scoring: ScoringOptions,
    tags: Mapping[str, str],
    unit: str,
    members: Sequence[Member] = (),
) -> dict[str, Any]:
    """Package, register and gate the ensemble of ``folds``; write registration.json and the card.

    Args:
        tracker: The experiment's tracker; ``run_id`` is the ensemble's (child) run.
        registered_model: Registry name.
        folds: Fold indices whose best checkpoints form the ensemble.
        tta: Test-time settings of the packaged model (mirroring, windows, ensemble mode), or
            just whether to flip.
        channels: Input channels the model was trained on.
        test_dice: This ensemble's test mean foreground Dice (the gate score).
        test_cases: Manifest rows of the test split (to re-score a champion tested elsewhere).
        data_dir: Dataset root the manifest's paths start from.
        scoring: How cases are scored (class names, spacing, ...).
        tags: Lineage tags for the model version.
        unit: Distance unit of the reports ("mm" or "px").
        members: The configuration(s) cross-validation chose: their checkpoints replace those of
            ``folds``; several are averaged.

    Returns:
        The registration record (also written to ``models/ensemble/registration.json``).
    """
    class_names = list(scoring.class_names)
    ckpts = [p for m in members for p in m.checkpoints] or [layout.best_checkpoint(k) for k in folds]
    rois = "roi_path" in test_cases and bool(test_cases["roi_path"].notna().any())  # trained inside ROIs
    seen = training_data()
    save_ensemble_model(layout.ENSEMBLE_MODEL, ckpts, tta, class_names, channels, rois, seen, members)
    uri = log_ensemble_model(tracker.uri, run_id, ckpts, tta, class_names, channels, rois, seen, members)
    test_ids = test_cases["case_id"].astype(str).tolist()
    split = split_sha(test_ids)
    per_case = pd.read_csv(layout.TEST_REPORTS / layout.PER_CASE_FILE)
    # One gate at a time per model: the comparison and the gate see the same champion, which no
    # concurrent registration can change in between (register_and_gate re-enters this lock).
    with gate_lock(tracker.uri, registered_model):
        comparison = compare_with_champion(
            tracker, run_id, registered_model, split, per_case, layout.CHAMPION_COMPARISON
        )
        if comparison is not None:
            diff = comparison["all"]["dice"]
            p = diff["wilcoxon_p"]
            print(f"vs champion: mean Dice difference {diff['mean_diff']:+.4f} (Wilcoxon p={p})")
        reg = register_and_gate(
            tracker,
            uri,
            registered_model,
            test_dice,
            split,
            {**tags, "mlflow_run_id": run_id},
            score_uri=lambda u: score_model_uri(u, test_cases, data_dir, scoring),
        )
    record = {
        "registered_model": reg.name,
        "version": reg.version,
        "alias": reg.alias,
        "test_dice": reg.test_dice,
        "champion_dice_before": reg.champion_dice,
        "reason": reg.reason,
        "model_uri": uri,
        "run_id": run_id,
    }
    layout.REGISTRATION.write_text(json.dumps(record, indent=2))
    prepared = json.loads(layout.PREPARED_INFO.read_text())
    facts = CardFacts(
        reg,
        class_names,
        channels,
        prepared["preprocess"],
        json.loads((layout.CV_REPORTS / layout.STATISTICS_FILE).read_text()),
        json.loads((layout.TEST_REPORTS / layout.STATISTICS_FILE).read_text()),
        comparison,
        tags,
        list(folds),
        tta.tta if isinstance(tta, InferenceOptions) else tta,
        int(prepared["n_cases"]),
        len(test_ids),
        unit,
        describe(tta.postprocessing, class_names)
        if isinstance(tta, InferenceOptions) and tta.postprocessing is not None
        else "none",
        read_plan(layout.PLAN_JSON),
        json.loads(layout.CONFIGURATIONS.read_text()) if layout.CONFIGURATIONS.is_file() else None,
    )
    publish_model_card(tracker, facts)
    tracker.set_tags(run_id, {"segflow.registered_version": reg.version, "segflow.alias": reg.alias})
    return record
