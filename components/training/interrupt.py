"""Graceful stop on SIGTERM / SIGINT: finish (or abandon) the current step, then stop cleanly.

Training checks a :class:`StopRequest` at step boundaries (a Python attribute read: no device
sync) and raises :class:`TrainingInterrupted` there. :func:`graceful_stop` installs the signal
handlers for a block of code and, when the block ends with that exception, hands the signal on to
the handler it replaced (Prefect's flow engine turns SIGTERM into its own cancellation/crash
handling; Python's default SIGINT handler raises KeyboardInterrupt; the default SIGTERM
disposition ends the process), so the process still exits non-zero by that signal once the
training state is saved and the MLflow runs are marked KILLED. A second signal while stopping
raises at once (abandoning whatever step is running).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on request (a signal); the resumable state of the last complete epoch is kept.

    A KeyboardInterrupt, so it is not caught by ``except Exception`` and MLflow runs end KILLED.
    """

    def __init__(self, signum: int, where: str = "") -> None:
        self.signum = int(signum)
        name = signal.Signals(self.signum).name
        super().__init__(f"stopped by {name}" + (f" {where}" if where else ""))


class StopRequest:
    """A stop flag a signal handler sets and the training loop polls between steps."""

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def requested(self) -> bool:
        """Whether a stop was requested."""
        return self.signum is not None

    def request(self, signum: int = signal.SIGTERM) -> None:
        """Ask training to stop at its next step boundary."""
        self.signum = int(signum)

    def check(self, where: str = "") -> None:
        """Raise :class:`TrainingInterrupted` when a stop was requested.

        Raises:
            TrainingInterrupted: A stop was requested.
        """
        if self.signum is not None:
            raise TrainingInterrupted(self.signum, where)


Handler = Callable[[int, FrameType | None], Any] | int | None


def _forward(signum: int, previous: Handler) -> None:
    """Give ``signum`` to the handler that was installed before ours (it may raise or end the process)."""
    if callable(previous):
        previous(signum, None)
    elif previous == signal.SIG_DFL:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


TRAINING_STOP = "stopping after the current step (the state of the last complete epoch is kept for a resume)"


@contextlib.contextmanager
def graceful_stop(
    signals: tuple[int, ...] = STOP_SIGNALS, announce: str = TRAINING_STOP
) -> Iterator[StopRequest]:
    """Within the block, the first ``signals`` delivery requests a stop; a second one raises at once.

    Outside the main thread (signals cannot be handled there) the request is returned unarmed.
    On leaving the block with :class:`TrainingInterrupted`, the previous handler of that signal is
    restored and called (see the module docstring); otherwise the previous handlers are restored.

    Args:
        signals: The signals that request the stop.
        announce: What the first signal prints (stderr), after "segflow: SIGTERM received; ".

    Yields:
        The :class:`StopRequest` the handlers set.
    """
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handle(signum: int, _frame: FrameType | None) -> None:
        if stop.requested:
            raise TrainingInterrupted(signum, "(second signal: abandoning the current step)")
        stop.request(signum)
        print(f"segflow: {signal.Signals(signum).name} received; {announce}", file=sys.stderr, flush=True)

    previous = {s: signal.signal(s, handle) for s in signals}
    try:
        yield stop
    except TrainingInterrupted as exc:
        _restore(previous)
        _forward(exc.signum, previous.get(exc.signum))
        raise
    finally:
        _restore(previous)


def _restore(previous: dict[int, Handler]) -> None:
    for s, h in previous.items():
        signal.signal(s, h if h is not None else signal.SIG_DFL)
