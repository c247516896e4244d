"""Real services for the integration tests: a local Prefect server and throw-away project repos."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PROJECT_FILES = ("components", "flows", "dvc.yaml", "params.yaml", ".dvcignore")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _interrupt(proc: subprocess.Popen[bytes]) -> None:
    """Stop a service like Ctrl-C would (Prefect servers and runners ignore SIGTERM), then kill."""
    proc.send_signal(2)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``prefect server`` on 127.0.0.1 with its own SQLite database, for the whole session."""
    home = tmp_path_factory.mktemp("prefect_home")
    port = _free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    log = (home / "server.log").open("w")
    proc = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"prefect server exited: {(home / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("prefect server did not become healthy in 120 s")
    yield url
    _interrupt(proc)
    log.close()


def run(
    cmd: list[str], cwd: Path, env: dict[str, str], check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing output; on unexpected failure show it."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


@pytest.fixture
def project(
    tmp_path: Path, prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, dict[str, str]]]:
    """A fresh git + DVC repo holding segflow's pipeline files; cwd and env point at it."""
    root = tmp_path / "proj"
    root.mkdir()
    for name in PROJECT_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, root / name)
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PREFECT_API_URL": prefect_api,
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "DVC_NO_ANALYTICS": "1",
        "NO_ALBUMENTATIONS_UPDATE": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "GIT_AUTHOR_NAME": "segflow-test",
        "GIT_AUTHOR_EMAIL": "test@example.invalid",
        "GIT_COMMITTER_NAME": "segflow-test",
        "GIT_COMMITTER_EMAIL": "test@example.invalid",
    }
    run(["git", "init", "-q", "-b", "main"], root, env)
    run([str(BIN / "dvc"), "init", "-q"], root, env)
    for key in (
        "PATH",
        "PREFECT_API_URL",
        "MLFLOW_TRACKING_URI",
        "DVC_NO_ANALYTICS",
        "NO_ALBUMENTATIONS_UPDATE",
    ):
        monkeypatch.setenv(key, env[key])
    monkeypatch.chdir(root)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: prefect_api}):  # settings are read at prefect import
        yield root, env


@contextlib.contextmanager
def served_pipeline(root: Path, env: dict[str, str]) -> Iterator[None]:
    """``python -m flows.pipeline`` serves the pipeline deployment (``segflow-pipeline/segflow-local``)."""
    log = (root / "serve.log").open("w")
    proc = subprocess.Popen(
        [str(BIN / "python"), "-m", "flows.pipeline"],
        cwd=root,
        env={**env, "PREFECT_RUNNER_POLL_FREQUENCY": "2"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        inspect = [str(BIN / "prefect"), "deployment", "inspect", "segflow-pipeline/segflow-local"]
        while run(inspect, root, env, check=False).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"serving the pipeline failed: {(root / 'serve.log').read_text()[-3000:]}")
            time.sleep(1)
        yield
    finally:
        _interrupt(proc)
        log.close()
