"""``segflow doctor`` without a stack: embedded defaults, services that do not answer, masking.
(The healthy case runs against the real stack in tests/integration/test_stack.py.)"""

from __future__ import annotations

import socket
from pathlib import Path

from typer.testing import CliRunner

from components.services.doctor import run_checks
from components.services.probes import mask_url
from flows.cli import app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_mask_url_hides_user_and_password() -> None:
    assert (
        mask_url("postgresql+psycopg2://u:p%40ss@db:5432/mlflow")
        == "postgresql+psycopg2://***@db:5432/mlflow"
    )
    assert mask_url("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


def test_no_configuration_means_embedded_defaults(tmp_path: Path) -> None:
    checks = run_checks({}, tmp_path)
    assert [c.part for c in checks] == [
        "MLflow tracking",
        "MLflow artifacts",
        "Prefect API",
        "DVC remote",
        "Dask",
    ]
    assert [c.ok for c in checks] == [None] * 5
    assert "SQLite" in checks[0].backend and "ephemeral" in checks[2].backend


def test_configured_services_that_do_not_answer_fail_and_hide_credentials(tmp_path: Path) -> None:
    env = {
        "MLFLOW_TRACKING_URI": f"http://admin:hunter2secret@127.0.0.1:{free_port()}",
        "PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api",
        "SEGFLOW_DVC_REMOTE": str(tmp_path / "missing-remote"),
        "SEGFLOW_DASK_ADDRESS": f"tcp://127.0.0.1:{free_port()}",
        "COLUMNS": "200",
    }
    checks = run_checks(env, tmp_path)
    assert {c.part for c in checks if c.failed} == {
        "MLflow tracking",
        "MLflow artifacts",
        "Prefect API",
        "DVC remote",
        "Dask",
    }
    result = CliRunner().invoke(app, ["doctor", "--root", str(tmp_path)], env=env)
    assert result.exit_code == 1
    assert "hunter2secret" not in result.output and "***@127.0.0.1" in result.output
    assert "no answer from" in result.output
