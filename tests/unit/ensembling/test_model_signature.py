"""What the registry shows of the packaged model: its signature, input example, and no type-hint warning."""

from __future__ import annotations

import warnings
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import torch
from mlflow.models import Model

from components.ensembling.packaging import save_ensemble_model
from components.preprocessing.pipeline import PreprocessSpec
from components.training.checkpoint import ModelSpec, save_checkpoint

CLASS_NAMES = ["background", "organ"]


def _one_fold(tmp_path: Path) -> Path:
    spec = PreprocessSpec((32, 32), "letterbox", "minmax", {}, 1)
    mspec = ModelSpec("unet", 1, 2, {"base_channels": 4, "depth": 2})
    torch.manual_seed(0)
    path = tmp_path / "fold_0.pt"
    save_checkpoint(path, mspec.build().eval(), mspec, spec, {"fold": 0})
    return path


def test_packaging_shows_no_type_hint_warning_and_keeps_the_explicit_signature(tmp_path: Path) -> None:
    ckpt = _one_fold(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        save_ensemble_model(tmp_path / "model", [ckpt], False, CLASS_NAMES, 1)
    hints = [str(w.message) for w in caught if "type hint" in str(w.message).lower()]
    assert hints == []

    meta = Model.load(str(tmp_path / "model"))
    assert meta.signature is not None
    [tensor] = meta.signature.inputs.inputs
    assert (tensor.type, tensor.shape) == (np.dtype(np.float32), (-1, -1, -1, -1))
    assert {p.name for p in meta.signature.params.params} == {"output", "input_dtype", "spacing"}
    assert meta.saved_input_example_info is not None  # what `mlflow models serve` users see first

    example = meta.load_input_example(str(tmp_path / "model"))
    labels = mlflow.pyfunc.load_model(str(tmp_path / "model")).predict(np.asarray(example))
    assert labels.shape == np.asarray(example).shape[:3] and labels.dtype == np.int64
