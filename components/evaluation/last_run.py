"""The last pipeline run's results in a project: CV and test headline metrics and the registration."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from components.core import layout
from components.evaluation.presentation import headline_markdown


def last_run_results(root: Path) -> dict[str, Any]:
    """CV summary, test summary and registration of the last pipeline run in ``root``."""

    def load(rel: Path) -> Any:
        p = root / rel
        return json.loads(p.read_text()) if p.is_file() else None

    return {
        "cv": load(layout.CV_REPORTS / layout.HEADLINE_FILE),
        "test": load(layout.TEST_REPORTS / layout.HEADLINE_FILE),
        "registration": load(layout.REGISTRATION),
    }


def links_markdown(links: dict[str, str]) -> str:
    """A bullet list of labelled links (label -> URL), for Prefect artifacts and reports."""
    return "\n".join(f"- {label}: [{url}]({url})" for label, url in links.items())


def last_run_markdown(results: dict[str, Any]) -> str:
    """The end-of-run summary: CV and test tables and the registered version and alias."""
    parts = []
    if results.get("cv"):
        parts.append(headline_markdown(results["cv"], "Cross-validation: per class, mean ± sd across folds"))
    if results.get("test"):
        parts.append(headline_markdown(results["test"], "Test set, fold ensemble: mean ± sd across cases"))
    reg = results.get("registration")
    if reg:
        parts.append(
            f"Registered model **{reg['registered_model']}** version {reg['version']} "
            f"with alias `{reg['alias']}` (test mean foreground Dice {reg['test_dice']:.4f}; "
            f"{reg['reason']})."
        )
        if reg.get("links"):
            parts.append(links_markdown(reg["links"]))
    return "\n\n".join(parts) if parts else "No results yet: run `segflow run` or `dvc repro`."
