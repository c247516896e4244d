"""What the registry shows of the packaged model (its signature, input example, no type-hint warning),
and what a plain MLflow client and the scoring server accept of it."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pytest
import torch
from mlflow.exceptions import MlflowException
from mlflow.models import Model
from mlflow.pyfunc.scoring_server import invocations

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
    # No input schema: an MLflow tensor schema fixes the rank, and (N, H, W) images are promised too
    assert meta.signature.inputs is None
    assert {p.name for p in meta.signature.params.params} == {"output", "input_dtype", "spacing", "strict"}
    assert meta.saved_input_example_info is not None  # what `mlflow models serve` users see first

    example = meta.load_input_example(str(tmp_path / "model"))
    labels = mlflow.pyfunc.load_model(str(tmp_path / "model")).predict(np.asarray(example))
    assert labels.shape == np.asarray(example).shape[:3] and labels.dtype == np.int64


def _serve(model: mlflow.pyfunc.PyFuncModel, body: dict) -> tuple[int, dict | list]:
    """One request through MLflow's own scoring-server function (what ``segflow serve`` runs):
    the HTTP status and the JSON body it answers."""
    try:
        resp = invocations(json.dumps(body), "application/json", model, model.metadata.get_input_schema())
    except MlflowException as exc:  # the server's handler answers it with this status and body
        return exc.get_http_status_code(), json.loads(exc.serialize_as_json())
    return resp.status, json.loads(resp.response)


def test_what_serve_help_promises_is_accepted_by_a_plain_client_and_the_server(tmp_path: Path) -> None:
    save_ensemble_model(tmp_path / "model", [_one_fold(tmp_path)], False, CLASS_NAMES, 1)
    model = mlflow.pyfunc.load_model(str(tmp_path / "model"))  # as a plain MLflow client loads it
    images = np.random.default_rng(0).integers(0, 256, (2, 9, 11)).astype(np.float32)
    params = {"input_dtype": "uint8"}
    gray = np.asarray(model.predict(images[..., None], params=params))  # (N, H, W, C)
    np.testing.assert_array_equal(np.asarray(model.predict(images, params=params)), gray)  # (N, H, W)
    assert gray.shape == (2, 9, 11)
    for x in (images, images[..., None]):
        status, body = _serve(model, {"inputs": x.tolist(), "params": params})
        assert status == 200
        assert isinstance(body, dict)
        np.testing.assert_array_equal(np.asarray(body["predictions"]), gray)


BAD_REQUESTS = {
    "wrong rank": ({"inputs": np.full((2, 9), 117.0).tolist()[0]}, r"shape \[9\]: .*\(N, H, W, C\)"),
    "two channels": (
        {"inputs": np.full((1, 4, 5, 2), 117.0).tolist()},
        r"shape \[1, 4, 5, 2\].*C in \[1, 3, 4\]",
    ),
    "text": ({"inputs": [[["117a", "b"]]]}, r"received dtype <U4.*expected numbers"),
    # MLflow's own JSON parser answers this one, before the model: its words, but no values either
    "ragged": ({"inputs": [[[117.0, 118.0]], [[119.0]]]}, r"inhomogeneous shape"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_a_bad_request_says_what_was_expected_and_never_echoes_the_data(tmp_path: Path, case: str) -> None:
    save_ensemble_model(tmp_path / "model", [_one_fold(tmp_path)], False, CLASS_NAMES, 1)
    model = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    body, message = BAD_REQUESTS[case]
    status, answer = _serve(model, body)
    assert status == 400 and isinstance(answer, dict)
    assert re.search(message, answer["message"]), answer["message"]
    assert "117" not in answer["message"] and "Failed to predict data" not in answer["message"]
    assert "stack_trace" not in answer
