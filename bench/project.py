"""A throw-away segflow project (git + DVC + the default dataset) for benchmarks that run stages."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PROJECT_FILES = ("components", "flows", "dvc.yaml", "params.yaml", ".dvcignore", "prefect.toml")
# The benchmarks compare segflow's machinery with bare loops on fixed settings: they start from the
# hand-set params (every key explicit: a 2D U-Net resized to the network size), not from the plan's.
HANDSET_PARAMS = REPO / "tests" / "data" / "handset_params.yaml"


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cmd(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Run ``cmd``; its wall seconds, or exit with its output's tail when it fails."""
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )
    return time.time() - t0


def set_params(root: Path, overrides: dict[str, object]) -> None:
    """Apply dotted-key overrides to the project's params.yaml (validated, comments kept)."""
    from components.params.edit import merged_params

    text, _ = merged_params(root / "params.yaml", overrides)
    (root / "params.yaml").write_text(text)


def project_env(tmp: Path, root: Path) -> dict[str, str]:
    """The environment the project's commands run with (own Prefect home, MLflow SQLite store)."""
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PREFECT_HOME": str(tmp / "prefect"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "DVC_NO_ANALYTICS": "1",
        "NO_ALBUMENTATIONS_UPDATE": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.invalid",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.invalid",
    }


def make_project(
    root: Path, env: dict[str, str], overrides: dict[str, object], params: Path = HANDSET_PARAMS
) -> None:
    """segflow's pipeline files in a new git + DVC repo at ``root``, ``params`` (default: the
    hand-set ones) overridden, the default dataset generated (``segflow generate``), all committed."""
    for name in PROJECT_FILES:
        src = params if name == "params.yaml" else REPO / name
        if src.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".ruff_cache", ".mypy_cache")
            shutil.copytree(src, root / name, ignore=ignore)
        else:
            shutil.copy2(src, root / name)
    run_cmd(["git", "init", "-q", "-b", "main"], root, env)
    run_cmd([str(BIN / "dvc"), "init", "-q"], root, env)
    if overrides:
        set_params(root, overrides)
    run_cmd([str(BIN / "segflow"), "generate", "--out", "data/raw"], root, env)
    run_cmd(["git", "add", "-A"], root, env)
    run_cmd(["git", "commit", "-qm", "bench project"], root, env)


@contextlib.contextmanager
def prefect_server(cwd: Path, env: dict[str, str]) -> Iterator[str]:
    """A local Prefect server (infra/local/prefect_server.sh, under the env's PREFECT_HOME) on a
    free port for the block; yields its API URL and stops it afterwards."""
    script = str(REPO / "infra/local/prefect_server.sh")
    api = subprocess.run(
        ["bash", script, "start", str(free_port())],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    try:
        yield api
    finally:
        subprocess.run(["bash", script, "stop"], cwd=cwd, env=env, check=False)
