"""Whether PostgreSQL, run as its own user under root, can use the stack's state folder.

PostgreSQL refuses to run as root, so under root the stack runs it as ``postgres`` (or
``nobody``), which must enter every folder on the way to its data folder and own that folder.
Mode bits do not tell the whole story (ACLs, security modules, a host or FUSE mount that ignores
``chown``), so each check runs as that user; a state folder it cannot use is refused before
anything starts, naming the folder and the change that fixes it. segflow's own ``.segflow``
folder (0700 under a umask of 077) is made traversable.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

from infra.stack import procs
from infra.stack.state import State

ELSEWHERE = "SEGFLOW_STACK_DIR=/var/tmp/segflow-stack"  # a local folder every user may enter


def _as_user(user: str, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``sh -c script`` as ``user``: what that user can really do (modes, ACLs, mounts, LSMs)."""
    return subprocess.run(
        ["sh", "-c", script, "sh", *args], capture_output=True, text=True, check=False, **procs.as_user(user)
    )


def _open_segflow_folders(state: State) -> None:
    """Let other users traverse segflow's own ``.segflow`` folder above the state folder (a umask
    of 077 makes it 0700): ``o+x`` only, nothing in it becomes listable or readable."""
    for parent in state.root.parents:
        if parent.name == ".segflow" and parent.stat().st_uid == os.geteuid():
            mode = parent.stat().st_mode & 0o777
            if not mode & 0o001:
                os.chmod(parent, mode | 0o001)
                procs.say(f"postgres: {parent} made traversable (o+x) for the postgres user")


def prepare_for(user: str, state: State) -> None:
    """Give the postgres folder to ``user`` and check, as ``user``, that it can reach and own it;
    raise (before anything starts) saying exactly what to change when it cannot."""
    folder = state.pg_data.parent
    _open_segflow_folders(state)
    shutil.chown(folder, user)
    os.chmod(folder, 0o700)
    if folder.stat().st_uid != pwd.getpwnam(user).pw_uid:
        raise procs.ServiceError(
            f"postgres: runs as user {user!r} (PostgreSQL refuses root) and must own its data folder, "
            f"but {folder} stays owned by uid {folder.stat().st_uid} after chown (its filesystem "
            f"ignores ownership, e.g. a host or FUSE mount); put the state folder on a local "
            f"filesystem: {ELSEWHERE} infra/services.sh up"
        )
    real = folder.resolve()
    chain = [str(p) for p in reversed(real.parents)] + [str(real)]
    found = _as_user(user, 'for d; do test -x "$d" || { printf %s "$d"; exit 1; }; done', *chain)
    if found.returncode != 0:
        blocked = Path(found.stdout or real)
        mode = oct(blocked.stat().st_mode & 0o777) if blocked.exists() else "?"
        raise procs.ServiceError(
            f"postgres: runs as user {user!r} (PostgreSQL refuses root) but cannot enter {blocked} "
            f"(mode {mode}) on the way to {folder}; either chmod o+x {blocked}, or put the state "
            f"folder elsewhere: {ELSEWHERE} infra/services.sh up"
        )


def check_readable(user: str, path: Path) -> None:
    if _as_user(user, 'test -r "$1"', str(path)).returncode != 0:
        raise procs.ServiceError(
            f"postgres: user {user!r} cannot read {path} although it owns it (an ACL, a security "
            f"module or the mount refuses it); put the state folder elsewhere: {ELSEWHERE} "
            "infra/services.sh up"
        )
