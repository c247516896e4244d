"""Lineage tags: git commit, DVC hash of the input data, params hash, Prefect flow-run id."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from components.core.layout import PLAN_JSON
from components.tracking.links import flow_run_tags
from components.tracking.plan_log import TAG_PLAN, plan_sha

if TYPE_CHECKING:
    from components.data.splits import Splits
    from components.tracking.tracker import Tracker

TAG_GIT = "segflow.git_commit"
TAG_DATA = "segflow.data_dvc_md5"
TAG_PARAMS = "segflow.params_sha256"
TAG_FLOW_RUN = "segflow.prefect_flow_run_id"
TAG_PIPELINE_FLOW_RUN = "segflow.prefect_pipeline_flow_run_id"


def git_commit(repo: Path = Path()) -> str:
    """HEAD commit (with ``-dirty`` when the tree has uncommitted changes), or ``unknown``."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


def params_hash(path: Path = Path("params.yaml")) -> str:
    """sha256 of the params.yaml content, canonicalised (key order and comments do not matter)."""
    data = yaml.safe_load(path.read_text()) if path.is_file() else {}
    canon = yaml.safe_dump(data, sort_keys=True).encode()
    return hashlib.sha256(canon).hexdigest()


def data_dvc_hash(data_dir: str, lock: Path = Path("dvc.lock"), stage: str = "validate") -> str:
    """The md5 DVC recorded for ``data_dir`` as a dependency of ``stage`` in dvc.lock.

    DVC writes a stage's lock entry as soon as the stage finishes, so later stages of the same
    ``dvc repro`` see the hash of the data that validate actually read. Returns ``unknown`` when
    the stage has not been locked (e.g. a stage run by hand outside DVC).
    """
    if not lock.is_file():
        return "unknown"
    entry = (yaml.safe_load(lock.read_text()) or {}).get("stages", {}).get(stage, {})
    want = Path(data_dir).as_posix().rstrip("/")
    for dep in entry.get("deps", []):
        if Path(dep.get("path", "")).as_posix().rstrip("/") == want:
            return str(dep.get("md5", "unknown"))
    return "unknown"


def lineage_tags(data_dir: str, flow_run_id: str | None, pipeline_flow_run_id: str | None) -> dict[str, str]:
    """All lineage tags for an MLflow run or model version (with the Prefect flow-run URLs)."""
    tags = {
        TAG_GIT: git_commit(),
        TAG_DATA: data_dvc_hash(data_dir),
        TAG_PARAMS: params_hash(),
        TAG_PLAN: plan_sha(PLAN_JSON),
        TAG_FLOW_RUN: flow_run_id or "none",
    }
    if pipeline_flow_run_id:
        tags[TAG_PIPELINE_FLOW_RUN] = pipeline_flow_run_id
    tags.update(flow_run_tags(flow_run_id, pipeline_flow_run_id))  # the Prefect UI pages, when served
    return tags


def log_input_dataset(
    tracker: Tracker,
    run_id: str,
    data_dir: str,
    splits: Splits,
    class_names: Sequence[str],
    fold: int | None = None,
) -> None:
    """Log the DVC-versioned input data as the run's MLflow dataset (digest = its DVC md5).

    The profile counts the cases of each split (for a fold run: its own training and validation
    cases) and names the classes, so two runs on different data versions differ at a glance.
    """
    profile: dict[str, object] = {
        "cases": len(splits.test) + sum(len(f) for f in splits.folds),
        "test_cases": len(splits.test),
        "folds": splits.n_folds,
        "classes": list(class_names),
    }
    if fold is not None:
        profile.update(
            fold=fold, train_cases=len(splits.train_cases(fold)), val_cases=len(splits.folds[fold])
        )
    name = Path(data_dir).name or str(data_dir)
    tracker.log_dataset(run_id, name, data_dvc_hash(data_dir), str(data_dir), profile, "training")
