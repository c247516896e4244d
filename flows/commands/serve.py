"""``segflow serve``: serve a packaged ensemble over HTTP with ``mlflow models serve`` (on 127.0.0.1).

The server is MLflow's own scoring server, run in this environment (``--env-manager local``: no
virtualenv to build, nothing downloaded). It runs in its own process group, so stopping
``segflow serve`` (Ctrl-C, SIGTERM) stops the server and every worker it started.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from components.core.threads import PROCESSES_ENV
from components.ensembling.input_guard import STRICT_ENV
from components.tracking.gate_lock import redact

SERVE_HELP = """Serve a packaged (registered) ensemble over HTTP: POST /invocations, GET /ping.

\b
Request (Content-Type: application/json):
  2D: {"inputs": <(N, H, W, C) or (N, H, W) images of one size>,
       "params": {"input_dtype": "uint8"}}       # the images' stored dtype
      (C: 1 gray, 3 RGB, 4 RGBA or the trained count; one (H, W) image too)
  3D: {"inputs": <one (C, Z, Y, X) volume>, "params": {"spacing": "2.5,0.7,0.7"}}
      (z,y,x mm; (Z, Y, X) for a one-channel model)
  "params": {"output": "probabilities"} returns (N, K, H, W) instead of labels.
Response: {"predictions": <(N, H, W) class indices>}   (3D: (1, Z, Y, X))
A malformed request (bad JSON, wrong shape, dtype or channels, bad params) gets HTTP 400 and a
message with what was received and what was expected (never the request's values).
`segflow serve --example` prints a curl command; from Python use
components.ensembling.serving.invoke(url, images, input_dtype="uint8").
"""


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_model(model: str) -> str:
    """A local model folder as an absolute path; an MLflow URI (``models:/``, ``runs:/``...) as is.

    Raises:
        typer.BadParameter: A path that is not an MLflow model folder.
    """
    if "://" in model or model.startswith(("models:/", "runs:/")):
        return model
    path = Path(model).expanduser()
    if not (path / "MLmodel").is_file():
        raise typer.BadParameter(
            f"{model}: neither an MLflow URI (models:/<name>@champion) nor a model folder with an "
            "MLmodel file (e.g. models/ensemble)",
            param_hint="--model",
        )
    return str(path.resolve())


def server_command(model: str, host: str, port: int, workers: int, timeout: int) -> list[str]:
    """The ``mlflow models serve`` command line segflow runs."""
    return [
        sys.executable,
        "-m",
        "mlflow",
        "models",
        "serve",
        "-m",
        model,
        "--env-manager",
        "local",
        "-h",
        host,
        "-p",
        str(port),
        "-w",
        str(workers),
        "-t",
        str(timeout),
    ]


def run_server(cmd: list[str], env: dict[str, str]) -> int:
    """Run the server in its own process group until it exits or this process is told to stop.

    SIGINT/SIGTERM are passed to the whole group; whatever is left of it afterwards is killed.
    """
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)

    def forward(signum: int, frame: FrameType | None) -> None:
        del frame
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM if signum == signal.SIGTERM else signal.SIGINT)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _stop_group(proc)


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group, then SIGKILL what is still there after 15 s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            continue
        try:  # the leader is gone; workers of the group may still be exiting
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return


def serve_command(
    model: Annotated[
        str | None,
        typer.Option(help="MLflow model URI (models:/<name>@champion) or a model folder (models/ensemble)."),
    ] = None,
    host: Annotated[
        str, typer.Option(help="Interface to bind; 127.0.0.1 unless you mean to expose it.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 5001,
    workers: Annotated[int, typer.Option(min=1, help="Server worker processes.")] = 1,
    timeout: Annotated[int, typer.Option(min=1, help="Seconds one request may take.")] = 60,
    example: Annotated[
        bool, typer.Option("--example", help="Print an example request (curl) and exit.")
    ] = False,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Answer HTTP 400 to inputs far outside the training data (without it: served, and logged); "
            'a request can also ask with params {"strict": "true"}.',
        ),
    ] = False,
) -> None:
    """Serve a packaged ensemble (see SERVE_HELP for the request format)."""
    from components.ensembling.serving import example_request  # imports mlflow: only when used
    from components.tracking.tracker import tracking_uri

    if example:
        typer.echo(example_request(f"http://{host}:{port}"))
        return
    if not model:
        raise typer.BadParameter(
            "give the model to serve, e.g. models:/<name>@champion", param_hint="--model"
        )
    uri = resolve_model(model)
    if not is_loopback(host):
        typer.secho(
            f"segflow serve: binding to {host}, not loopback: anyone who can reach this host can call "
            "the model (the scoring server has no authentication); put it behind an authenticating "
            "proxy",
            fg="yellow",
            err=True,
        )
    env = dict(os.environ)
    env.setdefault("MLFLOW_TRACKING_URI", tracking_uri())  # where models:/ URIs are resolved
    env[PROCESSES_ENV] = str(workers)  # each worker's model takes its share of the cores
    if strict:
        env[STRICT_ENV] = "1"  # the model refuses inputs far outside its training data
    # mlflow starts `uvicorn` by name: this environment's, even when segflow is called by full path
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    typer.echo(
        f"serving {uri} on http://{host}:{port} (tracking {redact(env['MLFLOW_TRACKING_URI'])}); "
        "Ctrl-C stops it",
        err=True,
    )
    code = run_server(server_command(uri, host, port, workers, timeout), env)
    if code not in (0, -signal.SIGTERM, -signal.SIGINT, 128 + signal.SIGTERM, 128 + signal.SIGINT):
        raise typer.Exit(code)
