"""Resident warm servers (flows/runtime/warm_resident.py) with real stage commands: a plain ``python -m
flows.train`` (what ``dvc repro`` runs) starts one and is served by it; an edited module gets a new
server (its own key) instead of running in the old interpreter; an idle server ends by itself;
``segflow warm stop`` ends the rest."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.runtime.warm_resident import servers
from tests.integration.conftest import BIN, prepared_project, project_env, run, tiny_training

pytestmark = pytest.mark.slow

TINY = tiny_training(1, "segflow-resident")
TRAIN = [str(BIN / "python"), "-m", "flows.train"]
GONE_WITHIN_S = 90  # generous: a liveness bound, not a timing


@pytest.fixture
def runtime_dir() -> Iterator[Path]:
    """A short private folder for the servers' sockets (pytest's tmp paths are too long)."""
    with tempfile.TemporaryDirectory(dir="/tmp", prefix="sfw") as folder:
        yield Path(folder)
        for pid, _ in servers({"XDG_RUNTIME_DIR": folder}):  # on failure: leave nothing running
            os.kill(pid, 15)


def _train_served_warm(root: Path, env: dict[str, str], timing: Path) -> bool:
    """Run the train stage command; whether its flow ran in a child of a warm server."""
    run(TRAIN, root, {**env, "SEGFLOW_STAGE_TIMING": str(timing)})
    rows = [json.loads(line) for line in timing.read_text().splitlines()]
    assert {r["stage"] for r in rows} == {"train"}
    timing.unlink()
    return all(r["warm"] for r in rows)


def _wait_until_gone(pids: set[int], env: dict[str, str]) -> None:
    deadline = time.monotonic() + GONE_WITHIN_S
    while pids & {pid for pid, _ in servers(env)}:
        assert time.monotonic() < deadline, f"resident servers {pids} still running"
        time.sleep(0.2)
    for pid in pids:  # the processes, not only their locks, are gone
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_plain_stage_commands_share_a_resident_server_keyed_by_the_code(
    tmp_path: Path, prefect_api: str, runtime_dir: Path
) -> None:
    root = prepared_project(tmp_path / "proj", TINY)
    env = project_env(root, prefect_api, XDG_RUNTIME_DIR=str(runtime_dir), SEGFLOW_WARM_IDLE_S="300")
    timing = tmp_path / "timing.jsonl"

    # No server yet: train (a torch stage) starts one and waits for it rather than import itself.
    assert servers(env) == []
    assert _train_served_warm(root, env, timing)
    (first,) = servers(env)
    assert first[1] == str(root)
    assert _train_served_warm(root, env, timing)  # the same server again
    assert servers(env) == [first]

    # An edited module: a new key, so a new server (idling out after 1 s); the old one is not asked.
    with (root / "flows" / "train.py").open("a") as fh:
        fh.write("\n# edited\n")
    assert _train_served_warm(root, {**env, "SEGFLOW_WARM_IDLE_S": "1"}, timing)
    running = dict(servers(env))
    assert first[0] in running and len(running) == 2
    (second,) = set(running) - {first[0]}
    _wait_until_gone({second}, env)  # idle for 1 s: it ended by itself
    assert [pid for pid, _ in servers(env)] == [first[0]]

    stopped = run([str(BIN / "segflow"), "warm", "stop"], root, env)
    assert f"stopped: pid {first[0]}" in stopped.stdout
    _wait_until_gone({first[0]}, env)
    assert "no resident warm stage server" in run([str(BIN / "segflow"), "warm", "status"], root, env).stdout


def test_resident_servers_off_runs_cold(tmp_path: Path, prefect_api: str, runtime_dir: Path) -> None:
    root = prepared_project(tmp_path / "proj", TINY)
    env = project_env(root, prefect_api, XDG_RUNTIME_DIR=str(runtime_dir), SEGFLOW_WARM_IDLE_S="0")
    assert not _train_served_warm(root, env, tmp_path / "timing.jsonl")
    assert servers(env) == []
