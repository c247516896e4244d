"""The packaged model's request contract: what it takes, and a clear 400-class error for what it does not."""

from __future__ import annotations

import json

import numpy as np
import pytest
from mlflow.exceptions import MlflowException

from components.ensembling.serving import (
    ModelInputError,
    check_model_input,
    example_request,
    request_body,
)


def test_an_input_error_is_served_as_http_400_and_is_a_value_error() -> None:
    err = ModelInputError("inputs has shape [2]")
    assert isinstance(err, MlflowException) and isinstance(err, ValueError)
    assert err.get_http_status_code() == 400
    body = json.loads(err.serialize_as_json())
    assert body["error_code"] == "INVALID_PARAMETER_VALUE" and body["message"] == "inputs has shape [2]"
    assert "stack_trace" not in body  # no server internals in the answer


def test_2d_inputs_accepted() -> None:
    one = check_model_input(np.zeros((5, 7)), None, 2, 1)  # one (H, W) image
    assert one.x.shape == (1, 5, 7) and one.output == "labels" and one.input_dtype is None
    for c in (1, 3, 4):
        assert check_model_input(np.zeros((2, 5, 7, c)), {}, 2, 1).x.shape == (2, 5, 7, c)
    assert check_model_input(np.zeros((2, 5, 7, 2)), {}, 2, 2).x.shape == (2, 5, 7, 2)  # trained on 2
    req = check_model_input(
        np.full((1, 5, 7, 1), 255.0), {"input_dtype": "uint8", "output": "probabilities"}, 2, 1
    )
    assert req.input_dtype == np.uint8 and req.output == "probabilities"


def test_3d_inputs_accepted() -> None:
    req = check_model_input(np.zeros((2, 4, 5, 6)), {"spacing": "2.5, 0.7,0.7"}, 3, 2)
    assert req.x.shape == (2, 4, 5, 6) and req.spacing == (2.5, 0.7, 0.7)
    assert check_model_input(np.zeros((4, 5, 6)), {"spacing": ""}, 3, 1).x.shape == (1, 4, 5, 6)


@pytest.mark.parametrize(
    ("x", "params", "ndim", "channels", "message"),
    [
        (np.zeros(7), {}, 2, 1, r"shape \[7\].*\(N, H, W, C\)"),
        (np.zeros((1, 2, 5, 7, 1)), {}, 2, 1, r"batch of images"),
        (np.zeros((1, 5, 7, 2)), {}, 2, 1, r"C in \[1, 3, 4\]"),
        (np.zeros((0, 5, 7, 1)), {}, 2, 1, r"no pixels"),
        (np.full((1, 5, 7, 1), np.nan), {}, 2, 1, r"NaN or infinite"),
        ([["a"]], {}, 2, 1, r"received dtype <U1\): expected numbers"),
        ([[1.0, 2.0], [3.0]], {}, 2, 1, r"not a rectangular array"),
        (np.zeros((1, 5, 7, 1)), {"output": "mask"}, 2, 1, r"params.output='mask'"),
        (np.zeros((1, 5, 7, 1)), {"input_dtype": "uint9"}, 2, 1, r"not a numpy dtype"),
        (np.zeros((1, 5, 7, 1)), {"input_dtype": "str"}, 2, 1, r"integer or float"),
        (np.full((1, 5, 7, 1), 300.0), {"input_dtype": "uint8"}, 2, 1, r"300.*outside its range 0\.\.255"),
        (np.full((1, 5, 7, 1), -1.0), {"input_dtype": "uint16"}, 2, 1, r"outside its range"),
        (np.zeros((3, 4, 5, 6)), {}, 3, 1, r"one volume \(C, Z, Y, X\) with C = 1"),
        (np.zeros((4, 5, 6)), {}, 3, 2, r"C = 2"),
        (np.zeros((1, 4, 5, 6)), {"spacing": "1,1"}, 3, 1, r"three positive numbers"),
        (np.zeros((1, 4, 5, 6)), {"spacing": "1,-1,1"}, 3, 1, r"three positive numbers"),
        (np.zeros((1, 4, 5, 6)), {"spacing": "a,b,c"}, 3, 1, r"'z,y,x' in mm"),
    ],
)
def test_malformed_inputs_name_what_is_wrong(
    x: object, params: dict[str, str], ndim: int, channels: int, message: str
) -> None:
    with pytest.raises(ModelInputError, match=message):
        check_model_input(x, params, ndim, channels)


def test_request_body_and_example() -> None:
    body = request_body(np.zeros((1, 2, 3, 1), np.uint8), input_dtype="uint8")
    assert body == {
        "inputs": [[[[0.0], [0.0], [0.0]], [[0.0], [0.0], [0.0]]]],
        "params": {"input_dtype": "uint8"},
    }
    assert "params" not in request_body(np.zeros((1, 1)))
    text = example_request("http://127.0.0.1:5009")
    assert text.startswith("curl -s http://127.0.0.1:5009/invocations")
    payload = json.loads(text.split("-d '", 1)[1].split("'", 1)[0])
    assert np.asarray(payload["inputs"]).shape == (1, 2, 3, 1) and payload["params"] == {
        "input_dtype": "uint8"
    }
