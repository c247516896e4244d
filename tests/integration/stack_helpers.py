"""Bringing the native team stack (infra/services.sh) up and down for a test module.

Every client gets the stack's env explicitly (``os.environ`` is never changed), so the session
Prefect server of the other integration tests is not disturbed.
"""

from __future__ import annotations

import glob
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SERVICES_SH = REPO / "infra" / "services.sh"
# Settings of the caller that would point a client elsewhere (a developer's own stack, CI's env).
FOREIGN = ("PREFECT_API_URL", "MLFLOW_", "AWS_", "SEGFLOW_")

# CI has the PostgreSQL binaries (and must run the stack tests); a developer's machine may not.
needs_postgres = pytest.mark.skipif(
    not os.environ.get("CI")
    and not (glob.glob("/usr/lib/postgresql/*/bin/initdb") or shutil.which("initdb")),
    reason="no PostgreSQL binaries (initdb); install postgresql-15",
)


@dataclass
class Stack:
    state: Path
    env: dict[str, str]  # the caller's env + the stack's client env (what `source env` gives)
    exports: str  # `up`'s stdout
    pids: set[int]
    ports: set[int]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)}
    env.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", DVC_NO_ANALYTICS="1", **extra)
    return env


def parse_exports(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line.startswith("export "):
            key, _, value = line.removeprefix("export ").partition("=")
            out[key] = shlex.split(value)[0]
    return out


def services_sh(
    state: Path, *args: str, timeout: float = 300, **extra: str
) -> subprocess.CompletedProcess[str]:
    """``infra/services.sh ARGS`` on the state folder; ``extra``: more env (e.g. SEGFLOW_PROJECT_DIR)."""
    env = clean_env(SEGFLOW_STACK_DIR=str(state), SEGFLOW_PYTHON=sys.executable, **extra)
    return subprocess.run(
        [str(SERVICES_SH), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def stack_processes(state: Path) -> list[psutil.Process]:
    out = []
    for pid_file in (state / "pids").glob("*.json"):
        try:
            leader = psutil.Process(json.loads(pid_file.read_text())["pid"])
            out += [leader, *leader.children(recursive=True)]
        except psutil.Error:
            pass
    return out


def listening(pids: set[int]) -> list[tuple[str, int]]:
    return [
        (c.laddr.ip, c.laddr.port)
        for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.pid in pids
    ]


@contextmanager
def native_stack(**extra: str) -> Iterator[Stack]:
    """``up`` in a fresh state folder (``extra``: env for ``up``); ``down`` and removal after."""
    # Not pytest's tmp_path: its parents are 0700, and postgres (which refuses root, so runs as
    # its own user in CI) must traverse the state folder's parents.
    root = Path(tempfile.mkdtemp(prefix="segflow-stack-test-", dir="/tmp"))
    os.chmod(root, 0o711)
    state = root / "state"
    try:
        t0 = time.monotonic()
        done = services_sh(state, "up", **extra)
        assert done.returncode == 0, f"services.sh up failed:\n{done.stderr[-4000:]}"
        print(f"stack up in {time.monotonic() - t0:.1f} s")
        procs = stack_processes(state)
        pids = {p.pid for p in procs}
        env = clean_env(**parse_exports(done.stdout))
        yield Stack(state, env, done.stdout, pids, {port for _, port in listening(pids)})
    finally:
        services_sh(state, "down", timeout=120)
        shutil.rmtree(root, ignore_errors=True)


def assert_down_leaves_nothing(stack: Stack) -> None:
    """``down``: no process of the stack alive, none of its ports listening; idempotent."""
    done = services_sh(stack.state, "down", timeout=120)
    assert done.returncode == 0, done.stderr
    alive = [p for p in map(psutil.Process, filter(psutil.pid_exists, stack.pids)) if p.status() != "zombie"]
    assert alive == [], [p.cmdline()[:3] for p in alive]
    still = {
        c.laddr.port for c in psutil.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN
    } & stack.ports
    assert still == set()
    assert services_sh(stack.state, "down", timeout=60).returncode == 0  # idempotent
    assert services_sh(stack.state, "status", timeout=60).returncode == 1


def http_json(url: str, data: dict[str, object] | None = None) -> object:
    body = None if data is None else json.dumps(data).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 120) -> str:
    done = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{argv}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    return done.stdout


def s3_client(env: dict[str, str]) -> Any:
    """A boto3 client of the stack's S3 server, with the stack's credentials."""
    import boto3

    return boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])  # fmt: skip


def s3_keys(env: dict[str, str], bucket: str) -> list[str]:
    """Every object key in a bucket of the stack's S3 server."""
    keys: list[str] = []
    for page in s3_client(env).get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys
