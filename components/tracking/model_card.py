"""The registry's description of a model version: what it segments, how good it is, on what data.

Written by the ensemble stage as markdown onto the model version (and, for a new champion, onto
the registered model), so a reviewer browsing the MLflow registry sees the facts without opening
a tag: classes and inputs, CV and test Dice / HD95 per class with 95 % bootstrap CIs, the gate
decision and the paired test against the previous champion, data version, folds, TTA, params hash
and git commit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from components.tracking.lineage import TAG_DATA, TAG_GIT, TAG_PARAMS
from components.tracking.plan_log import plan_card_lines
from components.tracking.promotion import Registration
from components.tracking.tracker import Tracker

CARD_METRICS = ("dice", "hd95")


@dataclass(frozen=True)
class CardFacts:
    """Everything the card states (all read from the stage's own outputs and params)."""

    registration: Registration
    class_names: Sequence[str]
    channels: int
    preprocess: Mapping[str, Any]  # the PreprocessSpec dict the model applies to raw images
    cv_statistics: Mapping[str, Any]  # reports/cv/statistics.json
    test_statistics: Mapping[str, Any]  # reports/test/statistics.json
    comparison: Mapping[str, Any] | None  # paired test vs the previous champion, when there was one
    lineage: Mapping[str, str]
    folds: Sequence[int]
    tta: bool
    n_cases: int
    n_test: int
    unit: str
    postprocessing: str = "none"  # the rules chosen on cross-validation, per class
    plan: Mapping[str, Any] | None = None  # plans/plan.json: what the plan chose (None: no plan stage)
    configurations: Mapping[str, Any] | None = None  # reports/cv/configurations.json: the choice


def _num(x: Any) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{float(x):.3f}"


def _with_ci(stats: Mapping[str, Any] | None) -> str:
    if not stats or stats.get("mean") is None:
        return "n/a"
    return f"{_num(stats['mean'])} [{_num(stats.get('ci_low'))}, {_num(stats.get('ci_high'))}]"


def _cv_cell(cv: Mapping[str, Any], name: str, metric: str) -> str:
    folds = cv.get("fold_mean_sd", {}).get(name, {}).get(metric) or {}
    pooled = cv.get("per_class", {}).get(name, {}).get(metric)
    sd = f" ± {_num(folds.get('sd'))}" if folds.get("sd") is not None else ""
    return f"{_num(folds.get('mean'))}{sd} (cases: {_with_ci(pooled)})"


def model_card_markdown(f: CardFacts) -> str:
    """The version description (markdown)."""
    reg = f.registration
    lines = [
        f"## {reg.name} v{reg.version} — `{reg.alias}`",
        "",
        f"**Gate:** {reg.reason}.",
        "",
        _inputs_line(f),
        "",
        f"| class | CV Dice (fold mean ± sd; cases: mean [95% CI]) | test Dice [95% CI] "
        f"| CV HD95 [{f.unit}] | test HD95 [{f.unit}] |",
        "|---|---|---|---|---|",
    ]
    for name in f.class_names[1:]:
        test = f.test_statistics.get("per_class", {}).get(name, {})
        lines.append(
            f"| {name} | {_cv_cell(f.cv_statistics, name, 'dice')} | {_with_ci(test.get('dice'))} "
            f"| {_cv_cell(f.cv_statistics, name, 'hd95')} | {_with_ci(test.get('hd95'))} |"
        )
    protocol = f.test_statistics.get("protocol") or {}
    if protocol:
        lines += [
            "",
            "| class | test pooled Dice (all pixels) | test mean Dice over thresholds (probability) "
            "| the same of the label mask (Inf-Net's multi-class tool) | test pixel ROC AUC |",
            "|---|---|---|---|---|",
        ]
        for name in f.class_names[1:]:
            p = protocol.get(name, {})
            lines.append(
                f"| {name} | {_num(p.get('pooled_dice'))} | {_num(p.get('dice_thrmean'))} "
                f"| {_num(p.get('dice_thrmean_label'))} | {_num(p.get('pixel_roc_auc'))} |"
            )
    lines += ["", f"Test mean foreground Dice **{reg.test_dice:.4f}** on {f.n_test} held-out cases."]
    if f.comparison:
        d = f.comparison.get("all", {}).get("dice", {})
        lines.append(
            f"Against the previous champion on the same cases: mean Dice difference "
            f"{_num(d.get('mean_diff'))} [{_num(d.get('ci_low'))}, {_num(d.get('ci_high'))}], "
            f"Wilcoxon p = {_num(d.get('wilcoxon_p'))}, paired t-test p = {_num(d.get('ttest_p'))}."
        )
    lines += [
        "",
        f"- data: DVC md5 `{f.lineage.get(TAG_DATA, 'unknown')}`, {f.n_cases} cases",
        f"- ensemble: folds {list(f.folds)}, softmax averaging, {'mirroring TTA' if f.tta else 'no TTA'}",
        *_configuration_lines(f.configurations),
        f"- postprocessing (chosen on the out-of-fold cases): {f.postprocessing}",
        f"- params.yaml sha256 `{f.lineage.get(TAG_PARAMS, 'unknown')}`",
        f"- git commit `{f.lineage.get(TAG_GIT, 'unknown')}`",
        *plan_card_lines(f.plan),
    ]
    return "\n".join(lines)


def _configuration_lines(doc: Mapping[str, Any] | None) -> list[str]:
    """Which configuration was chosen on cross-validation and why (none: one was trained)."""
    if not doc or len(doc.get("candidates", {})) < 2:
        return []
    members = doc.get("members", [])
    what = (
        f"the {' and '.join(members)} configurations, probabilities averaged"
        if len(members) > 1
        else (f"the {doc['chosen']} configuration")
    )
    return [f"- configuration: {what}; chosen on cross-validation: {doc.get('reason')}"]


def _inputs_line(f: CardFacts) -> str:
    """What the model takes and how it sees it (network size, or native resolution in patches)."""
    p = f.preprocess
    kind = "grayscale" if f.channels == 1 else f"{f.channels}-channel"
    classes = f"{', '.join(f'`{c}`' for c in f.class_names[1:])} (background `{f.class_names[0]}`)"
    if p.get("spatial_mode") == "patch":
        dims = "volumes" if p.get("ndim") == 3 else "2D images"
        patch = "x".join(str(s) for s in p.get("patch_size") or [])
        return (
            f"Segments {classes} in {kind} {dims} of any size at their native resolution (intensity "
            f"{p.get('intensity_method')}): sliding windows of {patch or 'the training patch'}, the "
            "prediction returned on the input's own grid."
        )
    size = "x".join(str(s) for s in p.get("size", []))
    return (
        f"Segments {classes} in {kind} 2D images of any size: each is brought to {size} "
        f"({p.get('spatial_mode')}, intensity {p.get('intensity_method')}) and the prediction is returned "
        "at the image's own size."
    )


def publish_model_card(tracker: Tracker, facts: CardFacts) -> str:
    """Write the card onto the model version; a new champion's card also describes the model.

    The alias's reason goes into a registered-model tag (``segflow.<alias>_reason``), so the
    model page says why each alias points where it does. Returns the markdown.
    """
    reg, md = facts.registration, model_card_markdown(facts)
    tracker.client.update_model_version(reg.name, reg.version, description=md)
    tracker.client.set_registered_model_tag(
        reg.name, f"segflow.{reg.alias}_reason", f"v{reg.version}: {reg.reason}"
    )
    if reg.alias == "champion":
        tracker.client.update_registered_model(reg.name, description=md)
    return md
