"""Prefect flows, one per DVC stage, the end-to-end pipeline flow and the `segflow` CLI, all thin."""

import os as _os

if _os.environ.get("SEGFLOW_WARM_SOCKET"):  # under `segflow run`: a stage command is served warm
    from flows.warm import run_warm, stage_command

    _command = stage_command()
    if _command:
        run_warm(*_command, _os.environ["SEGFLOW_WARM_SOCKET"])  # exits when served; else cold
