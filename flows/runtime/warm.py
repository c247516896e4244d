"""Warm stage processes: one process imports the stages' libraries once, and forks each stage.

A stage process (``python -m flows.train``, DVC's command) spends most of its start-up importing
torch, segmentation-models-pytorch, Prefect and MLflow (``bench/stage_overhead.py``). During
``segflow run`` (and a deployment run) the pipeline starts the warm server beside ``dvc repro``
(:mod:`flows.runtime.warm_server`; this module is the client side and the protocol): it imports
every stage module once and listens on a Unix socket named by ``SEGFLOW_WARM_SOCKET``.
When a stage command starts with that variable set, ``flows/__init__.py`` (before the stage's own
imports) calls :func:`run_warm`, which hands its argv, working directory, environment and standard
streams to the server; the server forks, and the child runs the stage module as ``__main__`` in
the already-imported interpreter. The command DVC started stays in front: it forwards SIGINT and
SIGTERM to the child, and exits with the child's status (by the same signal where the child died
of one). When the command dies, even by SIGKILL, the child kills itself (it watches the command's
pidfd).

The stage module runs as ``__main__`` in the child, as ``python -m`` would run it: the server's
imported copy is taken out of ``sys.modules`` first (else runpy warns that the module was "found
in sys.modules ... this may result in unpredictable behaviour").

The stage runs cold (imports itself) whenever the warm path cannot serve it exactly: no server yet
(it is still importing), a refused or broken connection, or another interpreter, ``sys.path`` or
value of a setting the libraries read at import (:mod:`flows.runtime.warm_env`: the prompt, the
terminal and shell variables may differ). The server says why once, to the first command it
refuses for that reason, not to every stage. Only stdlib imports run in the command itself.
"""

from __future__ import annotations

import array
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator, Mapping
from typing import IO, Any

from flows.runtime.warm_env import interpreter

SOCKET_ENV = "SEGFLOW_WARM_SOCKET"
ENABLE_ENV = "SEGFLOW_WARM_STAGES"  # 0/false/off: every stage imports cold
START_ENV = "SEGFLOW_PROCESS_START"  # the command's start (wall clock): the stage's real start
STAGES = ("validate", "plan", "preprocess", "train", "evaluate", "ensemble")


STAGE_MODULES = tuple(f"flows.{s}" for s in STAGES)


def stage_command() -> tuple[str, list[str]] | None:
    """``(flows.<stage>, its arguments)`` when this process is ``python -m flows.<stage> ...``."""
    argv = getattr(sys, "orig_argv", [])
    try:
        at = argv.index("-m")
    except ValueError:
        return None
    module = argv[at + 1] if at + 1 < len(argv) else ""
    return (module, argv[at + 2 :]) if module in STAGE_MODULES else None


def send(conn: socket.socket, payload: dict[str, Any], fds: list[int] | None = None) -> None:
    data = json.dumps(payload).encode() + b"\n"
    if fds:
        conn.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        conn.sendall(data)


def recv_line(conn: socket.socket, buffer: bytearray) -> dict[str, Any] | None:
    """The next JSON line from ``conn`` (None when the peer closed first)."""
    while b"\n" not in buffer:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        buffer.extend(chunk)
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return dict(json.loads(line))


# ---------------------------------------------------------------- the stage command (client)


def run_warm(module: str, args: list[str], socket_path: str) -> bool:
    """Run ``python -m module *args`` in a process forked by the warm server; exits with its status.

    Returns (and the caller goes on cold) when the server is not there (False) or when it refused
    or broke off (True).
    """
    try:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(socket_path)
    except OSError:
        return False
    request = {
        "module": module,
        "args": list(args),
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "interpreter": interpreter(),
        "client_pid": os.getpid(),
        "started": _own_start(),
    }
    buffer = bytearray()
    try:
        send(conn, request, [0, 1, 2])
        reply = recv_line(conn, buffer)
    except OSError:
        reply = None
    if not reply or "pid" not in reply:
        conn.close()
        if reply and reply.get("refused") and not reply.get("told"):
            print(
                f"warm stage server: {reply['refused']}; this stage, and any other with the same "
                "difference, imports cold",
                file=sys.stderr,
            )
        return True
    child = int(reply["pid"])

    def forward(signum: int, _frame: Any) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, forward)
    try:
        done = recv_line(conn, buffer)
    except OSError:
        done = None
    code = int(done["exit"]) if done else 1
    if code < 0:  # died of a signal: so does the command
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    os._exit(code)


def _own_start() -> float:
    """This process's start time (wall clock), from /proc (no psutil import in the command)."""
    try:
        with open("/proc/self/stat") as fh:
            ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as fh:
            uptime = float(fh.read().split()[0])
        return time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.time()


# ---------------------------------------------------------------- the warm server


def enabled(env: Mapping[str, str]) -> bool:
    """Whether the pipeline serves its stages warm (``SEGFLOW_WARM_STAGES``, on by default)."""
    return env.get(ENABLE_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


@contextlib.contextmanager
def warm_stages(env: dict[str, str], log: IO[str], cwd: str | None = None) -> Iterator[dict[str, str]]:
    """Run the warm server for the block (when :func:`enabled`); yields ``env`` for the stages.

    The server starts importing at once and serves the stages that start once it is ready (the
    first, light ones may run cold meanwhile); it is stopped after the block, and gets SIGTERM
    from the kernel if this process dies first. It runs in a session of its own, as ``dvc repro``
    does (:mod:`flows.runtime.supervise`): a stage it forked gets a stop only through its command.
    It imports the stages from ``cwd`` (default: this process's), the folder DVC runs them in; its
    output goes to ``log``.
    """
    if not enabled(env):
        yield env
        return
    import shutil
    import subprocess
    import tempfile

    from flows.runtime.parent_death import stop_with_parent

    folder = tempfile.mkdtemp(prefix="segflow-warm-")  # a short path: Unix socket names are short
    sock = os.path.join(folder, "stages.sock")
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.runtime.warm_server", sock],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a terminal's Ctrl-C reaches the pipeline, which stops the stages
        preexec_fn=stop_with_parent,
    )
    try:
        yield {**env, SOCKET_ENV: sock}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(folder, ignore_errors=True)
