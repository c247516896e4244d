"""A child process that ends when the process that started it dies (Linux ``PR_SET_PDEATHSIG``)."""

from __future__ import annotations

import ctypes
import signal
import sys

PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies

# resolved here, not in the forked child (no loader work between fork and exec)
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


def stop_with_parent() -> None:
    """``preexec_fn`` of a child process: SIGTERM it when its parent dies, even by SIGKILL, so it
    does not run on, unseen, beside the next attempt (a no-op where prctl is missing)."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, int(signal.SIGTERM))
