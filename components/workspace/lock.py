"""One pipeline run per workspace at a time: an OS file lock on ``<root>/.segflow/run.lock``.

``fcntl.flock`` is released by the kernel when the holding process exits or is killed, so a run
that dies never leaves a stale lock behind. While held, the file says who holds it (pid, host,
start time, command), so the run that is refused can name it.

The lock is re-entrant within one process (a nested ``workspace_lock`` of the same root in the
holding process, e.g. the CLI's check and then the Prefect flow it starts, passes at once); it
excludes other processes.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from components.core.errors import UserError

LOCK_FILE = Path(".segflow") / "run.lock"

_held: dict[Path, int] = {}  # lock path -> nesting depth in this process
_guard = threading.Lock()


class WorkspaceBusyError(UserError):
    """Another process is running the pipeline in this workspace."""


def lock_path(root: Path) -> Path:
    """Where the lock of workspace ``root`` lives."""
    return (Path(root) / LOCK_FILE).resolve()


def read_holder(path: Path) -> dict[str, Any]:
    """What the lock file says about its holder ({} when empty or unreadable)."""
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _busy_message(path: Path, holder: dict[str, Any]) -> str:
    who = (
        f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started at "
        f"{holder.get('started_at', '?')}, command: {holder.get('command', '?')}"
        if holder
        else "a process that has not written its details yet"
    )
    return (
        f"another segflow run holds this workspace ({who}); wait for it to finish or stop it "
        f"(kill <pid>), then run again; lock file {path}"
    )


@contextmanager
def workspace_lock(root: Path, command: str | None = None) -> Iterator[Path]:
    """Hold the workspace lock of ``root`` for the block; yields the lock file's path.

    Args:
        root: Workspace folder (where params.yaml lives); the lock is ``root/.segflow/run.lock``.
        command: What to record as the holder's command (default: this process's argv).

    Raises:
        WorkspaceBusyError: Another process holds the lock (raised at once, never waits).
    """
    path = lock_path(root)
    with _guard:
        if path in _held:
            _held[path] += 1
            reentrant = True
        else:
            reentrant = False
    if reentrant:
        try:
            yield path
        finally:
            with _guard:
                _held[path] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # no O_TRUNC: the holder's details stay
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WorkspaceBusyError(_busy_message(path, read_holder(path))) from None
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": command if command is not None else " ".join([sys.executable, *sys.argv]),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        with _guard:
            _held[path] = 1
        try:
            yield path
        finally:
            with _guard:
                del _held[path]
            os.ftruncate(fd, 0)  # released: nobody holds it (the kernel drops the lock on close)
    finally:
        os.close(fd)
