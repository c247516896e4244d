"""Connected-component postprocessing per class, chosen on cross-validation (as nnU-Net).

:mod:`~components.postprocessing.rules` defines the rules and the decision (:class:`Postprocessing`,
JSON round trip; numpy/scipy only, as the packaged model needs it);
:mod:`~components.postprocessing.selection` scores the rules out of fold and chooses, per class,
the one that raises the CV Dice (or none).
"""

from __future__ import annotations

from components.postprocessing.rules import (
    DEFAULT_MIN_SIZES,
    RULE_KINDS,
    Postprocessing,
    Rule,
    apply_rule,
    candidate_rules,
    kept_components,
    label_components,
)

__all__ = [
    "DEFAULT_MIN_SIZES",
    "RULE_KINDS",
    "Postprocessing",
    "Rule",
    "apply_rule",
    "candidate_rules",
    "kept_components",
    "label_components",
]
