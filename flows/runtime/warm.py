"""Warm stage processes: one process imports the stages' libraries once, and forks each stage.

A stage process (``python -m flows.train``, DVC's command) spends most of its start-up importing
torch, segmentation-models-pytorch, Prefect and MLflow (``bench/stage_overhead.py``). During
``segflow run`` (and a deployment run) the pipeline starts :func:`serve` beside ``dvc repro``:
it imports every stage module once and listens on a Unix socket named by ``SEGFLOW_WARM_SOCKET``.
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
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any, NoReturn

from flows.runtime.warm_env import difference, interpreter

SOCKET_ENV = "SEGFLOW_WARM_SOCKET"
ENABLE_ENV = "SEGFLOW_WARM_STAGES"  # 0/false/off: every stage imports cold
START_ENV = "SEGFLOW_PROCESS_START"  # the command's start (wall clock): the stage's real start
STAGES = ("validate", "plan", "preprocess", "train", "evaluate", "ensemble")
_MAX_MESSAGE = 1 << 20
_REQUEST_TIMEOUT_S = 10.0  # a command that connects sends its request at once


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


def _send(conn: socket.socket, payload: dict[str, Any], fds: list[int] | None = None) -> None:
    data = json.dumps(payload).encode() + b"\n"
    if fds:
        conn.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        conn.sendall(data)


def _recv_line(conn: socket.socket, buffer: bytearray) -> dict[str, Any] | None:
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
        _send(conn, request, [0, 1, 2])
        reply = _recv_line(conn, buffer)
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
        done = _recv_line(conn, buffer)
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
        [sys.executable, "-m", "flows.runtime.warm", sock],
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


def serve(
    socket_path: str,
    modules: tuple[str, ...] = STAGE_MODULES,
    idle_s: float | None = None,
    imported: Callable[[], bool] | None = None,
) -> None:
    """Import ``modules`` (and what they import in their functions), then fork one child per
    request to run one of them.

    Until SIGTERM, or (``idle_s``) until no stage has run for that many seconds. ``imported``, when
    given, is asked once the imports are done; False ends the server before it listens (the
    resident server's check that what it imported is still what is on disk).
    """
    from flows.runtime.preload import preload

    before = dict(os.environ)
    preload(modules)  # the stage modules and the imports they defer to their functions
    if imported is not None and not imported():
        return
    # What the imports set in the environment (a cold stage's imports set it too): each child gets it.
    set_by_imports = {k: v for k, v in os.environ.items() if before.get(k) != v}
    own = _Own(before, interpreter())
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    tmp = f"{socket_path}.{os.getpid()}"
    server.bind(tmp)
    server.listen(8)
    os.replace(tmp, socket_path)  # clients see the socket only once it accepts
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    children = _Children()
    try:
        while children.wait_for_request(server, idle_s):
            conn, _ = server.accept()
            _serve_one(conn, server, (own, set_by_imports, modules), children)
    finally:
        server.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(socket_path)


class _Own:
    """What a server was imported with, and the refusals it has explained once already."""

    def __init__(self, env: dict[str, str], interp: dict[str, Any]) -> None:
        self.env = env
        self.interpreter = interp
        self.told: set[str] = set()


class _Children:
    """The stages a server is running, and since when none has been (for an idle timeout)."""

    def __init__(self) -> None:
        import threading

        self._lock = threading.Lock()
        self.running = 0
        self.idle_since = time.monotonic()

    def started(self) -> None:
        with self._lock:
            self.running += 1

    def ended(self) -> None:
        with self._lock:
            self.running -= 1
            self.idle_since = time.monotonic()

    def wait_for_request(self, server: socket.socket, idle_s: float | None) -> bool:
        """Block until a command connects (True), or until idle for ``idle_s`` (False)."""
        import select

        poller = select.poll()
        poller.register(server, select.POLLIN)
        while True:
            if poller.poll(None if idle_s is None else 1000):
                return True
            with self._lock:
                if idle_s is not None and not self.running and time.monotonic() - self.idle_since >= idle_s:
                    return False


def _serve_one(
    conn: socket.socket,
    server: socket.socket,
    served: tuple[_Own, dict[str, str], tuple[str, ...]],
    children: _Children,
) -> None:
    """One request: refuse it, or fork the child that runs it; a thread reports the child's exit.

    The request is read here with a timeout and the fork happens in this (the main) thread; the
    waiting is left to a daemon thread, so a stage that runs long never holds up the next request.
    """
    import threading

    own, set_by_imports, modules = served
    fds = array.array("i")
    handed_over = False
    try:
        conn.settimeout(_REQUEST_TIMEOUT_S)
        data, ancdata, _flags, _addr = conn.recvmsg(_MAX_MESSAGE, socket.CMSG_SPACE(3 * 4))
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
        request = _recv_line(conn, bytearray(data))
        problem = _refusal(request, list(fds), own, modules)
        if problem:
            _send(conn, {"refused": problem, "told": problem in own.told})
            own.told.add(problem)
            return
        assert request is not None
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        pid = os.fork()
        if pid == 0:
            server.close()
            _child(conn, request, list(fds), set_by_imports)  # never returns
        children.started()  # before its exit can be reported: the reporting thread starts below
        conn.settimeout(None)
        report = threading.Thread(
            target=_report_exit, args=(conn, pid, children), daemon=True, name=f"warm-{pid}"
        )
        report.start()
        handed_over = True
    except (OSError, ValueError):
        pass  # a broken or timed-out request: the command runs cold (or is gone)
    finally:
        for fd in fds:
            os.close(fd)
        if not handed_over:
            conn.close()


def _report_exit(conn: socket.socket, pid: int, children: _Children) -> None:
    """Tell the command its child's pid, then its exit status (the command mirrors it)."""
    with conn:
        with contextlib.suppress(OSError):  # else the command went away; its child ends itself
            _send(conn, {"pid": pid})
        _, status = os.waitpid(pid, 0)
        children.ended()
        with contextlib.suppress(OSError):
            _send(conn, {"exit": os.waitstatus_to_exitcode(status)})


def _refusal(
    request: dict[str, Any] | None, fds: list[int], own: _Own, modules: tuple[str, ...]
) -> str | None:
    """Why this request must run cold (None: serve it)."""
    if request is None or len(fds) != 3:
        return "incomplete request"
    if request.get("module") not in modules:
        return f"not a stage: {request.get('module')}"
    return difference(
        dict(request.get("env", {})), dict(request.get("interpreter", {})), own.env, own.interpreter
    )


def _child(
    conn: socket.socket, request: dict[str, Any], fds: list[int], set_by_imports: dict[str, str]
) -> None:
    """In the forked child: become the stage command (streams, cwd, env, argv), run the stage."""
    import runpy
    import threading

    code = 1
    try:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        conn.close()
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ.update(set_by_imports)
        os.environ[START_ENV] = str(request["started"])
        client = os.pidfd_open(int(request["client_pid"]))
        threading.Thread(target=_die_with, args=(client,), daemon=True, name="warm-client").start()
        sys.argv = ["-m", *request["args"]]
        sys.modules.pop(request["module"], None)  # runs as __main__ only, as under `python -m`
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


def _die_with(pidfd: int) -> None:
    """Block until the stage command exits, then kill this child (as its own death would)."""
    import select

    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    poller.poll()
    os.kill(os.getpid(), signal.SIGKILL)


def exit_when_served(serving: Callable[[], None]) -> NoReturn:
    """Run ``serving`` (a server's life), then end the process at once: SIGTERM ends a server
    through ``sys.exit``, and the interpreter's teardown of torch, MLflow and Prefect would take
    2-4 s more, within the 10 s a stopped pipeline has (its stages are separate processes)."""
    with contextlib.suppress(SystemExit):
        serving()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)


def main() -> None:
    """``python -m flows.runtime.warm SOCKET``: the warm server (the pipeline starts and stops it)."""
    if len(sys.argv) != 2:
        sys.exit("usage: python -m flows.runtime.warm SOCKET")
    exit_when_served(lambda: serve(sys.argv[1]))


if __name__ == "__main__":
    main()
