"""``segflow serve`` of a real packaged ensemble, by its registry alias, on 127.0.0.1: right
answers, 4xx for malformed requests (and still serving), and no process left once stopped."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import psutil  # type: ignore[import-untyped]  # a dependency of dvc
import pytest
import torch
from mlflow.tracking import MlflowClient

from components.ensembling.packaging import save_ensemble_model
from components.ensembling.serving import invoke, request_body
from components.preprocessing.pipeline import PreprocessSpec
from components.training.checkpoint import ModelSpec, save_checkpoint

pytestmark = pytest.mark.slow
SEGFLOW = Path(sys.executable).parent / "segflow"
CLASS_NAMES = ["background", "organ", "lesion"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, str]:
    req = urllib.request.Request(url + "/invocations", data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def build_packaged_model(root: Path) -> Path:
    """Two untrained tiny U-Nets (gray, "dtype" intensity, TTA) packaged as one ensemble folder."""
    spec = PreprocessSpec((32, 32), "letterbox", "dtype", {}, 1)
    mspec = ModelSpec("unet", 1, 3, {"base_channels": 8, "depth": 2})
    checkpoints = []
    for k in range(2):
        torch.manual_seed(k)
        checkpoints.append(root / f"fold_{k}.pt")
        save_checkpoint(checkpoints[-1], mspec.build().eval(), mspec, spec, {"fold": k})
    save_ensemble_model(root / "model", checkpoints, True, CLASS_NAMES, 1)
    return root / "model"


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"segflow serve exited ({proc.returncode}):\n{log.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(url + "/ping", timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"no /ping answer:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_packaged_model(tmp_path_factory.mktemp("serve"))


def register_champion(model_dir: Path, uri: str) -> str:
    """The packaged folder as version 1 of a registered model with the ``champion`` alias."""
    client = MlflowClient(uri)
    exp = client.create_experiment("serve", artifact_location=(model_dir.parent / "artifacts").as_uri())
    run = client.create_run(exp)
    client.log_artifacts(run.info.run_id, str(model_dir), "model")
    client.set_terminated(run.info.run_id)
    client.create_registered_model("segflow-serve")
    source = f"{run.info.artifact_uri}/model"
    mv = client.create_model_version("segflow-serve", source, run_id=run.info.run_id)
    client.set_registered_model_alias("segflow-serve", "champion", mv.version)
    return "models:/segflow-serve@champion"


@contextlib.contextmanager
def mlflow_uri(model_dir: Path) -> Iterator[None]:
    """The fixture's registry as this process's tracking URI, for the block."""
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{model_dir.parent / 'mlflow.db'}")
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)


@pytest.fixture(scope="module")
def server(model_dir: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """``segflow serve --model models:/segflow-serve@champion`` (the packaged folder, registered in a
    SQLite store) on a free loopback port (stopped by the last test or here)."""
    port = free_port()
    log = model_dir.parent / "serve.log"
    uri = f"sqlite:///{model_dir.parent / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    model = register_champion(model_dir, uri)
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [str(SEGFLOW), "serve", "--model", model, "--port", str(port)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, log)
        yield url, proc, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serves_what_the_model_predicts_in_process(
    server: tuple[str, subprocess.Popen[bytes], Path], model_dir: Path
) -> None:
    url, proc, _ = server
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (2, 23, 31, 1)).astype(np.float32)
    local = mlflow.pyfunc.load_model(str(model_dir))
    expected = np.asarray(local.predict(images, params={"input_dtype": "uint8"}))
    labels = invoke(url, images, input_dtype="uint8")
    assert labels.shape == (2, 23, 31) and set(np.unique(labels)) <= {0, 1, 2}
    np.testing.assert_array_equal(labels, expected)
    # (N, H, W), as `segflow serve --help` promises, from the server and from a plain MLflow client
    np.testing.assert_array_equal(invoke(url, images[..., 0], input_dtype="uint8"), expected)
    with mlflow_uri(model_dir):
        champion = mlflow.pyfunc.load_model("models:/segflow-serve@champion")
    np.testing.assert_array_equal(champion.predict(images[..., 0], params={"input_dtype": "uint8"}), expected)
    probs = invoke(url, images[:1], input_dtype="uint8", output="probabilities")
    assert probs.shape == (1, 3, 23, 31)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-4)
    # It listens on loopback only.
    listening = {
        c.laddr.ip
        for p in [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        for c in p.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    }
    assert listening == {"127.0.0.1"}


MALFORMED = {
    "not JSON": (b"{not json", "application/json", None),
    "no inputs key": (json.dumps({"images": [[1.0]]}).encode(), "application/json", None),
    "ragged array": (json.dumps({"inputs": [[[1.0, 2.0]], [[3.0]]]}).encode(), "application/json", None),
    "strings": (json.dumps({"inputs": [[[["a"]]]]}).encode(), "application/json", None),
    "one number": (json.dumps({"inputs": 7}).encode(), "application/json", None),
    "empty batch": (json.dumps({"inputs": []}).encode(), "application/json", None),
    "two channels": (
        json.dumps(request_body(np.zeros((1, 8, 8, 2)), input_dtype="uint8")).encode(),
        "application/json",
        "C in",
    ),
    "bad output param": (
        json.dumps(request_body(np.zeros((1, 8, 8, 1)), input_dtype="uint8", output="mask")).encode(),
        "application/json",
        "params.output",
    ),
    "values outside uint8": (
        json.dumps(request_body(np.full((1, 8, 8, 1), 300.0), input_dtype="uint8")).encode(),
        "application/json",
        "outside its range",
    ),
    "no input_dtype for 0..255 values": (
        json.dumps(request_body(np.full((1, 8, 8, 1), 200.0))).encode(),
        "application/json",
        "input_dtype",
    ),
    "not JSON content type": (b"a,b\n1,2\n", "text/plain", None),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_request_gets_a_4xx(server: tuple[str, subprocess.Popen[bytes], Path], case: str) -> None:
    url, proc, _ = server
    body, content_type, message = MALFORMED[case]
    status, text = post(url, body, content_type)
    assert 400 <= status < 500, f"{case}: HTTP {status} {text[:500]}"
    if message is not None:
        assert message in json.loads(text)["message"]
        assert "stack_trace" not in json.loads(text)  # our input errors carry no server internals
        assert "Failed to predict data" not in text  # MLflow's prefix that echoes every value
    assert proc.poll() is None


def test_still_serving_then_stops_leaving_no_process(
    server: tuple[str, subprocess.Popen[bytes], Path], model_dir: Path
) -> None:
    url, proc, log = server
    image = np.full((1, 9, 11, 1), 40.0, np.float32)
    expected = np.asarray(
        mlflow.pyfunc.load_model(str(model_dir)).predict(image, params={"input_dtype": "uint8"})
    )
    np.testing.assert_array_equal(invoke(url, image, input_dtype="uint8"), expected)
    family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    assert len(family) >= 2  # segflow, and the server it started
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
    _, alive = psutil.wait_procs(family, timeout=30)
    assert alive == [], f"left running: {alive}"
    with pytest.raises(OSError):
        urllib.request.urlopen(url + "/ping", timeout=5)
