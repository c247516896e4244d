"""segflow on the native team stack: prefect.yaml's deployment, triggered through the Prefect API
with a parameter override, runs the pipeline on the stack's worker and registers the model on the
MLflow server.

A tiny project (git + DVC, phantoms 48², 2 folds, a small U-Net on the CPU) is the checkout the
stack's worker runs from (``SEGFLOW_PROJECT_DIR`` at ``up``: prefect.yaml's pull step enters it).
From it, ``prefect deploy`` puts the deployment on pool ``segflow-gpu``; ``run_deployment`` with
``overrides`` triggers it and the worker runs it to Completed. Then: the model version and its
``champion`` alias on the server, its artifacts as objects in the S3 bucket, the override in the
recorded params, the links both ways (MLflow runs -> the flow run; the flow runs' artifacts ->
MLflow), ``dvc push`` to the S3 remote and ``dvc pull`` into a fresh clone restoring the stage
outputs, and ``down`` leaving no listening port.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.tracking.links import TAG_FLOW_RUN_URL, TAG_PIPELINE_FLOW_RUN_URL, model_version_url, run_url
from flows.train import EXECUTOR_TAG
from tests.integration.conftest import copy_project, tiny_training
from tests.integration.stack_helpers import (
    BIN,
    REPO,
    Stack,
    assert_down_leaves_nothing,
    clean_env,
    http_json,
    native_stack,
    needs_postgres,
    run,
    s3_keys,
)

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.timeout(1200), needs_postgres]

MODEL = "segflow-team"
TINY = tiny_training(
    2,
    "segflow-team",
    data__synthetic__n_cases=24,
    data__synthetic__image_size=48,
    data__synthetic__n_patients=24,
    evaluate__worst_cases=2,
    ensemble__tta=False,
    ensemble__registered_model="segflow-team-default",
)
# given at trigger time; the folds fan out over the stack's Dask cluster (SEGFLOW_DASK_ADDRESS)
OVERRIDES = {"train.epochs": 1, "ensemble.registered_model": MODEL, "train.executor": "dask"}
DEPLOYMENT = "segflow-pipeline/segflow"
RUN_TIMEOUT_S = 720  # measured ~7 min on the loaded 2-core machine (ensemble packaging dominates)
# Stage outputs DVC caches (pushed to the S3 remote) and the fresh clone gets back from it.
OUTPUTS = (
    "data/manifest.parquet",
    "data/prepared/splits.json",
    "models/folds/fold_0/best.pt",
    "models/folds/fold_1/best.pt",
    "models/ensemble/model/MLmodel",
)


@dataclass
class Team:
    root: Path  # the project checkout the stack's worker runs flow runs in
    stack: Stack
    env: dict[str, str]  # the stack's client env + git identity + PATH, for CLI calls


def _make_project(root: Path, env: dict[str, str]) -> None:
    """git + DVC project with segflow's pipeline, its prefect.yaml, tiny params and phantoms."""
    from components.params.edit import apply_overrides

    root.mkdir()
    copy_project(root)
    for cache in (*root.rglob(".ruff_cache"), *root.rglob(".mypy_cache")):  # in git's ignore, not DVC's
        shutil.rmtree(cache)
    shutil.copy2(REPO / "prefect.yaml", root / "prefect.yaml")
    run(["git", "init", "-q", "-b", "main"], root, env)
    run([str(BIN / "dvc"), "init", "-q"], root, env)
    apply_overrides(root / "params.yaml", TINY)
    run([str(BIN / "segflow"), "generate", "--out", "data/raw"], root, env)
    run([str(BIN / "dvc"), "add", "-q", "data/raw"], root, env)


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    base = tmp_path_factory.mktemp("team")
    root = base / "proj"
    ident = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
             "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
    path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    _make_project(root, clean_env(PATH=path, NO_ALBUMENTATIONS_UPDATE="1", **ident))
    with native_stack(SEGFLOW_PROJECT_DIR=str(root)) as stack:
        env = {**stack.env, **ident, "PATH": path, "PREFECT_HOME": str(base / "prefect-cli")}
        dvc = str(BIN / "dvc")
        run([dvc, "remote", "add", "-d", "team", f"{env['SEGFLOW_DVC_REMOTE']}/{base.name}"], root, env)
        run([dvc, "remote", "modify", "team", "endpointurl", env["AWS_ENDPOINT_URL"]], root, env)
        run(["git", "add", "-A"], root, env)
        run(["git", "commit", "-qm", "tiny team project"], root, env)
        yield Team(root, stack, env)


def _worker_log(team: Team) -> str:
    log = team.stack.state / "logs" / "prefect-worker.log"
    return log.read_text(errors="replace")[-6000:] if log.is_file() else "(no worker log)"


@pytest.fixture(scope="module")
def flow_run(team: Team) -> Any:
    """Deploy prefect.yaml from the project, trigger it with the overrides, wait for the end."""
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    t0 = time.monotonic()
    out = run([str(BIN / "prefect"), "--no-prompt", "deploy", "--name", "segflow"], team.root, team.env)
    assert "segflow-gpu" in out or DEPLOYMENT in out, out
    t1 = time.monotonic()
    with temporary_settings(updates={PREFECT_API_URL: team.env["PREFECT_API_URL"]}):
        fr = run_deployment(
            DEPLOYMENT, parameters={"overrides": OVERRIDES}, timeout=RUN_TIMEOUT_S, poll_interval=3
        )
    print(f"deploy {t1 - t0:.1f} s, trigger -> {fr.state.name} {time.monotonic() - t1:.1f} s")
    assert fr.state is not None and fr.state.is_completed(), f"{fr.state}\n{_worker_log(team)}"
    return fr


