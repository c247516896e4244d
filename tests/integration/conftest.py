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

from tests.data import HANDSET_PARAMS

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PROJECT_FILES = ("components", "flows", "dvc.yaml", "params.yaml", ".dvcignore", "prefect.toml")


def tiny_training(epochs: int, experiment: str, **extra: object) -> dict[str, object]:
    """params.yaml overrides for a seconds-long training: 48² phantoms, 2 folds, a small U-Net on the
    CPU, ``epochs`` epochs, logged to ``experiment``; ``extra`` maps more keys (dots as ``__``)."""
    from components.data.synthetic import CLASS_NAMES

    overrides: dict[str, object] = {
        # the phantoms' classes and channel, as params.yaml declared them before they said auto
        "data.classes": {name: value for value, name in enumerate(CLASS_NAMES)},
        "data.channels": 1,
        "preprocess.image_size": [48, 48],
        "preprocess.splits.n_folds": 2,
        "preprocess.splits.test_fraction": 0.2,
        "train.epochs": epochs,
        "train.batch_size": 4,
        "train.device": "cpu",
        "train.model": {"name": "unet", "kwargs": {"base_channels": 8, "depth": 2}},
        "tracking.experiment": experiment,
    }
    return overrides | {key.replace("__", "."): value for key, value in extra.items()}


def copy_project(root: Path, params: Path = HANDSET_PARAMS) -> None:
    """Copy segflow's pipeline files (code, dvc.yaml, params.yaml) into a test project at ``root``.

    ``params``: the project's params.yaml: by default the hand-set one (every key explicit, so a
    test's few overrides decide the run and the plan stage only passes them through); the shipped
    ``REPO / "params.yaml"`` for tests of the plan's own choices.
    """
    for name in PROJECT_FILES:
        src = params if name == "params.yaml" else REPO / name
        if src.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".ruff_cache")
            shutil.copytree(src, root / name, ignore=ignore)
        else:
            shutil.copy2(src, root / name)


def shipped_project(root: Path, env: dict[str, str]) -> None:
    """A git + DVC project at ``root`` with segflow's files and the shipped params.yaml (every
    plannable key ``auto``): what a new user starts from, for tests of the plan's own choices."""
    root.mkdir(parents=True)
    copy_project(root, params=REPO / "params.yaml")
    run(["git", "init", "-q", "-b", "main"], root, env)
    run([str(BIN / "dvc"), "init", "-q"], root, env)


def resolve_as_written(root: Path) -> None:
    """Write what the plan stage writes when every params key is explicit: the resolved params
    (``plans/params.yaml``, which the later stages read) are params.yaml itself, and its one
    configuration's copy (``plans/params-2d.yaml``)."""
    (root / "plans").mkdir(exist_ok=True)
    for name in ("params.yaml", "params-2d.yaml"):
        shutil.copy2(root / "params.yaml", root / "plans" / name)


def prepared_project(root: Path, overrides: dict[str, object], n_cases: int = 16, size: int = 48) -> Path:
    """A committed git project at ``root`` with segflow's files, ``overrides`` applied, and phantoms
    prepared as the preprocess stage would (the train stage's inputs)."""
    from components.data.discovery import discover
    from components.data.synthetic import generate_phantoms
    from components.params.edit import apply_overrides
    from components.preprocessing.pipeline import spec_from_params
    from components.preprocessing.prepare import prepare_dataset
    from components.validation import build_metadata

    root.mkdir(parents=True)
    copy_project(root)
    params = apply_overrides(root / "params.yaml", overrides)
    resolve_as_written(root)
    data = generate_phantoms(root / "data/raw", n_cases=n_cases, size=size, seed=0, n_patients=n_cases)
    meta = build_metadata(discover(data), sorted(params.data.classes.values()), root=data)
    prepare_dataset(meta, data, params, spec_from_params(params), root / "data/prepared")
    git = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid"}
    git |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], ["git", "commit", "-qm", "tiny"]):
        subprocess.run(cmd, cwd=root, env={**os.environ, **git}, check=True, capture_output=True)
    return root


def train_in_process(
    root: Path, prefect_api: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run the train flow in this process (the real Prefect engine, no process start) in project
    ``root`` with ``env`` set, torch on one thread (the same float reduction order every time)."""
    import torch
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.train import train_flow

    with monkeypatch.context() as m:
        m.chdir(root)
        for key, value in env.items():
            m.setenv(key, value)
        m.setenv("SEGFLOW_THREADS", "1")  # the fold setup applies it (components/core/threads.py)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with temporary_settings(updates={PREFECT_API_URL: prefect_api}):
                train_flow()
        finally:
            torch.set_num_threads(threads)


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


def project_env(root: Path, prefect_api: str, **extra: str) -> dict[str, str]:
    """The environment of a test project's commands: this venv first on PATH, the session's
    Prefect server, the project's own SQLite MLflow store, no analytics, a git identity."""
    return {
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
        **extra,
    }


@pytest.fixture
def project(
    tmp_path: Path, prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, dict[str, str]]]:
    """A fresh git + DVC repo holding segflow's pipeline files; cwd and env point at it."""
    root = tmp_path / "proj"
    root.mkdir()
    copy_project(root)
    env = project_env(root, prefect_api)
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
        try:
            yield
        except AssertionError as exc:  # what the served run and its stages logged says why
            raise AssertionError(f"{exc}\n{_run_logs(root)}") from exc
    finally:
        _interrupt(proc)
        log.close()


def _run_logs(root: Path, newest: int = 4, chars: int = 2500) -> str:
    """The tails of ``serve.log`` and of the newest run and stage logs under ``.segflow/logs``."""
    logs = sorted((root / ".segflow/logs").glob("*.log"), key=lambda p: p.stat().st_mtime)[-newest:]
    parts = []
    for path in [root / "serve.log", *logs]:
        if path.is_file():
            parts.append(f"--- {path.name} (tail) ---\n{path.read_text(errors='replace')[-chars:]}")
    return "\n".join(parts)
