"""Plain ``dvc repro`` served warm: a warm stage server that outlives the stage that started it.

``segflow run`` starts a warm server for its own ``dvc repro`` (:func:`flows.runtime.warm.warm_stages`).
A user who types ``dvc repro`` has no such parent, so the stage commands share a *resident*
server instead: the first stage command that finds none starts one (detached, in its own
session, its output in a log file), and every later stage command of the same code and
environment is forked from it. It ends after ``SEGFLOW_WARM_IDLE_S`` seconds (default
:data:`DEFAULT_IDLE_S`) without a stage; ``0`` turns resident servers off (stages then import
cold, as with ``SEGFLOW_WARM_STAGES=0``).

A server serves exactly one *key*: a hash of the interpreter, ``sys.path``, the settings read at
import (:func:`flows.runtime.warm_env.comparable_env`: not the prompt, terminal or shell), the
size and modification time of every source file of ``flows`` and ``components``, and the
modification times of the site-packages folders (an install or removal changes them). A stage
command computes the key from what is on disk now and asks only the server of that key, so a
changed module or a changed environment never runs in an interpreter imported before the change;
the server, once its imports are done, computes the key again and ends at once if a file changed
while it imported. Servers of keys nobody asks for any more end by their idle timeout.

The socket, lock and log files live in a folder only this user can open
(``$XDG_RUNTIME_DIR/segflow-warm-<uid>``, else the temp folder's); where that folder cannot be
made private the stages run cold. Light stages (:data:`LIGHT_STAGES`: no torch) never wait for a
server that is still importing; the others wait for it (up to :data:`_WAIT_FOR_START_S`), since
their own imports would take as long and compete with it for the cores.

``segflow warm`` (or ``python -m flows.runtime.warm_resident status``) lists this user's resident servers;
``segflow warm stop`` stops them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import signal
import stat
import sys
import time
from collections.abc import Callable, Mapping

from flows.runtime.warm import STAGE_MODULES, enabled, run_warm
from flows.runtime.warm_env import comparable_env

IDLE_ENV = "SEGFLOW_WARM_IDLE_S"
DEFAULT_IDLE_S = 300.0
LIGHT_STAGES = ("flows.validate", "flows.plan", "flows.preprocess")  # faster cold than a new server
PACKAGES = ("flows", "components")  # the project's own code: a change means a new key
_WAIT_FOR_START_S = 60.0
_MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes, the last a NUL
_SOCKET_NAME = 40  # "/<key>.sock.<pid>" (the server binds that name first)


def idle_seconds(env: Mapping[str, str]) -> float:
    """``SEGFLOW_WARM_IDLE_S`` (0: no resident server; unset or unreadable: the default)."""
    if not enabled(env):
        return 0.0
    try:
        return max(0.0, float(env.get(IDLE_ENV, DEFAULT_IDLE_S)))
    except ValueError:
        return DEFAULT_IDLE_S


def private_dir(env: Mapping[str, str]) -> str | None:
    """This user's folder for resident servers (made 0700), or None when it is not private."""
    base = env.get("XDG_RUNTIME_DIR") or env.get("TMPDIR") or "/tmp"
    path = os.path.join(base, f"segflow-warm-{os.getuid()}")
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
        info = os.lstat(path)
    except OSError:
        return None
    private = stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o077
    return path if private and len(path.encode()) + _SOCKET_NAME <= _MAX_SOCKET_PATH else None


