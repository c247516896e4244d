"""flows/runtime/supervise.py with real processes: the command's output reaches the caller line by line,
its status comes back; a stop (SIGTERM to this process) ends every process of its group, the
cooperative ones by SIGINT, a stubborn one by SIGKILL, within the 10 s promised, and then the
handler that was installed before gets the signal."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.runtime.supervise import STOP_WITHIN_S, TERM_S, run_supervised

# A parent and its child in one process group, as `dvc repro` and a stage are. Each writes its pid;
# the child then prints and waits. "stubborn" ones ignore SIGINT and SIGTERM.
GROUP = """
import os, signal, subprocess, sys, time
out = sys.argv[1]
if sys.argv[2] == "child":
    if sys.argv[3] == "stubborn":
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    open(os.path.join(out, "child.pid"), "w").write(str(os.getpid()))
    print("child running", flush=True)
    time.sleep(120)
else:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as DVC leaves Ctrl-C to its stage
    if sys.argv[3] == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen([sys.executable, __file__, out, "child", sys.argv[3]])
    open(os.path.join(out, "parent.pid"), "w").write(str(os.getpid()))
    sys.exit(child.wait() and 3)
"""


class Stopped(Exception):
    """What the handler installed before the supervision raises."""


@pytest.fixture
def stop_handler() -> Iterator[None]:
    previous = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(Stopped()))
    yield
    signal.signal(signal.SIGTERM, previous)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/status").read_text().count("zombie") > 0


def _stop_when_started(out: Path) -> None:
    """SIGTERM to this process once both processes of the group are up."""
    deadline = time.monotonic() + 60
    while not ((out / "child.pid").exists() and (out / "parent.pid").exists()):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.2)
    os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.parametrize("kind", ["cooperative", "stubborn"])
def test_a_stop_ends_the_whole_group_then_raises_as_before(
    tmp_path: Path, stop_handler: None, kind: str
) -> None:
    script = tmp_path / "group.py"
    script.write_text(GROUP)
    lines: list[str] = []
    threading.Thread(target=_stop_when_started, args=(tmp_path,), daemon=True).start()
    started = time.monotonic()
    with pytest.raises(Stopped):
        run_supervised(
            [sys.executable, str(script), str(tmp_path), "parent", kind], dict(os.environ), lines.append
        )
    took = time.monotonic() - started
    pids = [int((tmp_path / f"{who}.pid").read_text()) for who in ("parent", "child")]
    assert all(_gone(pid) for pid in pids)
    assert lines == ["child running\n"]
    if kind == "cooperative":  # SIGINT sufficed: no waiting for the escalation
        assert took < TERM_S
    else:
        assert TERM_S <= took < STOP_WITHIN_S


def test_without_a_stop_the_status_and_output_come_back(tmp_path: Path) -> None:
    lines: list[str] = []
    code = run_supervised(
        [sys.executable, "-c", "print('one'); print('two'); raise SystemExit(4)"],
        dict(os.environ),
        lines.append,
    )
    assert (code, lines) == (4, ["one\n", "two\n"])
