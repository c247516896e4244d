"""The packaged model checks its inputs against its training data: segflow predict names each input
far outside it (--strict refuses all before writing anything), and the model itself logs them or,
asked to be strict, refuses them with a message a server answers as HTTP 400."""

from __future__ import annotations

import logging
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pytest
import torch
from PIL import Image

from components.ensembling.packaging import save_ensemble_model
from components.ensembling.predict_folder import predict_folder
from components.ensembling.serving import ModelInputError
from components.inference.input_check import InputOutsideTrainingError, training_ranges
from components.preprocessing.pipeline import PreprocessSpec
from components.training.checkpoint import ModelSpec, save_checkpoint

FINGERPRINT = {
    "ndim": 2,
    "channels": 1,
    "spacing": {"min": [1.0, 1.0], "max": [1.0, 1.0]},
    "shape": {"min": [40, 40], "max": [64, 64]},
    "intensity": [{"p0_5": 60.0, "p99_5": 240.0}],
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("guarded")
    spec = PreprocessSpec((32, 32), "letterbox", "minmax", {}, 1)
    mspec = ModelSpec("unet", 1, 3, {"base_channels": 8, "depth": 2})
    torch.manual_seed(0)
    save_checkpoint(root / "fold_0.pt", mspec.build().eval(), mspec, spec, {"fold": 0})
    ranges = training_ranges(FINGERPRINT, [0.0, 5.0], [250.0, 255.0])
    save_ensemble_model(
        root / "model", [root / "fold_0.pt"], False, ["bg", "a", "b"], 1, training_data=ranges
    )
    return root / "model"


def _images(folder: Path, sizes: dict[str, int]) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, side in sizes.items():
        Image.fromarray(rng.integers(0, 256, (side, side), dtype=np.uint8)).save(folder / f"{name}.png")
    return folder


def test_predict_names_an_input_far_outside_and_strict_refuses_before_writing(
    model_dir: Path, tmp_path: Path
) -> None:
    inputs = _images(tmp_path / "in", {"usual": 48, "huge": 400})
    warned: list[str] = []
    n = predict_folder(str(model_dir), inputs, tmp_path / "out", overlays=False, warn=warned.append)
    assert n == 2 and warned == [
        "far outside the training data: huge.png: size 400 px on axis 0, the training data had 40-64 px",
        "far outside the training data: huge.png: size 400 px on axis 1, the training data had 40-64 px",
    ]
    with pytest.raises(InputOutsideTrainingError, match=r"huge\.png: size 400 px"):
        predict_folder(
            str(model_dir), inputs, tmp_path / "strict", overlays=False, warn=warned.append, strict=True
        )
    assert not (tmp_path / "strict").exists()  # nothing written


def test_the_model_logs_a_far_input_and_refuses_it_when_strict(
    model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = mlflow.pyfunc.load_model(str(model_dir))
    far = np.full((1, 48, 48, 1), 0.5, dtype=np.float32)  # values 0..1: not this model's 0..255 images
    far[0, :24] = 0.0
    with caplog.at_level(logging.WARNING, logger="segflow.inputs"):
        model.predict(far)
    assert "image 0: intensities 0 to 0.5 miss the training foreground's 60 to 240" in caplog.text
    with pytest.raises(ModelInputError, match="far outside the training data"):
        model.predict(far, params={"strict": "true"})
    usual = np.random.default_rng(1).integers(0, 256, (1, 48, 48, 1)).astype(np.float32)
    model.predict(usual, params={"strict": "true"})  # inside: answered