def code_key(env: Mapping[str, str], packages: tuple[str, ...] = PACKAGES) -> str:
    """The key of the code and environment a stage started now would import (see the module doc)."""
    digest = hashlib.sha256()
    digest.update(repr((sys.executable, sys.version, sys.path)).encode())
    digest.update(repr(sorted(comparable_env(dict(env)).items())).encode())
    site = sys.modules.get("site")
    site_dirs = [*site.getsitepackages(), site.getusersitepackages()] if site is not None else []
    for folder in site_dirs:
        with contextlib.suppress(OSError):
            digest.update(f"{folder}:{os.stat(folder).st_mtime_ns}\n".encode())
    for folder in _package_dirs(packages):
        for root, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(f for f in files if f.endswith(".py")):
                path = os.path.join(root, name)
                with contextlib.suppress(OSError):
                    info = os.stat(path)
                    digest.update(f"{path}:{info.st_size}:{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def _package_dirs(packages: tuple[str, ...]) -> list[str]:
    """Where ``packages`` are imported from (found, not imported)."""
    import importlib.util

    dirs = []
    for name in packages:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            dirs.extend(spec.submodule_search_locations)
    return dirs


def _is_locked(lock_path: str) -> bool:
    """Whether a resident server holds ``lock_path`` (it does for as long as it lives)."""
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def run_resident(module: str, args: list[str]) -> None:
    """Serve this stage command from the resident server of its key; exits when served.

    Starts the server when there is none. Returns (the stage then imports cold) when resident
    servers are off, when this is a light stage and no server is ready yet, or when the server
    refused, ended or did not come up in time.
    """
    env = dict(os.environ)
    idle = idle_seconds(env)
    folder = private_dir(env) if idle else None
    if folder is None:
        return
    key = code_key(env)
    sock, lock = (os.path.join(folder, f"{key}.{ext}") for ext in ("sock", "lock"))
    started: Callable[[], bool] | None = None  # "is the server I started still running?"
    deadline = time.monotonic() + _WAIT_FOR_START_S
    while True:
        if os.path.exists(sock) and run_warm(module, args, sock):
            return  # connected, then refused or broken: cold (run_warm said why)
        alive = _is_locked(lock) or (started is not None and started())
        if not alive:
            if started is not None:
                return  # it started and ended (its log says why)
            started = _start(key, folder, env, idle)
        if module in LIGHT_STAGES or time.monotonic() > deadline:
            return
        time.sleep(0.05)


def _start(key: str, folder: str, env: dict[str, str], idle: float) -> Callable[[], bool]:
    """Start the resident server of ``key`` (detached); returns whether it is still running."""
    import subprocess

    with open(os.path.join(folder, f"{key}.log"), "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flows.runtime.warm_resident", "serve", key, str(idle)],
            env={k: v for k, v in env.items() if not k.startswith("DVC_")},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # no terminal's Ctrl-C or hang-up, and DVC does not wait for it
        )
    return lambda: proc.poll() is None


def serve_resident(key: str, idle: float) -> None:
    """The resident server of ``key``: one per key (its lock), ends when idle for ``idle`` s."""
    from flows.runtime.warm_server import serve

    env = dict(os.environ)
    folder = private_dir(env)
    if folder is None:
        sys.exit("segflow warm: no private folder for the resident server")
    fd = os.open(os.path.join(folder, f"{key}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return  # another one serves this key
    os.register_at_fork(after_in_child=lambda: os.close(fd))  # a stage outliving us must not hold it
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()} {os.getcwd()}\n".encode())
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"{stamp} resident warm server {key} (pid {os.getpid()}) importing", flush=True)

    def unchanged() -> bool:
        same = code_key(env) == key
        if not same:
            print("a source file, an install or the environment changed while importing: ending", flush=True)
        return same

    serve(os.path.join(folder, f"{key}.sock"), STAGE_MODULES, idle_s=idle, imported=unchanged)
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} idle for {idle:g} s: ending", flush=True)


def servers(env: Mapping[str, str]) -> list[tuple[int, str]]:
    """This user's running resident servers: (pid, the folder they serve)."""
    folder = private_dir(env)
    if folder is None:
        return []
    found = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name.endswith(".lock") and _is_locked(path):
            with open(path) as fh, contextlib.suppress(ValueError):
                pid, _, cwd = fh.read().strip().partition(" ")
                found.append((int(pid), cwd))
    return found


def main(argv: list[str]) -> None:
    """``python -m flows.runtime.warm_resident status|stop`` (and ``serve KEY IDLE``, what stages start)."""
    if len(argv) == 3 and argv[0] == "serve":
        from flows.runtime.warm_server import exit_when_served

        exit_when_served(lambda: serve_resident(argv[1], float(argv[2])))
    elif argv in (["status"], ["stop"]):
        running = servers(os.environ)
        for pid, cwd in running:
            if argv == ["stop"]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            print(f"{'stopped' if argv == ['stop'] else 'running'}: pid {pid}, serving {cwd}")
        if not running:
            print("no resident warm stage server is running")
    else:
        sys.exit("usage: python -m flows.runtime.warm_resident status | stop")


if __name__ == "__main__":
    main(sys.argv[1:])
