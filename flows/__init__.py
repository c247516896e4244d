"""Prefect flows, one per DVC stage, the end-to-end pipeline flow and the `segflow` CLI, all thin."""

import os as _os
import sys as _sys

from components.core.threads import prepare_openmp as _prepare_openmp

# OpenMP reads its wait policy once, when torch loads it: set it before any stage, command or
# warm server imports torch (components/core/threads.py)
_prepare_openmp()

if "-m" in getattr(_sys, "orig_argv", ()):  # maybe a stage command: serve it warm where one can
    from flows.runtime.warm import SOCKET_ENV, enabled, run_warm, stage_command

    _command = stage_command()
    if _command and enabled(_os.environ):
        if _os.environ.get(SOCKET_ENV):  # under `segflow run`: its own warm server
            run_warm(*_command, _os.environ[SOCKET_ENV])  # exits when served; else cold
        else:  # a plain `dvc repro`: the resident server of this code and environment
            from flows.runtime.warm_resident import run_resident

            run_resident(*_command)  # exits when served; else cold
