"""Warm stages (flows/runtime/warm.py, warm_server.py): a real server process forks a stand-in stage
for a real command process; what the command sees (streams, status, signals, its own death) is
what a cold stage would give it."""

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

from flows.runtime.warm import SOCKET_ENV, START_ENV, enabled, stage_command
from flows.runtime.warm_env import comparable_env

REPO = Path(__file__).resolve().parents[3]

FAKE_STAGE = """
import json, os, signal, sys, time
from pathlib import Path

if __name__ == "__main__":  # the server imports it first, as it imports the stages

    out = Path(os.environ["FAKE_OUT"])
    signal.signal(signal.SIGTERM, lambda *_: ((out / "term.txt").write_text("stopped"), os._exit(7)))
    (out / "child.json").write_text(json.dumps({
        "pid": os.getpid(), "cwd": os.getcwd(), "argv": sys.argv[1:], "name": __name__,
        "marker": os.environ.get("SEGFLOW_FAKE_MARKER"), "start": os.environ.get("START_ENV"),
    }))
    print("stage output on stdout", flush=True)
    if "--sleep" in sys.argv:
        time.sleep(120)
    sys.exit(int(sys.argv[-1]))
""".replace("START_ENV", START_ENV)

COMMAND = """
import os, sys
from flows.runtime.warm import run_warm
run_warm(os.environ.get("FAKE_MODULE", "fake_stage"), sys.argv[2:], sys.argv[1])
print("ran cold", flush=True)
"""


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (SOCKET_ENV, "PYTEST_CURRENT_TEST")}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "mods"), str(REPO)])
    env["FAKE_OUT"] = str(tmp_path / "out")
    return {**env, **extra}


def _start_server(tmp_path: Path, options: str = "") -> tuple[subprocess.Popen[bytes], str]:
    """``serve()`` in its own process (``options``: more keyword arguments), once it listens."""
    (tmp_path / "mods").mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "mods/fake_stage.py").write_text(FAKE_STAGE)
    (tmp_path / "mods/fakepkg").mkdir()  # a stage inside a package, as flows.<stage> is
    (tmp_path / "mods/fakepkg/__init__.py").write_text("")
    (tmp_path / "mods/fakepkg/stage.py").write_text(FAKE_STAGE)
    sock = str(tmp_path / "s.sock")
    modules = ("fake_stage", "fakepkg.stage")
    code = f"from flows.runtime.warm_server import serve; serve({sock!r}, {modules!r}{options})"
    proc = subprocess.Popen([sys.executable, "-c", code], env=_env(tmp_path), cwd=REPO)
    deadline = time.monotonic() + 60
    while not os.path.exists(sock):
        assert proc.poll() is None and time.monotonic() < deadline, "the warm server did not start"
        time.sleep(0.05)
    return proc, sock


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """``serve()`` in its own process, serving the stand-in stage module."""
    proc, sock = _start_server(tmp_path)
    yield sock
    proc.terminate()
    assert proc.wait(timeout=30) == 0
    assert not os.path.exists(sock)  # removed on the way out


