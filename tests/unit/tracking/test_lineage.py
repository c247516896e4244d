"""Lineage tags: params hash, DVC data hash from dvc.lock, git commit outside a repository."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from components.data.splits import Splits
from components.tracking.lineage import (
    TAG_DATA,
    TAG_FLOW_RUN,
    TAG_GIT,
    TAG_PARAMS,
    TAG_PIPELINE_FLOW_RUN,
    data_dvc_hash,
    git_commit,
    lineage_tags,
    log_input_dataset,
    params_hash,
)
from components.tracking.plan_log import TAG_PLAN
from components.tracking.tracker import Tracker

PARAMS_A = """# segflow parameters
train:
  epochs: 3        # short run
  lr: 0.1
data:
  dir: data/raw
"""
PARAMS_B = """data: {dir: data/raw}
# the same values, other order, other comments
train: {lr: 0.1, epochs: 3}
"""
LOCK = {
    "schema": "2.0",
    "stages": {
        "validate": {
            "cmd": "python -m flows.validate",
            "deps": [
                {"path": "components/validation", "md5": "111.dir"},
                {"path": "data/raw", "md5": "abc123.dir", "size": 10, "nfiles": 2},
            ],
        },
        "train": {"cmd": "python -m flows.train", "deps": [{"path": "data/raw", "md5": "other.dir"}]},
    },
}


def test_params_hash_ignores_key_order_and_comments(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.yaml", tmp_path / "b.yaml", tmp_path / "c.yaml"
    a.write_text(PARAMS_A)
    b.write_text(PARAMS_B)
    c.write_text(PARAMS_A.replace("epochs: 3", "epochs: 4"))
    assert params_hash(a) == params_hash(b)
    assert params_hash(a) != params_hash(c)
    assert len(params_hash(a)) == 64 and int(params_hash(a), 16) >= 0


def test_data_dvc_hash_reads_the_stage_dependency(tmp_path: Path) -> None:
    lock = tmp_path / "dvc.lock"
    lock.write_text(yaml.safe_dump(LOCK))
    assert data_dvc_hash("data/raw", lock) == "abc123.dir"
    assert data_dvc_hash("data/raw/", lock) == "abc123.dir"
    assert data_dvc_hash("./data/raw", lock) == "abc123.dir"
    assert data_dvc_hash("data/raw", lock, stage="train") == "other.dir"
    assert data_dvc_hash("data/other", lock) == "unknown"
    assert data_dvc_hash("data/raw", lock, stage="evaluate") == "unknown"
    assert data_dvc_hash("data/raw", tmp_path / "missing.lock") == "unknown"
    (tmp_path / "empty.lock").write_text("")
    assert data_dvc_hash("data/raw", tmp_path / "empty.lock") == "unknown"


def test_git_commit_outside_a_repository_is_unknown(tmp_path: Path) -> None:
    assert git_commit(tmp_path) == "unknown"


def test_lineage_tags_in_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(PARAMS_A)
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(LOCK))
    tags = lineage_tags("data/raw", "flow-1", None)
    assert tags == {
        TAG_GIT: "unknown",
        TAG_DATA: "abc123.dir",
        TAG_PARAMS: params_hash(tmp_path / "params.yaml"),
        TAG_PLAN: "none",  # no plan stage ran here
        TAG_FLOW_RUN: "flow-1",
    }
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "plan.json").write_text('{"version": 1}')
    assert lineage_tags("data/raw", "flow-1", None)[TAG_PLAN] == hashlib.sha256(b'{"version": 1}').hexdigest()
    tags = lineage_tags("data/raw", None, "pipeline-7")
    assert tags[TAG_FLOW_RUN] == "none" and tags[TAG_PIPELINE_FLOW_RUN] == "pipeline-7"


def test_input_dataset_is_logged_with_the_dvc_hash(
    tracker: Tracker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dvc.lock").write_text(
        yaml.safe_dump(
            {
                "stages": {
                    "validate": {
                        "deps": [{"path": "data/raw", "md5": "0123456789abcdef0123456789abcdef.dir"}]
                    }
                }
            }
        )
    )
    splits = Splits(test=["t1", "t2"], folds=[["a", "b"], ["c"], ["d", "e"]], seed=0)
    run_id = tracker.start_run("dataset-check")
    log_input_dataset(tracker, run_id, "data/raw", splits, ["background", "organ"], fold=1)
    [inp] = tracker.client.get_run(run_id).inputs.dataset_inputs
    assert inp.dataset.name == "raw" and inp.dataset.digest == "0123456789abcdef0123456789abcdef.dir"
    assert json.loads(inp.dataset.profile) == {
        "cases": 7,
        "test_cases": 2,
        "folds": 3,
        "classes": ["background", "organ"],
        "fold": 1,
        "train_cases": 4,
        "val_cases": 1,
    }
    assert {t.key: t.value for t in inp.tags}["mlflow.data.context"] == "training"
