"""Register the packaged ensemble and apply the promotion gate (champion / challenger)."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types.schema import ParamSchema, ParamSpec, Schema, TensorSpec

from components.tracking.tracker import Tracker

CHAMPION, CHALLENGER = "champion", "challenger"
TAG_TEST_DICE = "segflow.test_dice"
TAG_SPLIT = "segflow.test_split_sha256"
MODEL_FILE = Path(__file__).resolve().parent.parent / "ensembling" / "mlflow_model.py"
COMPONENTS_DIR = Path(__file__).resolve().parent.parent
PIP_REQUIREMENTS = [
    "torch==2.14.1",
    "segmentation-models-pytorch==0.6.0",
    "timm==1.0.31",
    "numpy",
    "scipy",
    "opencv-python-headless",
    "albumentations==2.0.8",
    "mlflow==3.17.2",
]


@dataclass(frozen=True)
class Registration:
    """Outcome of registering one ensemble."""

    name: str
    version: str
    alias: str
    test_dice: float
    champion_dice: float | None
    reason: str


@contextlib.contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """Silence MLflow's advice to add predict() type hints: the signature here is explicit."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*[Tt]ype hint", category=UserWarning)
        yield


def _pyfunc_kwargs(
    tmp: Path, checkpoints: list[Path], tta: bool, class_names: list[str], channels: int
) -> dict:
    cfg = tmp / "ensemble.json"
    cfg.write_text(json.dumps({"tta": tta, "class_names": class_names}))
    artifacts = {f"fold_{i}": str(p) for i, p in enumerate(checkpoints)} | {"ensemble_config": str(cfg)}
    sig = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1, -1, -1))]),  # N, H, W, gray or RGB
        params=ParamSchema([ParamSpec("output", "string", "labels"), ParamSpec("input_dtype", "string", "")]),
    )
    return {
        "python_model": str(MODEL_FILE),
        "artifacts": artifacts,
        "code_paths": [str(COMPONENTS_DIR)],
        "signature": sig,
        "input_example": np.zeros((1, 32, 32, channels), dtype=np.float32),
        "pip_requirements": PIP_REQUIREMENTS,
    }


def save_ensemble_model(
    path: Path, checkpoints: list[Path], tta: bool, class_names: list[str], channels: int
) -> None:
    """Write the packaged fold ensemble as a local MLflow model folder (a DVC output)."""
    shutil.rmtree(path, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp, _quiet_mlflow():
        mlflow.pyfunc.save_model(
            path=str(path), **_pyfunc_kwargs(Path(tmp), checkpoints, tta, class_names, channels)
        )


def log_ensemble_model(
    tracker: Tracker, run_id: str, checkpoints: list[Path], tta: bool, class_names: list[str], channels: int
) -> str:
    """Log the fold ensemble as one pyfunc model in ``run_id``; return its model URI."""
    mlflow.set_tracking_uri(tracker.uri)
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(run_id=run_id), _quiet_mlflow():
        info = mlflow.pyfunc.log_model(
            name="ensemble", **_pyfunc_kwargs(Path(tmp), checkpoints, tta, class_names, channels)
        )
    return info.model_uri


def _champion_dice(
    tracker: Tracker, name: str, split_sha: str, score_uri: Callable[[str], float]
) -> tuple[float | None, str | None]:
    """The current champion's test Dice on this split (re-scored when it was tested on another)."""
    try:
        champ = tracker.client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None, None
    if champ.tags.get(TAG_SPLIT) == split_sha and TAG_TEST_DICE in champ.tags:
        return float(champ.tags[TAG_TEST_DICE]), champ.version
    return score_uri(f"models:/{name}@{CHAMPION}"), champ.version


def champion_per_case(tracker: Tracker, name: str, split_sha: str) -> pd.DataFrame | None:
    """The current champion's per-case test table, when it was tested on this same split."""
    try:
        champ = tracker.client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None
    run_id = champ.tags.get("mlflow_run_id")
    if champ.tags.get(TAG_SPLIT) != split_sha or not run_id:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = tracker.client.download_artifacts(run_id, "reports/test/per_case.csv", tmp)
        return pd.read_csv(path)


def register_and_gate(
    tracker: Tracker,
    model_uri: str,
    name: str,
    test_dice: float,
    split_sha: str,
    tags: Mapping[str, str],
    score_uri: Callable[[str], float],
) -> Registration:
    """Register ``model_uri`` as a new version of ``name`` and set its alias.

    The new version becomes ``champion`` when there is none yet or when its test Dice is not
    worse than the champion's on the same test split; otherwise it becomes ``challenger``.
    ``score_uri`` scores a model URI on the current test split (used when the champion was
    tested on another split).
    """
    mlflow.set_tracking_uri(tracker.uri)
    mlflow.set_registry_uri(tracker.uri)
    champ_dice, champ_version = _champion_dice(tracker, name, split_sha, score_uri)
    mv = mlflow.register_model(
        model_uri, name, tags={**tags, TAG_TEST_DICE: f"{test_dice:.6f}", TAG_SPLIT: split_sha}
    )
    if champ_dice is None:
        alias, reason = CHAMPION, "first version of this model"
    elif test_dice >= champ_dice:
        alias, reason = CHAMPION, f"test Dice {test_dice:.4f} >= champion v{champ_version} {champ_dice:.4f}"
    else:
        alias, reason = CHALLENGER, f"test Dice {test_dice:.4f} < champion v{champ_version} {champ_dice:.4f}"
    tracker.client.set_registered_model_alias(name, alias, mv.version)
    tracker.client.set_model_version_tag(name, mv.version, "segflow.gate", reason)
    return Registration(name, str(mv.version), alias, test_dice, champ_dice, reason)