def _command(sock: str, tmp_path: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    cwd = tmp_path / "work"
    cwd.mkdir(exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-c", COMMAND, sock, *args],
        env=_env(tmp_path, SEGFLOW_FAKE_MARKER="from the command", **env),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _child(tmp_path: Path, timeout: float = 30) -> dict:
    path = tmp_path / "out/child.json"
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, "the stand-in stage never started"
        time.sleep(0.05)
    time.sleep(0.1)
    return json.loads(path.read_text())


def _gone(pid: int, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_the_command_gets_the_stage_streams_status_and_context(server: str, tmp_path: Path) -> None:
    proc = _command(server, tmp_path, "--params", "p.yaml", "3")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    assert out == "stage output on stdout\n"  # the child wrote to the command's own stdout
    child = _child(tmp_path)
    assert child["pid"] != proc.pid
    assert child["name"] == "__main__"
    assert child["argv"] == ["--params", "p.yaml", "3"]
    assert child["cwd"] == str(tmp_path / "work")
    assert child["marker"] == "from the command"  # the command's environment, not the server's
    assert float(child["start"]) <= time.time()  # the command's start, for the timing marks


def test_a_different_environment_runs_cold(server: str, tmp_path: Path) -> None:
    proc = _command(server, tmp_path, "0", OMP_NUM_THREADS="3")  # read once, at import
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert out == "ran cold\n"
    assert "environment differs from the warm server's: OMP_NUM_THREADS" in err
    assert not (tmp_path / "out/child.json").exists()
    # Said once, not per stage: the next command with the same difference runs cold quietly.
    again = _command(server, tmp_path, "0", OMP_NUM_THREADS="3")
    out, err = again.communicate(timeout=60)
    assert (again.returncode, out) == (0, "ran cold\n")
    assert "warm stage server" not in err


def test_harmless_environment_differences_are_served_warm(server: str, tmp_path: Path) -> None:
    """The prompt (exported by ``source .venv/bin/activate``, dropped by the shell DVC runs stages
    in), the terminal, PATH and VIRTUAL_ENV are not read at import: the stage is served warm."""
    harmless = {"PS1": "(.venv) $ ", "TERM": "xterm-256color", "VIRTUAL_ENV": "/somewhere/.venv"}
    proc = _command(server, tmp_path, "0", PATH=f"/somewhere/.venv/bin:{os.environ['PATH']}", **harmless)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out == "stage output on stdout\n" and "warm stage server" not in err
    assert _child(tmp_path)["pid"] != proc.pid


def test_a_stage_in_a_package_runs_as_main_without_a_runpy_warning(server: str, tmp_path: Path) -> None:
    """The server imported ``fakepkg.stage``; run as ``__main__`` in the child it must not make runpy
    warn "'fakepkg.stage' found in sys.modules ... unpredictable behaviour" (a cold stage never does)."""
    proc = _command(server, tmp_path, "0", FAKE_MODULE="fakepkg.stage")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out == "stage output on stdout\n"
    assert _child(tmp_path)["name"] == "__main__"
    assert "Warning" not in err, err


def test_no_server_runs_cold(tmp_path: Path) -> None:
    (tmp_path / "mods").mkdir()
    proc = _command(str(tmp_path / "absent.sock"), tmp_path, "0")
    out, _ = proc.communicate(timeout=60)
    assert (proc.returncode, out) == (0, "ran cold\n")


def test_sigterm_reaches_the_stage(server: str, tmp_path: Path) -> None:
    proc = _command(server, tmp_path, "--sleep", "0")
    _child(tmp_path)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 7  # the stage's own handler ran and chose the status
    assert (tmp_path / "out/term.txt").read_text() == "stopped"


def test_the_stage_dies_with_its_command(server: str, tmp_path: Path) -> None:
    """SIGKILL of the command DVC started (OOM killer, ``kill -9``) ends the stage too."""
    proc = _command(server, tmp_path, "--sleep", "0")
    child = _child(tmp_path)
    proc.kill()
    proc.wait(timeout=30)
    assert _gone(child["pid"])
    # and the server serves the next command
    (tmp_path / "out/child.json").unlink()
    nxt = _command(server, tmp_path, "5")
    nxt.communicate(timeout=60)
    assert nxt.returncode == 5


def test_switch_and_stage_command(monkeypatch: pytest.MonkeyPatch) -> None:
    assert enabled({}) and enabled({"SEGFLOW_WARM_STAGES": "1"})
    assert not enabled({"SEGFLOW_WARM_STAGES": "0"}) and not enabled({"SEGFLOW_WARM_STAGES": "off"})
    env = {"DVC_STAGE": "train", "SEGFLOW_X": "1", "PATH": "/bin", "PS1": "$ ", "TERM": "xterm"}
    env |= {"OMP_NUM_THREADS": "2", "PREFECT_HOME": "/p", "HOME": "/h", "LC_ALL": "C"}
    assert comparable_env(env) == {"OMP_NUM_THREADS": "2", "PREFECT_HOME": "/p", "HOME": "/h", "LC_ALL": "C"}
    monkeypatch.setattr(sys, "orig_argv", ["python", "-m", "flows.train", "--params", "p.yaml"])
    assert stage_command() == ("flows.train", ["--params", "p.yaml"])
    monkeypatch.setattr(sys, "orig_argv", ["python", "-m", "flows.runtime.warm_server", "/tmp/s"])
    assert stage_command() is None
    monkeypatch.setattr(sys, "orig_argv", ["python", "-c", "pass"])
    assert stage_command() is None


def test_a_long_stage_does_not_hold_up_the_next_command(server: str, tmp_path: Path) -> None:
    long = _command(server, tmp_path, "--sleep", "0")
    first = _child(tmp_path)
    (tmp_path / "out/child.json").unlink()
    quick = _command(server, tmp_path, "4")
    quick.communicate(timeout=60)
    assert quick.returncode == 4 and long.poll() is None  # served while the first still runs
    assert _child(tmp_path)["pid"] != first["pid"]
    long.kill()
    long.wait(timeout=30)
    assert _gone(first["pid"])


def test_an_idle_server_ends_only_once_no_stage_runs(tmp_path: Path) -> None:
    proc, sock = _start_server(tmp_path, ", idle_s=0.5")
    long = _command(sock, tmp_path, "--sleep", "0")
    stage = _child(tmp_path)
    time.sleep(3)  # well past the idle timeout, but a stage runs: the server stays
    assert proc.poll() is None and os.path.exists(sock)
    long.kill()
    long.wait(timeout=30)
    assert _gone(stage["pid"])
    assert proc.wait(timeout=60) == 0  # idle now: it ends by itself and removes its socket
    assert not os.path.exists(sock)


def test_a_server_whose_imports_are_stale_never_listens(tmp_path: Path) -> None:
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods/fake_stage.py").write_text(FAKE_STAGE)
    sock = str(tmp_path / "s.sock")
    serve = "from flows.runtime.warm_server import serve; serve"
    code = f"{serve}({sock!r}, ('fake_stage',), imported=lambda: False)"
    done = subprocess.run([sys.executable, "-c", code], env=_env(tmp_path), cwd=REPO, timeout=60)
    assert done.returncode == 0 and not os.path.exists(sock)
