"""One run per workspace (an OS lock held by another real process), and params.yaml put back on failure."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.core.errors import UserError
from components.params.edit import params_transaction
from components.workspace.lock import WorkspaceBusyError, lock_path, read_holder, workspace_lock

REPO = Path(__file__).resolve().parents[2]
HOLD = (
    "import sys, time; from pathlib import Path; from components.workspace.lock import workspace_lock\n"
    "with workspace_lock(Path(sys.argv[1]), command='segflow run --set train.epochs=3'):\n"
    "    time.sleep(120)\n"
)


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Another process holding ``tmp_path``'s lock (waited for until the lock file shows its pid)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], cwd=REPO)
    deadline = time.monotonic() + 60
    while read_holder(lock_path(tmp_path)).get("pid") != proc.pid:
        assert proc.poll() is None, "the holder process exited"
        assert time.monotonic() < deadline, "the holder never took the lock"
        time.sleep(0.05)
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def test_a_second_process_is_refused_at_once_naming_the_holder(
    holder: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    with pytest.raises(WorkspaceBusyError) as info, workspace_lock(tmp_path):
        pass
    assert holder.poll() is None  # refused while the holder (asleep for 120 s) still runs: no waiting
    msg = str(info.value)
    assert isinstance(info.value, UserError)
    assert f"pid {holder.pid}" in msg and "segflow run --set train.epochs=3" in msg and "started at" in msg
    assert "wait for it to finish" in msg


def test_a_killed_holder_leaves_no_stale_lock(holder: subprocess.Popen[bytes], tmp_path: Path) -> None:
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert read_holder(lock_path(tmp_path))["pid"] == holder.pid  # its details are still in the file
    with workspace_lock(tmp_path, command="second") as path:
        info = json.loads(path.read_text())
        assert info["pid"] == os.getpid() and info["command"] == "second"
        assert {"host", "started_at"} <= set(info)
    assert read_holder(path) == {}  # released


def test_the_lock_is_reentrant_in_one_process(tmp_path: Path) -> None:
    with workspace_lock(tmp_path) as outer, workspace_lock(tmp_path) as inner:
        assert inner == outer and read_holder(outer)["pid"] == os.getpid()
    with workspace_lock(tmp_path):  # released after the outer block: can be taken again
        pass


def test_params_transaction_restores_the_exact_bytes_on_an_exception(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    original = b"# comment\r\ntrain:\n  epochs: 3   # trailing\n\xc3\xa9\n"
    path.write_bytes(original)
    for exc in (RuntimeError("dvc repro failed"), KeyboardInterrupt()):
        with pytest.raises(type(exc)), params_transaction(path):
            path.write_text("train:\n  epochs: 99\n")
            raise exc
        assert path.read_bytes() == original


def test_params_transaction_keeps_the_new_bytes_on_success(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_bytes(b"train:\n  epochs: 3\n")
    with params_transaction(path):
        path.write_bytes(b"train:\n  epochs: 5\n")
    assert path.read_bytes() == b"train:\n  epochs: 5\n"


def test_a_refused_run_writes_nothing_and_leaves_the_first_unaffected(
    holder: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    """``segflow run``'s guard in a busy workspace: refused before params.yaml or any output is touched."""
    from flows.pipeline import guarded_run

    params = tmp_path / "params.yaml"
    params.write_bytes(b"train:\n  epochs: 3\n")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    entered = False
    with (
        pytest.raises(WorkspaceBusyError, match=f"pid {holder.pid}"),
        guarded_run(str(params), "data/other", {"train.epochs": 99}),
    ):
        entered = True
    assert not entered  # the run's body (params write, dvc repro) never started
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    # The first run is unaffected: still running, still the recorded holder of the lock.
    assert holder.poll() is None
    assert read_holder(lock_path(tmp_path))["pid"] == holder.pid
