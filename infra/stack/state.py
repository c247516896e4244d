"""The stack's state directory: data, logs, pid files, ports and generated credentials.

Everything the native stack writes lives under one folder (``$SEGFLOW_STACK_DIR``, default
``<repo>/.segflow/stack``, git- and dvc-ignored). Credentials are generated once, at the first
``up``, and kept in 0600 files; ports are chosen free at the first ``up`` and reused afterwards
while they stay free.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from infra.stack.procs import free_port, port_is_free

REPO = Path(__file__).resolve().parents[2]
PORT_NAMES = ("postgres", "s3", "mlflow", "prefect", "dask")


def default_state_dir() -> Path:
    """``$SEGFLOW_STACK_DIR`` or ``<repo>/.segflow/stack``, absolute."""
    return Path(os.environ.get("SEGFLOW_STACK_DIR") or REPO / ".segflow" / "stack").resolve()


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (created 0600, never wider)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


@dataclass(frozen=True)
class Secrets:
    """Credentials generated at the first ``up`` (never logged)."""

    pg_user: str
    pg_password: str
    mlflow_admin: str
    mlflow_password: str
    aws_key: str
    aws_secret: str
    flask_secret: str  # MLFLOW_FLASK_SERVER_SECRET_KEY: basic-auth's CSRF key, static across restarts


@dataclass(frozen=True)
class State:
    """Paths under the state directory."""

    root: Path

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def pids(self) -> Path:
        return self.root / "pids"

    @property
    def pg_data(self) -> Path:
        return self.root / "postgres" / "data"

    @property
    def env_file(self) -> Path:
        return self.root / "env"

    def log(self, service: str) -> Path:
        return self.logs / f"{service}.log"

    def pid(self, service: str) -> Path:
        return self.pids / f"{service}.json"

    def create(self) -> None:
        """Make the folder: 0700, or 0711 under root (postgres, run as its own user, must
        traverse it to reach its data dir; the files in it stay 0600)."""
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o711 if os.geteuid() == 0 else 0o700)
        for sub in (self.logs, self.pids):
            sub.mkdir(exist_ok=True)

    def secrets(self) -> Secrets:
        """The stored credentials; generated (and stored 0600) the first time."""
        path = self.root / "secrets.json"
        if path.is_file():
            return Secrets(**json.loads(path.read_text()))
        made = Secrets(
            pg_user="segflow",
            pg_password=secrets.token_urlsafe(24),
            mlflow_admin="segflow-admin",
            mlflow_password=secrets.token_urlsafe(24),
            aws_key="SEGFLOW" + secrets.token_hex(8).upper(),
            aws_secret=secrets.token_urlsafe(30),
            flask_secret=secrets.token_hex(32),
        )
        write_private(path, json.dumps(made.__dict__, indent=2))
        return made

    def ports(self, keep: set[str]) -> dict[str, int]:
        """Stored ports; those in ``keep`` (their service runs) stay, any other that is missing
        or now taken by something else gets a new free port."""
        path = self.root / "ports.json"
        stored: dict[str, int] = json.loads(path.read_text()) if path.is_file() else {}
        out: dict[str, int] = {}
        for name in PORT_NAMES:
            port = stored.get(name)
            if port is None or not (name in keep or port_is_free(port)):
                port = free_port()
                while port in out.values():
                    port = free_port()
            out[name] = port
        if out != stored:
            path.write_text(json.dumps(out, indent=2))
        return out

    def stored_ports(self) -> dict[str, int]:
        """The ports of the last ``up`` (empty before the first)."""
        path = self.root / "ports.json"
        return json.loads(path.read_text()) if path.is_file() else {}


def check_private(path: Path) -> None:
    """Raise when a credentials file is readable by others (someone widened it)."""
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PermissionError(f"{path} is readable by others (mode {oct(mode & 0o777)}); chmod 600 it")


def export_lines(env: Mapping[str, str]) -> str:
    """``export K='v'`` lines (values single-quoted for the shell)."""
    return "".join(f"export {k}='{v}'\n" for k, v in env.items())
