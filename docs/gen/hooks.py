"""mkdocs hook: the generated reference pages, made at each build from the code and params.yaml.

Nothing generated is committed: ``mkdocs build`` (``make docs``) renders the params reference from
params.yaml and dvc.yaml, the CLI reference from the typer app, the model zoo from the registries,
and the error classes, planning rules and artifact paths from the source; CONTRIBUTING.md and
CHANGELOG.md from the repository root become pages too.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
# mkdocs loads this file by path and restores sys.path afterwards: import the generators now
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
from docs.gen import cli_ref, code_ref, params_ref, zoo_ref  # noqa: E402


def generated_pages() -> dict[str, Callable[[], str]]:
    """``{page path in the site: function returning its markdown}``."""
    return {
        "reference/params.md": params_ref.render,
        "reference/cli.md": cli_ref.render,
        "reference/zoo.md": zoo_ref.render,
        "reference/errors.md": code_ref.render_errors,
        "reference/plan-rules.md": code_ref.render_plan_rules,
        "reference/artifacts.md": code_ref.render_artifacts,
        "contributing.md": lambda: (REPO / "CONTRIBUTING.md").read_text(),
        "changelog.md": lambda: (REPO / "CHANGELOG.md").read_text(),
    }


def on_files(files: Any, config: Any) -> Any:
    """Add every generated page to the site's files (mkdocs ``on_files`` event)."""
    from mkdocs.structure.files import File

    for uri, render in generated_pages().items():
        files.append(File.generated(config, uri, content=render()))
    return files
