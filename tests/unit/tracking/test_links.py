"""URLs between MLflow and Prefect: which UI, which page, and the tags that carry them."""

from __future__ import annotations

import pytest

from components.tracking import links
from components.tracking.lineage import lineage_tags


def test_prefect_ui_comes_from_the_ui_or_the_api_url() -> None:
    assert links.prefect_ui_url({"PREFECT_API_URL": "http://127.0.0.1:4200/api"}) == "http://127.0.0.1:4200"
    assert (
        links.prefect_ui_url({"PREFECT_API_URL": "http://h/api", "PREFECT_UI_URL": "https://ui.example/"})
        == "https://ui.example"
    )
    assert links.prefect_ui_url({}) is None  # ephemeral Prefect: no UI, no link


def test_flow_run_url_needs_a_run_and_a_ui() -> None:
    env = {"PREFECT_API_URL": "http://127.0.0.1:4200/api"}
    assert links.flow_run_url("abc", env) == "http://127.0.0.1:4200/runs/flow-run/abc"
    assert links.flow_run_url(None, env) is None
    assert links.flow_run_url("none", env) is None
    assert links.flow_run_url("abc", {}) is None


def test_mlflow_pages() -> None:
    assert links.mlflow_ui_base("http://mlflow:5000/", {}) == "http://mlflow:5000"
    assert links.mlflow_ui_base("sqlite:///x.db", {}) == links.LOCAL_MLFLOW_UI
    assert (
        links.mlflow_ui_base("sqlite:///x.db", {links.MLFLOW_UI_ENV: "http://ui:8080/"}) == "http://ui:8080"
    )
    assert links.run_url("http://m", "3", "r1") == "http://m/#/experiments/3/runs/r1" + links.TRAINING_VIEW
    assert links.experiment_url("http://m", "3") == "http://m/#/experiments/3?workflowType=machine_learning"
    assert (
        links.model_version_url("http://m", "my model/x", "2")
        == "http://m/#/models/my%20model%2Fx/versions/2"
    )


def test_run_note_links_the_flow_runs_and_the_version() -> None:
    tags = {links.TAG_FLOW_RUN_URL: "http://p/runs/flow-run/a", links.TAG_PIPELINE_FLOW_RUN_URL: "http://p/b"}
    note = links.run_note(tags, "seg", "4", "http://m/#/models/seg/versions/4")
    assert "[seg v4](http://m/#/models/seg/versions/4)" in note
    assert "http://p/runs/flow-run/a" in note and "http://p/b" in note
    assert "Prefect" not in links.run_note({}, "seg", "4", "u")  # no flow run: no dangling label


def test_lineage_tags_carry_the_flow_run_urls(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    monkeypatch.delenv("PREFECT_UI_URL", raising=False)
    tags = lineage_tags("data/raw", "stage-id", "pipeline-id")
    assert tags[links.TAG_FLOW_RUN_URL] == "http://127.0.0.1:4200/runs/flow-run/stage-id"
    assert tags[links.TAG_PIPELINE_FLOW_RUN_URL] == "http://127.0.0.1:4200/runs/flow-run/pipeline-id"
    monkeypatch.delenv("PREFECT_API_URL")
    assert links.TAG_FLOW_RUN_URL not in lineage_tags("data/raw", "stage-id", None)
