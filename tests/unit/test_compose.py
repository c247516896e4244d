"""infra/production/compose.yaml is coherent (Docker is not available here to run it): every
service has a health check, published ports are loopback-only, every ${VAR} it needs is in
.env.example (whose real copy is git-ignored), volumes are declared, databases are created."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
PROD = REPO / "infra" / "production"
COMPOSE: dict[str, Any] = yaml.safe_load((PROD / "compose.yaml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]


def test_every_service_has_a_healthcheck() -> None:
    assert [name for name, svc in SERVICES.items() if "test" not in svc.get("healthcheck", {})] == []


def test_published_ports_bind_loopback_only() -> None:
    ports = [p for svc in SERVICES.values() for p in svc.get("ports", [])]
    assert ports, "nothing published"
    assert [p for p in ports if not str(p).startswith("127.0.0.1:")] == []


def test_every_required_variable_is_in_env_example_and_env_is_ignored() -> None:
    text = (PROD / "compose.yaml").read_text()
    needed = {m[1] for m in re.finditer(r"(?<!\$)\$\{([A-Z0-9_]+)(:-)?", text) if not m[2]}
    example = {
        line.split("=", 1)[0] for line in (PROD / ".env.example").read_text().splitlines() if "=" in line
    }
    assert needed - example == set()
    ignored = subprocess.run(["git", "check-ignore", "-q", str(PROD / ".env")], cwd=REPO, check=False)
    assert ignored.returncode == 0, "infra/production/.env must be git-ignored"


def test_named_volumes_are_declared() -> None:
    used = {
        v.split(":", 1)[0]
        for svc in SERVICES.values()
        for v in svc.get("volumes", [])
        if not v.startswith((".", "/"))
    }
    assert used <= set(COMPOSE["volumes"])


def test_databases_the_servers_use_are_created_by_the_init_script() -> None:
    created = set(
        re.findall(r"CREATE DATABASE (\w+);", (PROD / "postgres-init" / "10-databases.sql").read_text())
    )
    used = set(re.findall(r"@postgres:5432/(\w+)", (PROD / "compose.yaml").read_text()))
    assert used == created == {"mlflow", "mlflow_auth", "prefect"}


def test_gpu_workers_declare_gpu_resources_on_distinct_devices() -> None:
    workers = {n: s for n, s in SERVICES.items() if n.startswith("dask-worker")}
    assert len(workers) >= 2
    devices = [s["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"] for s in workers.values()]
    assert all("GPU=1" in s["command"] for s in workers.values())
    assert len({tuple(d) for d in devices}) == len(workers)
