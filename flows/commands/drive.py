"""How ``segflow run`` and ``segflow plan`` drive the pipeline: lock and check first, a Prefect API
for the run, ``dvc repro`` inside the pipeline flow, one line on failure, and a stop that stops.

Ctrl-C or SIGTERM stops it: every stage process ends within 10 s (training keeps its last complete
epoch and ends its MLflow runs KILLED; the Prefect flow runs end Crashed), the Prefect server the
run started stops, the workspace lock is released, and the same command resumes.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from typing import Any

import typer


def _raise_stop(signum: int, _frame: object) -> None:
    """A signal handler that stops the run as Ctrl-C does (an exception, not an exit)."""
    from components.training.interrupt import TrainingInterrupted

    raise TrainingInterrupted(signum, "(segflow run)")


def budget_overrides(time_budget: str | None, device: str | None, memory_gb: float | None) -> dict[str, Any]:
    """``--time-budget`` / ``--device`` / ``--memory-gb`` as the ``plan.*`` keys they set."""
    given = {"plan.time_budget": time_budget, "plan.device": device, "plan.memory_gb": memory_gb}
    return {k: v for k, v in given.items() if v is not None}


def drive(
    command: str,
    params: Path,
    data: Path | None,
    overrides: dict[str, Any],
    force: bool = False,
    target: str | None = None,
) -> dict[str, Any]:
    """Run the pipeline flow (up to ``target``, else every stage); returns its result.

    Raises:
        typer.Exit: On a user error (printed as one line, the log named) or a stop (128 + signal).
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from components.core.errors import UserError
    from components.core.logfile import capture_to_file, describe, log_exception, new_log_path
    from flows.pipeline import RUN_LOG_ENV, guarded_run, pipeline
    from flows.runtime.prefect_api import run_api
    from flows.runtime.stage import exit_now, stop_signal

    log = new_log_path(command, params.parent)
    handler = capture_to_file(log)  # after the Prefect import: tracebacks go to the log, not the console
    os.environ[RUN_LOG_ENV] = str(log)
    # SIGTERM unwinds like Ctrl-C (lock, Prefect server, message); Prefect's flow engine calls this
    # handler again once it has ended the flow run Crashed.
    previous_term = signal.signal(signal.SIGTERM, _raise_stop)
    try:
        data_dir = str(data) if data else None
        # Lock + preflight here first, so a bad param or a busy workspace fails before the flow
        # (and a Prefect API) starts; the flow enters the same guard again (the lock is re-entrant).
        with (
            guarded_run(str(params), data_dir, overrides),
            log.open("a") as server_log,
            run_api(server_log) as api,
            temporary_settings(updates={PREFECT_API_URL: api}),
        ):
            return pipeline(
                data_dir=data_dir, overrides=overrides, force=force, params_path=str(params), target=target
            )
    except Exception as exc:  # ConfigError, WorkspaceBusyError, a failed stage; anything else is a bug
        log_exception(log, exc, f"segflow {command} failed")
        typer.secho(f"segflow {command}: {describe(exc, isinstance(exc, UserError))}", fg="red", err=True)
        typer.secho(f"(log: {log})", err=True)
        raise typer.Exit(1) from None
    except BaseException as exc:  # Ctrl-C, SIGTERM: the stages have stopped
        signum = stop_signal(exc)
        if signum is None:
            raise
        log_exception(log, exc, f"segflow {command} stopped")
        typer.secho(
            f"segflow {command}: stopped by {signal.Signals(signum).name}; every stage process has ended. "
            "Training keeps its last complete epoch: the same command resumes it.",
            fg="yellow",
            err=True,
        )
        typer.secho(f"(log: {log})", err=True)
        # At once (after the atexit handlers): the interpreter's teardown of torch, MLflow and
        # Prefect takes 2-4 s more of the 10 s a stop has.
        logging.getLogger().removeHandler(handler)
        handler.close()
        exit_now(128 + signum)
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        os.environ.pop(RUN_LOG_ENV, None)
        logging.getLogger().removeHandler(handler)
        handler.close()
