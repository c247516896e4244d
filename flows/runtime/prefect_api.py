"""The Prefect API of one ``segflow run``: the configured one, else a local server the run owns.

Without ``PREFECT_API_URL`` Prefect starts a temporary server in every process that calls its API:
the pipeline's own and, before, one per stage process (6-14 s each here). Such a server is a plain
child of its process: a terminal's Ctrl-C ends it at once, before the pipeline could report its
flow run's end, and a stage killed while it stops leaves its server running. So ``segflow run``
starts one server for the run instead (``prefect server start --no-ui --no-services`` on a free
loopback port, its database under ``PREFECT_HOME`` as a temporary server's would be), in a session
of its own (a terminal's signals reach ``segflow`` only), killed with ``segflow`` even by SIGKILL
(``PR_SET_PDEATHSIG``), and stopped when the run ends. The pipeline passes its URL to every stage,
so no stage starts a server either.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from flows.runtime.parent_death import stop_with_parent

DEFAULT_START_TIMEOUT_S = 180.0  # as prefect.toml's server.ephemeral.startup_timeout_seconds
_STOP_S = 3.0


class PrefectServerError(RuntimeError):
    """The run's own Prefect server did not start."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


@contextlib.contextmanager
def run_api(log: IO[str], timeout_s: float = DEFAULT_START_TIMEOUT_S) -> Iterator[str]:
    """Yield the API URL for the block: ``PREFECT_API_URL`` when set, else the run's own server's.

    The own server's URL is put into ``PREFECT_API_URL`` for the block (read by Prefect when it is
    first imported, and by every stage process). Its output goes to ``log``.

    Raises:
        PrefectServerError: The own server exited or did not answer within ``timeout_s``.
    """
    configured = os.environ.get("PREFECT_API_URL")
    if configured:
        yield configured
        return
    url = f"http://127.0.0.1:{_free_port()}/api"
    port = url.rsplit(":", 1)[1].split("/")[0]
    cmd = [str(Path(sys.executable).parent / "prefect"), "server", "start", "--host", "127.0.0.1"]
    cmd += ["--port", port, "--no-ui", "--no-services"]
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=stop_with_parent,
    )
    try:
        deadline = time.monotonic() + timeout_s
        while not _healthy(url):
            if proc.poll() is not None:
                raise PrefectServerError(
                    f"the run's Prefect server exited ({proc.returncode}); see {log.name}"
                )
            if time.monotonic() > deadline:
                raise PrefectServerError(f"the run's Prefect server did not answer in {timeout_s:g} s")
            time.sleep(0.2)
        os.environ["PREFECT_API_URL"] = url
        try:
            yield url
        finally:
            os.environ.pop("PREFECT_API_URL", None)
            _drain()
    finally:
        _stop(proc)


def _drain() -> None:
    """Send what Prefect still queues for the server (logs, events) before it stops: at exit
    Prefect would retry a server that is gone ("Error logging to API") for a minute."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        with contextlib.suppress(Exception):
            worker.drain_all(timeout=_STOP_S)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (its clean stop: 0.2 s here; SIGINT took 5 s), then SIGKILL after :data:`_STOP_S`."""
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=_STOP_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
