"""Run ``dvc repro`` as a process group that a stop request (SIGINT, SIGTERM) ends, every process of it.

The pipeline (``segflow run``, a deployment's flow run) starts ``dvc repro`` in a session of its
own: a terminal's Ctrl-C reaches the pipeline only, and the pipeline passes one stop on to the
whole group, so each stage gets exactly one signal. On SIGINT or SIGTERM to the pipeline:

1. the group gets SIGINT, what a terminal's Ctrl-C would send it: DVC leaves it to the running
   stage, whose command passes it on to its warm child (:mod:`flows.runtime.warm`); training stops
   after its current step, keeps the state of its last complete epoch and ends its MLflow runs
   KILLED; the stage's Prefect flow run ends Crashed; DVC then fails the stage and exits;
2. whatever is left of the group after :data:`ASK_S` seconds gets SIGTERM (a second stop:
   training abandons its step), after :data:`TERM_S` SIGKILL (a warm stage child dies with its
   command); all within :data:`STOP_WITHIN_S` of the first signal, with room for the pipeline's
   own exit;
3. the stop is then handed to the handler the pipeline had before (Prefect's flow engine raises
   ``TerminationSignal`` for SIGTERM and marks the flow run Crashed, or Cancelled when its runner
   asked for a cancellation; Python's raises ``KeyboardInterrupt`` for SIGINT), as
   :func:`components.training.interrupt.graceful_stop` does for a training.

A second signal to the pipeline while it stops kills the group at once. The group's output is
read by a thread the whole time (a stage must never block on a full pipe while it stops).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import IO

from components.training.interrupt import StopRequest, graceful_stop
from flows.runtime.parent_death import stop_with_parent

STOP_WITHIN_S = 10.0  # the promise: every process of the run gone this long after the signal
ASK_S = 5.0  # SIGINT to the group, then this long for the stages' own stop
TERM_S = 7.0  # then SIGTERM; at this mark SIGKILL
_POLL_S = 0.1
ANNOUNCE = "stopping the pipeline: every stage ends within 10 s (training keeps its last complete epoch)"


def run_supervised(cmd: list[str], env: dict[str, str], on_line: Callable[[str], None]) -> int:
    """Run ``cmd`` (its own session and process group), give each output line to ``on_line``.

    Returns:
        The command's exit status, when it ended by itself.

    Raises:
        KeyboardInterrupt: SIGINT or SIGTERM stopped the run (after the group is gone), raised by
            the handler that was installed before (e.g. Prefect's ``TerminationSignal``).
    """
    with graceful_stop(announce=ANNOUNCE) as stop:
        proc = subprocess.Popen(
            cmd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            preexec_fn=stop_with_parent,
        )
        assert proc.stdout is not None
        reader = threading.Thread(target=_pump, args=(proc.stdout, on_line), daemon=True, name="dvc-output")
        reader.start()
        try:
            code = _wait(proc, stop)
        finally:  # also on a second signal: the group must not outlive us
            _end_group(proc)
            reader.join(timeout=2.0)
        stop.check("(pipeline)")
    return code


def _pump(stream: IO[str], on_line: Callable[[str], None]) -> None:
    with stream:
        for line in stream:
            on_line(line)


def _wait(proc: subprocess.Popen[str], stop: StopRequest) -> int:
    """Wait for ``proc``; once a stop is requested, stop its group in steps (module docstring)."""
    stopping_since: float | None = None
    sent = signal.SIGINT
    while True:
        try:
            return proc.wait(timeout=_POLL_S)
        except subprocess.TimeoutExpired:
            pass
        if not stop.requested:
            continue
        now = time.monotonic()
        if stopping_since is None:
            stopping_since = now
            _signal_group(proc.pid, signal.SIGINT)
        elif now - stopping_since >= TERM_S and sent != signal.SIGKILL:
            sent = signal.SIGKILL
            _signal_group(proc.pid, sent)
        elif now - stopping_since >= ASK_S and sent == signal.SIGINT:
            sent = signal.SIGTERM
            _signal_group(proc.pid, sent)


def _end_group(proc: subprocess.Popen[str]) -> None:
    """SIGKILL what is left of ``proc``'s group (nothing, after a clean exit) and wait until it is
    gone (zombies whose new parent has not reaped them yet count as gone), at most 2 s."""
    _signal_group(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 2.0
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.02)


def _group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs (from /proc: no psutil import here)."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):  # state, ppid, pgrp, ...
            return True
    return False


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)
