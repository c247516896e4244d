"""The native team stack (infra/services.sh) on loopback, checked with real clients.

One ``up`` for the module: MLflow refuses an anonymous request and, with the generated
credentials, stores a run's artifact in the S3 bucket; Prefect's worker polls the process pool;
the Dask cluster runs a task; ``dvc push`` / ``dvc pull`` round-trips through the S3 remote;
``segflow doctor`` names every backend; ``down`` leaves no process and no listening port.
Every client gets the stack's env explicitly (``os.environ`` is never changed), so the session
Prefect server of the other integration tests is not disturbed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.integration.stack_helpers import (
    BIN,
    REPO,
    Stack,
    assert_down_leaves_nothing,
    http_json,
    listening,
    native_stack,
    needs_postgres,
    parse_exports,
    run,
    s3_client,
    s3_keys,
    services_sh,
)

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.timeout(600), needs_postgres]


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with native_stack() as s:
        yield s


def test_up_prints_the_client_env_and_binds_loopback_only(stack: Stack) -> None:
    env = parse_exports(stack.exports)
    for key in (
        "MLFLOW_TRACKING_URI",
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
        "MLFLOW_S3_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ENDPOINT_URL",
        "PREFECT_API_URL",
        "SEGFLOW_DVC_REMOTE",
        "SEGFLOW_DASK_ADDRESS",
    ):
        assert env.get(key), key
    env_file = stack.state / "env"
    assert env_file.read_text() == stack.exports
    for private in (env_file, stack.state / "secrets.json", stack.state / "mlflow" / "basic_auth.ini"):
        assert private.stat().st_mode & 0o077 == 0, private
    addresses = listening(stack.pids)
    assert len(addresses) >= 6, addresses  # postgres, s3, mlflow, prefect, dask scheduler + workers
    assert {ip for ip, _ in addresses} == {"127.0.0.1"}, addresses


def test_up_again_reprints_the_same_env(stack: Stack) -> None:
    done = services_sh(stack.state, "up", timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == stack.exports
    assert "already up" in done.stderr
    status = services_sh(stack.state, "status", timeout=60)
    assert status.returncode == 0, status.stdout
    assert status.stdout.count(" up ") == 8, status.stdout


def test_mlflow_refuses_anonymous_requests(stack: Stack) -> None:
    url = f"{stack.env['MLFLOW_TRACKING_URI']}/api/2.0/mlflow/experiments/search?max_results=1"
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(url, timeout=10)
    assert err.value.code == 401


LOG_RUN = """
import mlflow, pathlib, sys
mlflow.set_experiment("stack-test")
with mlflow.start_run() as run:
    mlflow.log_metric("dice", 0.75)
    p = pathlib.Path(sys.argv[1]); p.write_text("hello stack")
    mlflow.log_artifact(str(p), artifact_path="reports")
