"""The real stage modules served by the real warm server (what ``segflow run`` starts), each command
run the way DVC runs it (``$SHELL -c 'python -m flows.<stage>'``) from a shell whose prompt was
exported by ``source .venv/bin/activate``: every stage is served warm (the non-interactive shell
drops ``PS1``; the server, started from the interactive one, has it) and none prints a warning
(runpy's "'flows.train' found in sys.modules ... unpredictable behaviour" came once per warm stage).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from flows.runtime.warm import SOCKET_ENV, STAGES, warm_stages
from tests.integration.conftest import copy_project, project_env

pytestmark = pytest.mark.slow


def test_stage_commands_run_warm_and_print_no_warning(tmp_path: Path, prefect_api: str) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    copy_project(root)
    activated = project_env(root, prefect_api, PS1="(.venv) $ ", VIRTUAL_ENV=str(root / ".venv"))
    timing = tmp_path / "timing.jsonl"
    with (tmp_path / "warm.log").open("w") as log, warm_stages(activated, log, cwd=str(root)) as env:
        deadline = time.monotonic() + 180
        while not os.path.exists(env[SOCKET_ENV]):  # the server listens once its imports are done
            assert time.monotonic() < deadline, (tmp_path / "warm.log").read_text()
            time.sleep(0.2)
        for stage in STAGES:
            # A params file (and, for evaluate/ensemble, a training) that is not there: each stage
            # fails at its first lines, once started.
            cmd = f"python -m flows.{stage} --params absent.yaml"
            done = subprocess.run(
                ["bash", "-c", cmd],
                cwd=root,
                env={**env, "SEGFLOW_STAGE_TIMING": str(timing)},
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 1, done.stderr
            assert f"segflow {stage}: " in done.stderr  # its own one-line message
            assert "Warning" not in done.stdout + done.stderr, done.stderr
            assert "warm stage server" not in done.stderr  # not refused
    rows = [json.loads(line) for line in timing.read_text().splitlines()]
    assert list(dict.fromkeys(r["stage"] for r in rows)) == list(STAGES)
    assert all(r["warm"] for r in rows)
