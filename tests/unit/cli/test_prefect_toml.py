"""The project's Prefect settings file (prefect.toml): the installed Prefect reads it from the working
directory, so a plain ``dvc repro`` (stages run in the project root) gets a start-up timeout for its
temporary Prefect servers that a busy machine does not lose, with no variable exported."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
SHOW = (
    "from prefect.settings import get_current_settings as g; s = g(); "
    "print(s.server.ephemeral.startup_timeout_seconds, s.server.analytics_enabled)"
)


def _settings(cwd: Path, home: Path, **extra: str) -> tuple[int, bool]:
    """The effective settings of a process started in ``cwd`` with no PREFECT_* variable (plus
    ``extra``) and an empty home (no Prefect profile)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")} | extra
    env["HOME"] = str(home)
    out = subprocess.run(
        [sys.executable, "-c", SHOW], cwd=cwd, env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    return int(out[0]), out[1] == "True"


def test_prefect_reads_the_project_settings_file(tmp_path: Path) -> None:
    project = tomllib.loads((REPO / "prefect.toml").read_text())
    timeout = project["server"]["ephemeral"]["startup_timeout_seconds"]
    assert timeout >= 90  # Prefect's own 20 s was lost on a busy 2-core machine
    home = tmp_path / "home"
    home.mkdir()
    assert _settings(REPO, home) == (timeout, False)
    assert _settings(tmp_path, home) == (20, True)  # elsewhere: Prefect's defaults (the file did it)
    assert _settings(REPO, home, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="7")[0] == 7  # env wins
