"""Package the fold ensemble as one MLflow pyfunc "model from code" (preprocessing + networks + TTA).

The model file is :mod:`components.ensembling.mlflow_model`; ``code_paths`` ships the ``components``
package beside it, so loading the model needs no pickled classes. The model's pip requirements are
the ``serve`` extra of pyproject.toml, pinned to the versions installed here (from requirements.txt).
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import mlflow
import numpy as np
from mlflow.models import ModelSignature
from mlflow.types.schema import ParamSchema, ParamSpec

from components.ensembling.input_guard import TRAINING_DATA_KEY
from components.ensembling.rois import ROIS_KEY
from components.inference.configurations import Member
from components.inference.options import InferenceOptions
from components.preprocessing.native import NativeSpec
from components.training.checkpoint import load_checkpoint

MODEL_FILE = Path(__file__).resolve().parent / "mlflow_model.py"
COMPONENTS_DIR = Path(__file__).resolve().parent.parent
DISTRIBUTION = "segflow"
MEMBERS_KEY = "members"  # ensemble.json: the configurations of a model of several


def serving_requirements(distribution: str = DISTRIBUTION) -> list[str]:
    """``name==version`` for every requirement of the distribution's ``serve`` extra.

    The names come from pyproject.toml (``[project.optional-dependencies] serve``), the versions
    from the installed environment, so the packaged model asks for exactly what it was built with.

    Raises:
        RuntimeError: segflow is not installed (``pip install -e .``) or declares no ``serve`` extra.
    """
    try:
        requires = metadata.requires(distribution) or []
    except metadata.PackageNotFoundError:
        raise RuntimeError(
            f"the {distribution!r} distribution is not installed; run `make venv` (pip install -e .)"
        ) from None
    names = [
        re.split(r"[\s;<>=!~\[]", req, maxsplit=1)[0]
        for req in requires
        if re.search(r"extra\s*==\s*[\"']serve[\"']", req)
    ]
    if not names:
        raise RuntimeError(f"{distribution}: pyproject.toml declares no `serve` extra")
    return [f"{name}=={metadata.version(name)}" for name in names]


def _input_example(checkpoint: Path, channels: int) -> np.ndarray:
    """A small valid input: a batch of one 2D image (N, H, W, C), or one volume (C, Z, Y, X)."""
    _, mspec, spec = load_checkpoint(checkpoint)
    if isinstance(spec, NativeSpec) and spec.ndim == 3:
        return np.zeros((mspec.in_channels, 8, 16, 16), dtype=np.float32)
    return np.zeros((1, 32, 32, channels), dtype=np.float32)


def _member_artifacts(members: Sequence[Member]) -> tuple[dict[str, str], list[dict]]:
    """Each configuration's checkpoints as artifacts (``<name>_fold_<i>``) and the config entries
    that name them with the configuration's inference settings."""
    artifacts: dict[str, str] = {}
    entries: list[dict] = []
    for m in members:
        keys = [f"{m.name}_fold_{i}" for i in range(len(m.checkpoints))]
        artifacts |= {k: str(p) for k, p in zip(keys, m.checkpoints, strict=True)}
        entries.append({"name": m.name, "artifacts": keys, "inference": m.options.to_json()})
    return artifacts, entries


def _pyfunc_kwargs(
    tmp: Path,
    checkpoints: list[Path],
    tta: bool | InferenceOptions,
    class_names: list[str],
    channels: int,
    rois: bool = False,
    training_data: dict | None = None,
    members: Sequence[Member] = (),
) -> dict:
    options = tta if isinstance(tta, InferenceOptions) else InferenceOptions(tta=tta)
    cfg = tmp / "ensemble.json"
    config = {"tta": options.tta, "inference": options.to_json(), "class_names": class_names, ROIS_KEY: rois}
    config[TRAINING_DATA_KEY] = training_data  # inputs far outside it are named (input_guard.py)
    if len(members) > 1:  # several configurations, averaged (components/inference/configurations.py)
        artifacts, config[MEMBERS_KEY] = _member_artifacts(members)
        checkpoints = [Path(p) for p in artifacts.values()]
    else:
        artifacts = {f"fold_{i}": str(p) for i, p in enumerate(checkpoints)}
    cfg.write_text(json.dumps(config))
    artifacts |= {"ensemble_config": str(cfg)}
    sig = ModelSignature(
        # No input schema: MLflow's tensor schema fixes the rank, and the model takes (N, H, W, C),
        # (N, H, W) or (H, W) images and (C, Z, Y, X) or (Z, Y, X) volumes; the model's own check
        # (components/ensembling/serving.py) answers a bad request with what it expected instead.
        inputs=None,
        params=ParamSchema(
            [
                ParamSpec("output", "string", "labels"),
                ParamSpec("input_dtype", "string", ""),
                ParamSpec("spacing", "string", ""),
                ParamSpec("strict", "string", ""),
            ]
        ),
    )
    return {
        "python_model": str(MODEL_FILE),
        "artifacts": artifacts,
        "code_paths": [str(COMPONENTS_DIR)],
        "signature": sig,
        "input_example": _input_example(checkpoints[0], channels),
        "pip_requirements": serving_requirements(),
    }


def save_ensemble_model(
    path: Path,
    checkpoints: list[Path],
    tta: bool | InferenceOptions,
    class_names: list[str],
    channels: int,
    rois: bool = False,
    training_data: dict | None = None,
    members: Sequence[Member] = (),
) -> None:
    """Write the packaged fold ensemble as a local MLflow model folder (a DVC output); ``rois``:
    trained and tested inside regions of interest (``segflow predict`` then warns without ``--rois``);
    ``training_data``: the summary inputs are checked against (components/inference/input_check.py);
    ``members``: several configurations to average (their checkpoints replace ``checkpoints``)."""
    shutil.rmtree(path, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        mlflow.pyfunc.save_model(
            path=str(path),
            **_pyfunc_kwargs(
                Path(tmp), checkpoints, tta, class_names, channels, rois, training_data, members
            ),
        )


def log_ensemble_model(
    tracking_uri: str,
    run_id: str,
    checkpoints: list[Path],
    tta: bool | InferenceOptions,
    class_names: list[str],
    channels: int,
    rois: bool = False,
    training_data: dict | None = None,
    members: Sequence[Member] = (),
) -> str:
    """Log the fold ensemble (or ``members``' configurations) as one pyfunc model in ``run_id``;
    return its model URI."""
    mlflow.set_tracking_uri(tracking_uri)
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name="ensemble",
            **_pyfunc_kwargs(
                Path(tmp), checkpoints, tta, class_names, channels, rois, training_data, members
            ),
        )
    return info.model_uri
