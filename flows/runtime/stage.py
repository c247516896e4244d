"""Shared entry point of the stage flows (``python -m flows.<stage>``, the DVC stage commands)."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

PIPELINE_RUN_ENV = "SEGFLOW_PIPELINE_FLOW_RUN_ID"
# A JSON-lines file: each stage process appends when its imports are done, when its flow body
# starts (the first real work) and when it ends (bench/stage_overhead.py reads it).
TIMING_ENV = "SEGFLOW_STAGE_TIMING"


def mark(stage: str, event: str) -> None:
    """Append ``{stage, event, t}`` (wall-clock seconds) to the timing file, when one is set."""
    path = os.environ.get(TIMING_ENV)
    if path:
        import json
        import time

        with open(path, "a") as fh:
            row = {"stage": stage, "event": event, "t": time.time(), "process_start": _process_start()}
            row["warm"] = _served_warm()
            fh.write(json.dumps(row) + "\n")


def _served_warm() -> bool:
    """Whether this stage runs in a child of the warm process (:mod:`flows.runtime.warm`)."""
    from flows.runtime.warm import START_ENV

    return bool(os.environ.get(START_ENV))


def _process_start() -> float:
    """When this stage's command started (wall clock): the warm path's command, else this process."""
    from flows.runtime.warm import START_ENV

    if os.environ.get(START_ENV):
        return float(os.environ[START_ENV])
    import psutil

    return float(psutil.Process().create_time())


def _timed(flow_fn: Any, stage: str) -> Any:
    """The flow with state hooks that mark its body's start and end (only when timing is on)."""
    if not os.environ.get(TIMING_ENV) or not hasattr(flow_fn, "with_options"):
        return flow_fn

    def running(*_: Any) -> None:
        mark(stage, "flow_running")

    def ended(*_: Any) -> None:
        mark(stage, "flow_ended")

    return flow_fn.with_options(on_running=[running], on_completion=[ended], on_failure=[ended])


def user_errors() -> tuple[type[BaseException], ...]:
    """Exception types whose message is the whole story for the user."""
    from components.core.errors import UserError

    return (UserError, FileNotFoundError)


def current_flow_run_id() -> str | None:
    """Id of the Prefect flow run executing now, if any."""
    from prefect.runtime import flow_run

    rid = flow_run.id
    return str(rid) if rid else None


def pipeline_flow_run_id() -> str | None:
    """Id of the pipeline flow run that started this stage through ``dvc repro``, if any."""
    return os.environ.get(PIPELINE_RUN_ENV) or None


def _default_params(flow_fn: Callable[..., Any]) -> str:
    """The flow's own default params file (plans/params.yaml after the plan stage), else params.yaml."""
    import inspect

    given = inspect.signature(getattr(flow_fn, "fn", flow_fn)).parameters.get("params_path")
    if given is None or given.default is inspect.Parameter.empty:
        return "params.yaml"
    return str(given.default)


def main(flow_fn: Callable[..., Any]) -> None:
    """Run ``flow_fn(params_path=...)`` from the command line, its log in ``.segflow/logs/``.

    On failure the console shows one message (a user error's own text: the file or params key and
    what was expected; for anything else its type and message) and the log file's path; the
    traceback and Prefect's failure records go to the log file only. Under ``segflow run`` (the
    pipeline sets ``SEGFLOW_FAILURE_FILE``) the message is written there instead and the pipeline
    prints it once. Exits 1 on failure; 128 + the signal's number when a signal stopped it (its
    Prefect flow run Crashed; training ended its MLflow runs KILLED), with one line, no traceback.
    """
    import time

    from components.core.logfile import (
        FAILURE_FILE_ENV,
        capture_to_file,
        describe,
        log_exception,
        new_log_path,
        write_failure,
    )
    from components.core.stage_times import record_stage_time

    ap = argparse.ArgumentParser(description=(flow_fn.__doc__ or "").strip().splitlines()[0])
    ap.add_argument(
        "--params",
        default=None,
        help="params file (default: the stage's own: params.yaml, or plans/params.yaml after plan)",
    )
    args = ap.parse_args()
    stage = getattr(flow_fn, "name", None) or flow_fn.__name__
    mark(stage, "imported")
    log = new_log_path(stage)
    capture_to_file(log)
    try:
        from components.core.threads import plan_threads

        plan_threads()  # a bad SEGFLOW_THREADS stops the stage here; the torch users apply the plan
        started = time.time()
        _timed(flow_fn, stage)(params_path=args.params or _default_params(flow_fn))
        record_stage_time(stage, started, time.time())  # the run's report sets it beside the plan
        mark(stage, "returned")
    except Exception as exc:
        message = describe(exc, isinstance(exc, user_errors()))
        log_exception(log, exc, f"stage {stage} failed")
        failure_file = os.environ.get(FAILURE_FILE_ENV)
        if failure_file:
            write_failure(Path(failure_file), stage, message, log)
        else:
            print(f"\nsegflow {stage}: {message}\n(log with the traceback: {log})", file=sys.stderr)
        sys.exit(1)
    except BaseException as exc:
        signum = stop_signal(exc)
        if signum is None:
            raise
        log_exception(log, exc, f"stage {stage} stopped")
        print(f"\nsegflow {stage}: stopped by {signal.Signals(signum).name} (log: {log})", file=sys.stderr)
        sys.exit(128 + signum)  # as a shell reports a command a signal ended


def stop_signal(exc: BaseException) -> int | None:
    """The signal behind an interruption (Ctrl-C, SIGTERM, a Prefect cancellation), else None."""
    from prefect.exceptions import TerminationSignal

    if isinstance(exc, TerminationSignal):
        return int(exc.signal)
    if isinstance(exc, KeyboardInterrupt):  # TrainingInterrupted knows which signal it was
        return int(getattr(exc, "signum", signal.SIGINT))
    return None


def run(flow_fn: Callable[..., Any]) -> NoReturn:
    """The stage command (``python -m flows.<stage>``): :func:`main`, then :func:`exit_now` with
    its exit status. A signal's interruption is left to the interpreter's own exit."""
    try:
        main(flow_fn)
    except SystemExit as exc:
        exit_now(exc.code if isinstance(exc.code, int) else int(exc.code is not None))
    exit_now(0)


def exit_now(code: int) -> NoReturn:
    """Exit without the interpreter's teardown of every module (2–4 s once torch, MLflow and Prefect
    are loaded, measured on this machine; DVC waits for it between stages).

    What a normal exit does that matters runs first, in its order: the interpreter's own thread
    shutdown (its threading-atexit hooks, which tell idle ``concurrent.futures`` pool threads to
    end, then the join of every thread that is not a daemon; joining those threads without the
    hooks waits forever on a pool a library left open), the atexit handlers (Prefect's log and
    event workers drain to the API, logging flushes and closes its files), the standard streams.
    """
    threading._shutdown()  # type: ignore[attr-defined]  # what Py_FinalizeEx calls first
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