got = mlflow.MlflowClient().get_run(run.info.run_id).data.metrics["dice"]
print(run.info.experiment_id, run.info.run_id, got)
"""


def test_mlflow_run_stores_its_artifact_in_the_bucket(stack: Stack, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", LOG_RUN, str(tmp_path / "note.txt")],
        env=stack.env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    exp_id, run_id, dice = done.stdout.split()[-3:]
    assert float(dice) == 0.75
    keys = s3_keys(stack.env, "segflow-mlflow")
    key = f"{exp_id}/{run_id}/artifacts/reports/note.txt"
    assert key in keys, keys
    assert s3_client(stack.env).get_object(Bucket="segflow-mlflow", Key=key)["Body"].read() == b"hello stack"


def test_prefect_worker_polls_the_process_pool(stack: Stack) -> None:
    api = stack.env["PREFECT_API_URL"]
    assert http_json(f"{api}/health") is True
    pool = http_json(f"{api}/work_pools/{stack.env['SEGFLOW_WORK_POOL']}")
    assert isinstance(pool, dict) and pool["type"] == "process"
    workers = http_json(f"{api}/work_pools/{pool['name']}/workers/filter", {})
    assert isinstance(workers, list)
    assert [w["status"] for w in workers] == ["ONLINE"], workers
    # its flow runs inherit its env: they must log to this MLflow server and use this cluster
    leader = json.loads((stack.state / "pids" / "prefect-worker.json").read_text())["pid"]
    worker_env = psutil.Process(leader).environ()
    for key in (
        "MLFLOW_TRACKING_URI",
        "MLFLOW_TRACKING_USERNAME",
        "SEGFLOW_DASK_ADDRESS",
        "AWS_ENDPOINT_URL",
    ):
        assert worker_env.get(key) == stack.env[key], key
    assert worker_env.get("SEGFLOW_PROJECT_DIR") == str(REPO)  # where prefect.yaml's pull step goes


def test_dask_cluster_runs_a_task(stack: Stack) -> None:
    from distributed import Client

    with Client(stack.env["SEGFLOW_DASK_ADDRESS"], timeout=10, set_as_default=False) as client:
        assert len(client.scheduler_info(n_workers=-1)["workers"]) == 2
        assert client.submit(pow, 6, 2).result(timeout=30) == 36


@pytest.fixture(scope="module")
def dvc_project(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git + DVC project whose default remote is the stack's S3 bucket, with one pushed file."""
    root = tmp_path_factory.mktemp("dvc_origin")
    env = {**stack.env, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
    dvc = str(BIN / "dvc")
    run(["git", "init", "-q", "-b", "main"], root, env)
    run([dvc, "init", "-q"], root, env)
    (root / "data").mkdir()
    (root / "data" / "blob.bin").write_bytes(os.urandom(4096))
    run([dvc, "add", "-q", "data"], root, env)
    remote = f"{stack.env['SEGFLOW_DVC_REMOTE']}/{root.name}"
    run([dvc, "remote", "add", "-d", "team", remote], root, env)
    run([dvc, "remote", "modify", "team", "endpointurl", stack.env["AWS_ENDPOINT_URL"]], root, env)
    run(["git", "add", "-A"], root, env)
    run(["git", "commit", "-q", "-m", "data"], root, env)
    run([dvc, "push", "-q"], root, env)
    return root


def test_dvc_push_then_pull_into_a_fresh_clone(stack: Stack, dvc_project: Path, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(dvc_project), str(clone)], tmp_path, stack.env)
    assert not (clone / "data" / "blob.bin").exists()
    run([str(BIN / "dvc"), "pull", "-q"], clone, stack.env)
    assert (clone / "data" / "blob.bin").read_bytes() == (dvc_project / "data" / "blob.bin").read_bytes()


def test_doctor_names_every_backend_and_answers(stack: Stack, dvc_project: Path) -> None:
    done = subprocess.run(
        [str(BIN / "segflow"), "doctor"],
        cwd=dvc_project,
        env={**stack.env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for name in ("MLflow server", "proxied by the MLflow server", "Prefect server", "Dask scheduler"):
        assert name in out, out
    assert "DVC remote 'team'" in out and "2 worker(s)" in out and "1 worker(s) online" in out, out
    for secret in ("MLFLOW_TRACKING_PASSWORD", "AWS_SECRET_ACCESS_KEY"):
        assert stack.env[secret] not in out


def test_logs_hold_no_credentials(stack: Stack) -> None:
    secrets = json.loads((stack.state / "secrets.json").read_text())
    logs = "".join(p.read_text(errors="replace") for p in (stack.state / "logs").glob("*.log"))
    leaked = [
        k for k in ("pg_password", "mlflow_password", "aws_secret", "flask_secret") if secrets[k] in logs
    ]
    assert leaked == []


def test_down_leaves_no_process_and_no_listening_port(stack: Stack) -> None:
    assert_down_leaves_nothing(stack)
