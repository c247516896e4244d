"""A stage process ends through ``exit_now``: what a normal exit does that matters still happens
(threads joined, atexit handlers, streams flushed) and the exit status is the stage's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import atexit, logging, sys, threading, time
from pathlib import Path
from flows.runtime.stage import exit_now

out = Path(sys.argv[1])
logging.basicConfig(filename=out / "log.txt", level=logging.INFO)
logging.info("logged before the exit")
atexit.register(lambda: (out / "atexit.txt").write_text("ran"))
worker = threading.Thread(target=lambda: (time.sleep(0.5), (out / "thread.txt").write_text("done")))
worker.start()
print("buffered on stdout", end="")
sys.stderr.write("buffered on stderr")
exit_now(int(sys.argv[2]))
"""


def test_exit_now_keeps_what_a_normal_exit_does(tmp_path: Path) -> None:
    for code in (0, 3):
        out = tmp_path / str(code)
        out.mkdir()
        proc = subprocess.run(
            [sys.executable, "-c", SCRIPT, str(out), str(code)], capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == code, proc.stderr
        assert proc.stdout == "buffered on stdout"
        assert proc.stderr.endswith("buffered on stderr")
        assert (out / "atexit.txt").read_text() == "ran"
        assert (out / "thread.txt").read_text() == "done"  # a non-daemon thread was joined first
        assert "logged before the exit" in (out / "log.txt").read_text()


POOL_LEFT_OPEN = """
import concurrent.futures, sys
from flows.runtime.stage import exit_now

pool = concurrent.futures.ThreadPoolExecutor(2)  # never shut down, as libraries leave theirs
assert pool.submit(lambda: 41 + 1).result() == 42
exit_now(int(sys.argv[1]))
"""


def test_exit_now_ends_a_thread_pool_left_open() -> None:
    """Idle pool threads are not daemons; the interpreter ends them through its threading hooks
    before joining, and so must ``exit_now`` (a stage once waited on such a pool forever)."""
    proc = subprocess.run(
        [sys.executable, "-c", POOL_LEFT_OPEN, "4"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 4, proc.stderr
