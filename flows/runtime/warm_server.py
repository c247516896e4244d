"""The warm stage server: imports the stages once, then forks one child per stage command.

The client side (the stage command, and the pipeline that starts this server) is
:mod:`flows.runtime.warm`, which describes the protocol; :mod:`flows.runtime.warm_resident` runs
this server resident for plain ``dvc repro``. Each child becomes the stage command (its argv,
working directory, environment and standard streams) and runs the stage module as ``__main__``;
a command that differs in what was read at import (:mod:`flows.runtime.warm_env`) is refused and
runs cold, and the reason is given once per server.
"""

from __future__ import annotations

import array
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import Any, NoReturn

from flows.runtime.warm import STAGE_MODULES, START_ENV, recv_line, send
from flows.runtime.warm_env import difference, interpreter

_MAX_MESSAGE = 1 << 20
_REQUEST_TIMEOUT_S = 10.0  # a command that connects sends its request at once


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
        request = recv_line(conn, bytearray(data))
        problem = _refusal(request, list(fds), own, modules)
        if problem:
            send(conn, {"refused": problem, "told": problem in own.told})
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
            send(conn, {"pid": pid})
        _, status = os.waitpid(pid, 0)
        children.ended()
        with contextlib.suppress(OSError):
            send(conn, {"exit": os.waitstatus_to_exitcode(status)})


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
    """``python -m flows.runtime.warm_server SOCKET``: the warm server (the pipeline starts and stops it)."""
    if len(sys.argv) != 2:
        sys.exit("usage: python -m flows.runtime.warm_server SOCKET")
    exit_when_served(lambda: serve(sys.argv[1]))


if __name__ == "__main__":
    main()
