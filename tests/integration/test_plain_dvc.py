"""A plain ``dvc repro`` as a user types it: no Prefect variable exported, no Prefect server running,
a home folder Prefect has never seen. The stage starts its own temporary Prefect server with the
project's settings (prefect.toml: a start-up timeout a busy machine does not lose) and says nothing
about it on the console."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.integration.conftest import BIN, copy_project, run

pytestmark = pytest.mark.slow


def test_dvc_repro_runs_a_stage_with_no_prefect_variable(tmp_path: Path) -> None:
    from components.data.synthetic import generate_phantoms

    root, home = tmp_path / "proj", tmp_path / "home"
    root.mkdir()
    home.mkdir()
    copy_project(root)
    generate_phantoms(root / "data/raw", n_cases=8, size=48, seed=0, n_patients=8)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "SEGFLOW_"))}
    env |= {"HOME": str(home), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env |= {"SEGFLOW_WARM_IDLE_S": "0"}  # no resident server left behind by the test
    env |= {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid"}
    env |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    run(["git", "init", "-q", "-b", "main"], root, env)
    run([str(BIN / "dvc"), "init", "-q"], root, env)

    done = run([str(BIN / "dvc"), "repro", "validate"], root, env)

    assert (root / "data/manifest.parquet").is_file()
    assert (home / ".prefect").is_dir()  # it did use a temporary server of its own
    console = done.stdout + done.stderr
    assert "Starting temporary server" not in console
    assert "Warning" not in console, console
