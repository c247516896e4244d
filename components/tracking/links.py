"""Links both ways between MLflow and Prefect: URLs of runs, model versions and flow runs.

MLflow side: every run carries the URL of the Prefect flow run that made it (a tag, set with the
lineage tags) and, once the model is registered, a description (``mlflow.note.content``, markdown
the MLflow UI renders on the run page) linking that flow run, the pipeline's flow run and the
model version. Prefect side: the stage and pipeline flow runs get artifacts with the MLflow run and
model-version URLs (flows/ensemble.py, flows/pipeline.py).

No Prefect import here (components stay free of the orchestrator): a stage process learns the
Prefect UI from the environment its server or ``dvc repro`` gave it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import quote

TAG_FLOW_RUN_URL = "segflow.prefect_flow_run_url"
TAG_PIPELINE_FLOW_RUN_URL = "segflow.prefect_pipeline_flow_run_url"
NOTE_TAG = "mlflow.note.content"  # the run's description in the MLflow UI (markdown)
MLFLOW_UI_ENV = "SEGFLOW_MLFLOW_UI_URL"
LOCAL_MLFLOW_UI = "http://127.0.0.1:5000"  # where `mlflow ui` serves a local store by default


def prefect_ui_url(env: Mapping[str, str] | None = None) -> str | None:
    """The Prefect UI: ``PREFECT_UI_URL``, else ``PREFECT_API_URL`` without its ``/api`` suffix."""
    env = os.environ if env is None else env
    if env.get("PREFECT_UI_URL"):
        return env["PREFECT_UI_URL"].rstrip("/")
    api = (env.get("PREFECT_API_URL") or "").rstrip("/")
    if not api.startswith(("http://", "https://")):
        return None  # an ephemeral Prefect has no UI to link to
    return api.removesuffix("/api")


def flow_run_url(flow_run_id: str | None, env: Mapping[str, str] | None = None) -> str | None:
    """The Prefect UI page of a flow run, or None without a flow run id or a Prefect UI."""
    ui = prefect_ui_url(env)
    if not flow_run_id or flow_run_id == "none" or ui is None:
        return None
    return f"{ui}/runs/flow-run/{flow_run_id}"


def flow_run_tags(flow_run_id: str | None, pipeline_flow_run_id: str | None) -> dict[str, str]:
    """MLflow tags with the URLs of the stage's and the pipeline's flow runs (those that exist)."""
    urls = {
        TAG_FLOW_RUN_URL: flow_run_url(flow_run_id),
        TAG_PIPELINE_FLOW_RUN_URL: flow_run_url(pipeline_flow_run_id),
    }
    return {k: v for k, v in urls.items() if v}


def mlflow_ui_base(tracking_uri: str, env: Mapping[str, str] | None = None) -> str:
    """The MLflow UI serving ``tracking_uri``: the server itself for an http(s) store; otherwise
    ``SEGFLOW_MLFLOW_UI_URL`` or the address ``mlflow ui`` uses by default."""
    env = os.environ if env is None else env
    if tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/")
    return (env.get(MLFLOW_UI_ENV) or LOCAL_MLFLOW_UI).rstrip("/")


# MLflow 3's UI keeps one global switch, GenAI | Model training (GenAI by default, remembered by the
# browser); this query opens a page in Model training, i.e. an experiment on its runs table.
TRAINING_VIEW = "?workflowType=machine_learning"


def experiment_url(base: str, experiment_id: str) -> str:
    """An MLflow experiment's runs table."""
    return f"{base}/#/experiments/{experiment_id}{TRAINING_VIEW}"


def run_url(base: str, experiment_id: str, run_id: str) -> str:
    """An MLflow run's page."""
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}{TRAINING_VIEW}"


def model_version_url(base: str, name: str, version: str) -> str:
    """A registered model version's page."""
    return f"{base}/#/models/{quote(name, safe='')}/versions/{version}"


def run_note(run_tags: Mapping[str, str], model_name: str, version: str, version_url: str) -> str:
    """The markdown description of one run of the pipeline: its flow runs and the model version."""
    lines = [f"Part of the segflow pipeline that registered [{model_name} v{version}]({version_url})."]
    if run_tags.get(TAG_FLOW_RUN_URL):
        lines.append(f"- Prefect flow run of this stage: {run_tags[TAG_FLOW_RUN_URL]}")
    if run_tags.get(TAG_PIPELINE_FLOW_RUN_URL):
        lines.append(f"- Prefect pipeline flow run: {run_tags[TAG_PIPELINE_FLOW_RUN_URL]}")
    return "\n".join(lines)