@pytest.fixture
def mlflow_client(team: Team, monkeypatch: pytest.MonkeyPatch) -> Any:
    from mlflow.tracking import MlflowClient

    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.setenv(key, team.env[key])
    return MlflowClient(tracking_uri=team.env["MLFLOW_TRACKING_URI"])


def _runs(client: Any) -> list[Any]:
    exp = client.get_experiment_by_name(TINY["tracking.experiment"])
    return list(client.search_runs([exp.experiment_id]))


def test_the_worker_runs_the_deployment_with_the_override(team: Team, flow_run: Any) -> None:
    assert flow_run.work_pool_name == "segflow-gpu"
    assert flow_run.parameters["overrides"] == OVERRIDES
    params = yaml.safe_load((team.root / "params.yaml").read_text())  # written in the worker's checkout
    assert (params["train"]["epochs"], params["ensemble"]["registered_model"]) == (1, MODEL)


def test_model_registered_on_the_server_with_its_artifacts_in_s3(
    team: Team, flow_run: Any, mlflow_client: Any
) -> None:
    mv = mlflow_client.get_model_version_by_alias(MODEL, "champion")  # the overridden name
    assert mv.version == "1"
    location = mlflow_client.get_model_version_download_uri(MODEL, mv.version)
    assert location.startswith("mlflow-artifacts:/"), location  # proxied by the server
    prefix = location.removeprefix("mlflow-artifacts:").strip("/") + "/"
    keys = [k for k in s3_keys(team.env, "segflow-mlflow") if k.startswith(prefix)]
    assert prefix + "MLmodel" in keys, (prefix, keys[:20])
    # the override reached the stages: one epoch per fold, in the params MLflow recorded
    runs = _runs(mlflow_client)
    folds = [r for r in runs if "segflow.fold" in r.data.tags]
    assert len(folds) == 2
    for r in folds:
        assert r.data.params["epochs"] == "1", r.data.params
        assert len(mlflow_client.get_metric_history(r.info.run_id, "val_dice")) == 1


def test_the_folds_ran_on_the_stacks_dask_workers(team: Team, flow_run: Any, mlflow_client: Any) -> None:
    from distributed import Client

    with Client(team.env["SEGFLOW_DASK_ADDRESS"], timeout=10) as client:
        workers = set(client.scheduler_info(n_workers=-1)["workers"])
    assert len(workers) == 2, workers
    where = [r.data.tags[EXECUTOR_TAG] for r in _runs(mlflow_client) if "segflow.fold" in r.data.tags]
    ran_on = {w.removeprefix("dask worker ").split(" on ")[0] for w in where}
    assert len(where) == 2 and ran_on <= workers, (where, workers)  # on the stack's own workers


def test_links_both_ways(team: Team, flow_run: Any, mlflow_client: Any) -> None:
    api = team.env["PREFECT_API_URL"]
    pipeline_url = f"{api.removesuffix('/api')}/runs/flow-run/{flow_run.id}"
    runs = _runs(mlflow_client)
    assert runs
    for r in runs:  # every MLflow run names the deployment's flow run and its stage's flow run
        assert r.data.tags[TAG_PIPELINE_FLOW_RUN_URL] == pipeline_url, r.data.tags
        assert r.data.tags[TAG_FLOW_RUN_URL].startswith(f"{api.removesuffix('/api')}/runs/flow-run/")
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    base = team.env["MLFLOW_TRACKING_URI"].rstrip("/")

    def artifacts(key: str) -> list[dict[str, Any]]:
        found = http_json(f"{api}/artifacts/filter", {"artifacts": {"key": {"any_": [key]}}})
        assert isinstance(found, list)
        return found

    [summary] = [a for a in artifacts("segflow-run") if a["flow_run_id"] == str(flow_run.id)]
    assert run_url(base, parent.info.experiment_id, parent.info.run_id) in summary["data"], summary
    [link] = artifacts("model-version")  # the ensemble stage's flow run, a child of the pipeline's
    assert model_version_url(base, MODEL, "1") in link["data"], link


def test_dvc_push_then_pull_into_a_fresh_clone(team: Team, flow_run: Any, tmp_path: Path) -> None:
    root, env, dvc = team.root, team.env, str(BIN / "dvc")
    run(["git", "add", "-A"], root, env)
    run(["git", "commit", "-qm", "run on the team stack"], root, env)
    run([dvc, "push", "-q"], root, env, timeout=300)
    remote = f"dvc/{root.parent.name}/"
    assert any(k.startswith(remote) for k in s3_keys(env, "segflow-dvc"))
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(root), str(clone)], tmp_path, env)
    assert not (clone / OUTPUTS[-1]).exists()
    run([dvc, "pull", "-q"], clone, env, timeout=300)
    for rel in OUTPUTS:
        assert (clone / rel).read_bytes() == (root / rel).read_bytes(), rel
    assert "up to date" in run([dvc, "status"], clone, env)


def test_down_leaves_no_listening_port(team: Team, flow_run: Any) -> None:
    assert_down_leaves_nothing(team.stack)
