"""Detached service processes: start in their own process group, find again by pid file, stop.

Each service runs in a new session (its own process group), so ``down`` can signal the service
and every child it forked (uvicorn workers, postgres backends, dask nannies) at once. A pid file
stores the pid and the process start time, so a recycled pid is never mistaken for the service.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil


def say(msg: str) -> None:
    """Progress on stderr, so ``eval "$(infra/services.sh up)"`` reads only the exports."""
    print(f"[segflow stack] {msg}", file=sys.stderr, flush=True)


class ServiceError(RuntimeError):
    """A service did not start or answer; the message names it and its log file."""


@dataclass(frozen=True)
class Proc:
    """A started service process (the leader of its process group)."""

    name: str
    pid: int
    create_time: float


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether ``port`` can be bound on 127.0.0.1 (nothing listens there)."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def port_answers(port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def http_status(url: str, timeout: float = 2.0, headers: Mapping[str, str] | None = None) -> int | None:
    """The HTTP status of a GET on ``url`` (4xx/5xx included), None when nothing answers."""
    req = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError):
        return None


def as_user(user: str | None) -> dict[str, Any]:
    """``subprocess`` arguments that run a child as ``user`` with *its* groups: ``user=`` alone
    keeps root's group 0, so folders of group root (0700 under a umask of 077) stay closed to it
    while their "other" bits say it may enter."""
    if user is None:
        return {}
    gid = pwd.getpwnam(user).pw_gid
    return {"user": user, "group": gid, "extra_groups": os.getgrouplist(user, gid)}


def start(
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    log: Path,
    pid_file: Path,
    cwd: Path | None = None,
    user: str | None = None,
) -> Proc:
    """Start ``argv`` detached (new session, stdin closed, output appended to ``log``)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **as_user(user),
        )
    started = Proc(name, proc.pid, psutil.Process(proc.pid).create_time())
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(json.dumps({"pid": started.pid, "create_time": started.create_time}))
    return started


def running(pid_file: Path) -> psutil.Process | None:
    """The live process recorded in ``pid_file``, or None (no file, exited, or pid reused)."""
    try:
        rec = json.loads(pid_file.read_text())
        proc = psutil.Process(int(rec["pid"]))
        if abs(proc.create_time() - float(rec["create_time"])) > 1 or proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except (OSError, ValueError, KeyError, psutil.Error):
        return None


def group_members(leader: psutil.Process) -> list[psutil.Process]:
    """The leader and every descendant (those that left the group included)."""
    try:
        return [leader, *leader.children(recursive=True)]
    except psutil.Error:
        return [leader]


def stop(pid_file: Path, *, group: bool = True, grace: float = 15.0) -> bool:
    """Stop the recorded service and all its descendants; True when something was running.

    SIGINT first, as Ctrl-C in a terminal would (Prefect ignores SIGTERM): to the whole process
    group, or with ``group=False`` to the leader only (postgres: a fast shutdown that the
    postmaster runs for its backends). SIGTERM to every member still alive after ``grace``,
    SIGKILL 5 s later.
    """
    leader = running(pid_file)
    if leader is None:
        pid_file.unlink(missing_ok=True)
        return False
    members = group_members(leader)

    def send(sig: int, procs: list[psutil.Process]) -> None:
        for p in procs:
            with contextlib.suppress(psutil.Error):
                p.send_signal(sig)

    if group:
        with contextlib.suppress(OSError):
            os.killpg(leader.pid, signal.SIGINT)
    else:
        send(signal.SIGINT, [leader])
    alive = _wait_gone(members, grace)
    if alive:
        send(signal.SIGTERM, alive)
        alive = _wait_gone(alive, 5)
    send(signal.SIGKILL, alive)
    _wait_gone(alive, 5)
    pid_file.unlink(missing_ok=True)
    return True


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _wait_gone(members: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Poll (0.1 s) until every member exited or ``timeout``; the ones still alive."""
    deadline = time.monotonic() + timeout
    alive = [p for p in members if _alive(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [p for p in alive if _alive(p)]
    return alive


def wait_until(
    name: str,
    ready: Callable[[], bool],
    *,
    log: Path,
    pid_file: Path | None,
    timeout: float,
    what: str = "did not become healthy",
) -> None:
    """Poll ``ready`` until True; raise ``ServiceError`` naming the service and its log."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    while True:
        if ready():
            say(f"{name} answers ({time.monotonic() - t0:.1f} s wait)")
            return
        if pid_file is not None and running(pid_file) is None:
            raise ServiceError(f"{name} exited during start-up; see its log {log}\n{tail(log)}")
        if time.monotonic() > deadline:
            raise ServiceError(f"{name} {what} within {timeout:.0f} s; see its log {log}\n{tail(log)}")
        time.sleep(0.3)


def tail(log: Path, lines: int = 15) -> str:
    """The last lines of a log file (for error messages)."""
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log yet)"
