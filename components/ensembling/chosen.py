"""The configuration(s) cross-validation chose (reports/cv/configurations.json) as the members of
the model the ensemble stage tests, packages and registers."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from components.core.layout import best_checkpoint
from components.inference.configurations import Member
from components.inference.options import inference_options
from components.params.config import ConfigError, Params
from components.params.configurations import load_configurations
from components.postprocessing import Postprocessing


def chosen_members(
    params: Params, params_path: Path, comparison: Mapping[str, Any], postprocessing: Postprocessing | None
) -> list[Member]:
    """Each chosen configuration's best fold checkpoints with its own test-time settings
    (``ensemble.tta``, ``tta_axes``, windows) and the postprocessing chosen on cross-validation.

    Raises:
        ConfigError: The comparison names a configuration this run did not train (evaluate ran
            on another training: re-run it).
    """
    trained = {c.label: (c, p) for c, p in load_configurations(params, Path(params_path))}
    members = []
    for name in comparison["members"]:
        if name not in trained:
            raise ConfigError(
                f"reports/cv/configurations.json chose {name!r}, but this run trained {sorted(trained)}; "
                "re-run the evaluate stage (dvc repro evaluate)"
            )
        c, p = trained[name]
        checkpoints = tuple(best_checkpoint(k, c.folds_dir) for k in p.folds)
        members.append(Member(name, checkpoints, inference_options(p, postprocessing)))
    return members
