"""The native stack started as root from a fresh clone's default state folder (``.segflow/stack``),
as in most containers: PostgreSQL refuses root, so it runs as its own user, which must reach its
data folder. The clone lies under a folder only "others" may enter (mode 0701: root's group may
not) and the shell's umask is 077; ``up`` used to fail there with ``initdb: could not open file
".../initdb.pw" for reading: Permission denied`` (postgres ran with root's group 0)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import pytest

from tests.integration.conftest import REPO, copy_project
from tests.integration.stack_helpers import clean_env, needs_postgres

pytestmark = [
    pytest.mark.stack,
    pytest.mark.slow,
    pytest.mark.timeout(600),
    needs_postgres,
    pytest.mark.skipif(os.geteuid() != 0, reason="the case of root (postgres then runs as its own user)"),
]


def _services(clone: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = clean_env(SEGFLOW_PYTHON=sys.executable)  # no SEGFLOW_STACK_DIR: the clone's default
    return subprocess.run(
        ["bash", "-c", 'umask 077 && exec infra/services.sh "$@"', "services", *args],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )


def test_up_as_root_from_the_clones_default_state_folder() -> None:
    outer = Path(tempfile.mkdtemp(prefix="segflow-root-", dir="/tmp"))
    os.chmod(outer, 0o701)  # others may enter; root's group may not
    clone = outer / "clone"
    clone.mkdir()
    try:
        copy_project(clone)
        shutil.copytree(REPO / "infra", clone / "infra", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy2(REPO / "prefect.yaml", clone / "prefect.yaml")

        done = _services(clone, "up")

        assert done.returncode == 0, done.stderr[-4000:]
        assert "MLFLOW_TRACKING_URI" in done.stdout
        state = clone / ".segflow" / "stack"
        pg = [
            p
            for p in psutil.process_iter(["name", "username", "cmdline"])
            if str(state) in " ".join(p.info["cmdline"] or [])
        ]
        owners = {p.info["username"] for p in pg if p.info["name"] == "postgres"}
        assert owners and "root" not in owners, owners  # PostgreSQL as its own user
        assert not (state / "postgres" / "initdb.pw").exists()  # the password file is gone
    finally:
        _services(clone, "down", "--purge")
        shutil.rmtree(outer, ignore_errors=True)
