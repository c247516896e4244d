"""The whole pipeline, for real: Prefect flow -> dvc repro -> stage flows -> MLflow registry."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from components.evaluation.last_run import last_run_results
from components.params.reads import PARAMS_READS_ENV
from components.tracking.links import (
    NOTE_TAG,
    TAG_FLOW_RUN_URL,
    TAG_PIPELINE_FLOW_RUN_URL,
    experiment_url,
    model_version_url,
    run_url,
)
from flows.runtime.stage import TIMING_ENV
from tests.integration.browser import browser, computed, mlflow_ui, offline_page, screenshot
from tests.integration.conftest import BIN, run, served_pipeline
from tests.unit.architecture.test_dvc_contract import unlisted_reads

pytestmark = pytest.mark.slow

TINY = {
    "data.synthetic.n_cases": 36,
    "data.synthetic.image_size": 64,
    "data.synthetic.n_patients": 36,
    "preprocess.image_size": [48, 48],
    "preprocess.splits.n_folds": 2,
    "preprocess.splits.test_fraction": 0.2,
    "train.epochs": 15,
    "train.batch_size": 4,
    "ensemble.registered_model": "segflow-it",
    "tracking.experiment": "segflow-it",
    "evaluate.worst_cases": 3,
}


def _dvc(root: Path, env: dict[str, str], *args: str, check: bool = True):
    return run([str(BIN / "dvc"), *args], root, env, check=check)


def _prefect_artifacts(api: str, key: str) -> list[dict]:
    """The Prefect artifacts with this key, from the server's REST API."""
    body = json.dumps({"artifacts": {"key": {"any_": [key]}}}).encode()
    req = urllib.request.Request(
        f"{api}/artifacts/filter", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def _commit(root: Path, env: dict[str, str], msg: str) -> None:
    run(["git", "add", "-A"], root, env)
    run(["git", "commit", "-qm", msg], root, env)


def test_pipeline_end_to_end(
    project: tuple[Path, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, env = project
    reads_log = tmp_path / "params_reads.jsonl"  # outside the project: no DVC/git noise
    monkeypatch.setenv(PARAMS_READS_ENV, str(reads_log))
    timing = tmp_path / "stage_timing.jsonl"
    monkeypatch.setenv(TIMING_ENV, str(timing))
    from components.params.edit import apply_overrides
    from flows.pipeline import pipeline

    apply_overrides(root / "params.yaml", TINY)
    run([str(BIN / "segflow"), "generate", "--out", "data/raw"], root, env)
    _dvc(root, env, "add", "-q", "data/raw")
    _commit(root, env, "tiny project")

    summary = pipeline()  # the deployment's flow, run by the real Prefect engine
    monkeypatch.delenv(PARAMS_READS_ENV)
    monkeypatch.delenv(TIMING_ENV)

    # The stages after the long train stage ran in children of the warm process (flows/runtime/warm.py),
    # not cold (the first ones may, while it still imports).
    marks = [json.loads(line) for line in timing.read_text().splitlines()]
    assert {m["stage"] for m in marks if m["warm"]} >= {"evaluate", "ensemble"}, marks

    # Every params key a stage read is in its dvc.yaml params (else a change would not re-run it).
    reads = [json.loads(line) for line in reads_log.read_text().splitlines()]
    assert {r["stage"] for r in reads} == {"validate", "preprocess", "train", "evaluate", "ensemble"}
    assert unlisted_reads(reads, yaml.safe_load((root / "dvc.yaml").read_text())) == []

    # Outputs of every stage.
    for rel in (
        "data/manifest.parquet",
        "reports/validation/result.json",
        "data/prepared/splits.json",
        "models/folds/fold_0/best.pt",
        "models/folds/fold_1/history.csv",
        "reports/cv/per_case.csv",
        "reports/cv/summary.json",
        "reports/test/summary.json",
        "models/ensemble/model/MLmodel",
        "reports/cv/plots/box_dice.png",
        "reports/test/plots/roc.png",
    ):
        assert (root / rel).exists(), rel
    splits = json.loads((root / "data/prepared/splits.json").read_text())
    assert len(splits["folds"]) == 2 and splits["test"]

    # Learned something: the two organs are easy on this phantom set.
    cv, test = summary["cv"], summary["test"]
    assert cv["organ_a"]["dice"]["mean"] > 0.6, cv
    assert test["organ_a"]["dice"]["mean"] > 0.6, test
    assert set(cv) >= {"organ_a", "organ_b", "lesion"}

    # Registry: first version is the champion, tagged with lineage.
    reg = summary["registration"]
    assert (reg["version"], reg["alias"]) == ("1", "champion")
    client = MlflowClient()
    mv = client.get_model_version_by_alias("segflow-it", "champion")
    assert "**Gate:** first version of this model." in mv.description  # the registry's model card
    assert "| organ_a |" in mv.description and "test Dice [95% CI]" in mv.description
    assert client.get_registered_model("segflow-it").tags["segflow.champion_reason"].startswith("v1: ")
    for tag in (
        "segflow.git_commit",
        "segflow.data_dvc_md5",
        "segflow.params_sha256",
        "segflow.prefect_flow_run_id",
        "segflow.prefect_pipeline_flow_run_id",
        "segflow.test_dice",
    ):
        assert mv.tags.get(tag) not in (None, "", "unknown", "none"), (tag, mv.tags)
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    assert mv.tags["segflow.data_dvc_md5"] == next(
        d["md5"] for d in lock["stages"]["validate"]["deps"] if d["path"] == "data/raw"
    )
    exp = client.get_experiment_by_name("segflow-it")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    for r in runs:  # the DVC-versioned input is each training run's MLflow dataset
        if r.data.tags["mlflow.runName"] != "ensemble":
            [inp] = r.inputs.dataset_inputs
            assert (inp.dataset.name, inp.dataset.digest) == ("raw", mv.tags["segflow.data_dvc_md5"])
    children = {
        r.data.tags["mlflow.runName"]
        for r in runs
        if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id
    }
    assert children == {"fold-0", "fold-1", "ensemble"}
    ensemble_run = next(r for r in runs if r.data.tags["mlflow.runName"] == "ensemble")
    assert parents[0].info.status == "FINISHED"  # ended by the last stage: it spans the pipeline
    assert parents[0].info.end_time >= ensemble_run.info.end_time
    for r in runs:  # every run carries the lineage tags
        for tag in ("segflow.git_commit", "segflow.data_dvc_md5", "segflow.params_sha256"):
            assert r.data.tags.get(tag) not in (None, "", "unknown"), (r.data.tags["mlflow.runName"], tag)
    fold0 = next(r for r in runs if r.data.tags["mlflow.runName"] == "fold-0")
    assert len(client.get_metric_history(fold0.info.run_id, "val_dice")) == TINY["train.epochs"]

    # Links both ways: each run names its Prefect flow runs and the model version; the ensemble
    # flow run has the model version's MLflow URL as an artifact.
    api = env["PREFECT_API_URL"].removesuffix("/api")
    for r in runs:
        assert r.data.tags[TAG_FLOW_RUN_URL].startswith(f"{api}/runs/flow-run/"), r.data.tags
        assert r.data.tags[TAG_PIPELINE_FLOW_RUN_URL].startswith(f"{api}/runs/flow-run/")
        assert "#/models/segflow-it/versions/1)" in r.data.tags[NOTE_TAG]
    assert mv.tags["segflow.prefect_flow_run_id"] in ensemble_run.data.tags[TAG_FLOW_RUN_URL]
    ensemble_flow_run = mv.tags["segflow.prefect_flow_run_id"]
    # the Prefect server is shared by the session's tests: other pipelines made such artifacts too
    [artifact] = [
        a
        for a in _prefect_artifacts(env["PREFECT_API_URL"], "model-version")
        if a["flow_run_id"] == ensemble_flow_run
    ]
    assert "#/models/segflow-it/versions/1)" in artifact["data"], artifact  # [label](url)
    assert (root / "reports/index.html").is_file()
    assert "checkpoint" in {a.path for a in client.list_artifacts(fold0.info.run_id)}

    # DVC: up to date, a no-op repro, metrics visible.
    assert "up to date" in _dvc(root, env, "status").stdout
    noop = _dvc(root, env, "repro").stdout
    assert "Data and pipelines are up to date" in noop and "Running stage" not in noop, noop
    metrics = _dvc(root, env, "metrics", "show").stdout
    assert "reports/cv/summary.json" in metrics and "reports/test/summary.json" in metrics

    # A train param change makes the plan stale (it resolves params.yaml); once it has run, train
    # and what follows re-run (their keys in plans/params.yaml changed), never validate or preprocess.
    _commit(root, env, "first run")
    apply_overrides(root / "params.yaml", {"train.epochs": 2})
    assert set(json.loads(_dvc(root, env, "status", "--json").stdout)) == {"plan"}
    lock1 = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    manifest_mtime = (root / "data/manifest.parquet").stat().st_mtime_ns

    # Re-run through the served Prefect deployment, with the param given at trigger time:
    # a second version, gated against the champion on the same test split.
    with served_pipeline(root, env):
        trig = run(
            [
                str(BIN / "prefect"),
                "deployment",
                "run",
                "segflow-pipeline/segflow-local",
                "-p",
                'overrides={"train.epochs": 2}',
                "--watch",
                "--watch-timeout",
                "900",
            ],
            root,
            env,
        )
    assert "Completed" in trig.stdout, trig.stdout[-3000:]
    assert "up to date" in _dvc(root, env, "status").stdout
    summary2 = last_run_results(root)
    comparison = json.loads((root / "models/ensemble/comparison_with_champion.json").read_text())
    assert comparison["all"]["dice"]["n"] > 0 and comparison["a"] == "champion", comparison
    lock2 = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    rerun = {stage for stage in lock1 if lock1[stage] != lock2[stage]}
    assert rerun == {"plan", "train", "evaluate", "ensemble"}, rerun
    assert (root / "data/manifest.parquet").stat().st_mtime_ns == manifest_mtime  # validate did not run
    reg2 = summary2["registration"]
    assert reg2["version"] == "2"
    expected = "champion" if reg2["test_dice"] >= reg["test_dice"] else "challenger"
    assert reg2["alias"] == expected, reg2
    assert str(client.get_model_version_by_alias("segflow-it", expected).version) == "2"
    if expected == "challenger":
        assert str(client.get_model_version_by_alias("segflow-it", "champion").version) == "1"

    # The packaged model segments new images (CLI, registry URI).
    out = root / "pred"
    run(
        [
            str(BIN / "segflow"),
            "predict",
            "--model",
            "models:/segflow-it@champion",
            "--input",
            "data/raw/images",
            "--output",
            str(out),
        ],
        root,
        env,
    )
    n_images = len(list((root / "data/raw/images").iterdir()))
    assert len(list(out.glob("*.png"))) == n_images
    assert len(list((out / "overlays").glob("*.png"))) == n_images
    FINISHED["project"] = (root, env)


FINISHED: dict[str, tuple[Path, dict[str, str]]] = {}  # the project test_pipeline_end_to_end leaves


def test_results_browse_in_a_real_browser() -> None:
    """The MLflow UI shows the model card and alias; reports/index.html and the Data Docs render
    styled from disk with the network off. Screenshots are kept (SEGFLOW_TEST_ARTIFACTS)."""
    if "project" not in FINISHED:
        pytest.skip("needs the project that test_pipeline_end_to_end finished")
    root, env = FINISHED["project"]
    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    champion = client.get_model_version_by_alias("segflow-it", "champion")
    exp = client.get_experiment_by_name("segflow-it")
    fold0 = next(
        r for r in client.search_runs([exp.experiment_id]) if r.data.tags["mlflow.runName"] == "fold-0"
    )
    with browser() as b:
        with mlflow_ui(env["MLFLOW_TRACKING_URI"], root, env) as base:
            page = b.new_page(viewport={"width": 1200, "height": 860})
            page.goto(model_version_url(base, "segflow-it", champion.version))
            card = page.locator("table", has_text="test Dice [95% CI]").first
            card.wait_for(timeout=180_000)  # the description's Dice table, rendered from markdown
            assert "organ_a" in card.inner_text() and "lesion" in card.inner_text()
            page.get_by_text(re.compile(r"^@\s*champion$")).first.wait_for(timeout=60_000)  # alias chip
            screenshot(page, "mlflow_model_version")
            page.goto(experiment_url(base, exp.experiment_id))
            # the runs table (not GenAI traces): the parent run, its fold runs nested under it
            page.get_by_text(re.compile(r"^pipeline-\d{8}-\d{6}$")).first.wait_for(timeout=180_000)
            screenshot(page, "mlflow_experiment_runs")
            page.goto(run_url(base, exp.experiment_id, fold0.info.run_id))
            page.get_by_text("Part of the segflow pipeline").first.wait_for(timeout=180_000)
            screenshot(page, "mlflow_fold_run")
        with offline_page(b) as (page, requested):
            page.goto((root / "reports" / "index.html").as_uri())
            assert page.locator("section.card").count() >= 4
            assert computed(page, "section.card", "background-color") == "rgb(255, 255, 255)"
            assert computed(page, ".card-header", "border-bottom-style") == "solid"
            assert page.eval_on_selector_all("img", "i => i.length > 0 && i.every(x => x.naturalWidth > 0)")
            screenshot(page, "report_index")
            page.goto((root / "reports" / "validation" / "data_docs" / "index.html").as_uri())
            rows = page.locator("a.segflow-row-link")
            assert rows.count() >= 2  # validation result + suite, rendered without jQuery
            assert computed(page, "table", "border-collapse") == "collapse"
            screenshot(page, "data_docs_index")
            rows.first.click()
            page.wait_for_load_state()
            assert "Expectation Validation Result" in page.inner_text("body")
            assert computed(page, ".card-header", "background-color") != "rgba(0, 0, 0, 0)"
            screenshot(page, "data_docs_validation")
        assert requested == [], requested  # nothing was fetched from the network
